/*
** reap.c -- taking back what dead processes held.
**
** Nobody can count on a dying process: SIGKILL runs no handler. Survivors
** find the dead instead. Waiters look every DBP_POLL_MS (at most one scan per
** DBP_REAP_MIN_MS across the pool); dbpool_coord_reap() and listing look on
** demand. A scan checks each registered process's identity (identity.c)
** without the lock, then takes the lock and, for each process still
** registered under the same generation, releases its held slots (gate
** "release" ops, counted as reclaimed), removes its queue places and frees
** its records.
**
** total_reclaimed must agree with the gate even if the reaper itself dies
** mid-way, so each reclaim writes a journal first: "if the gate reaches seq
** S, total_reclaimed becomes A". Recovery (lock.c) completes it. With SLOW
** set, only the lock holder moves the gate, so the next op's seq is known.
*/
#include <errno.h>
#include <string.h>

#include "internal.h"

void dbp_reclaim_record_locked(dbpool_coord *c, uint32_t i, bool count_reclaimed)
{
  dbp_header *h = c->hdr;
  dbp_record *r = &c->recs[i];
  uint64_t w = atomic_load(&r->word);
  if (REC_STATE(w) == REC_WAITING) {
    atomic_store(&r->word, REC_WORD(REC_FREE, REC_SEQ(w)));
    dbp_queue_remove(c, i);
    return;
  }
  if (REC_STATE(w) != REC_HELD) return;
  dbp_gate g = dbp_gate_load(h);
  for (;;) {
    dbp_gate_help(c, g);
    if (g_active(g.bits) == 0) { /* garbage: nothing to give back */
      atomic_store(&r->word, REC_WORD(REC_FREE, REC_SEQ(w)));
      return;
    }
    uint64_t after = atomic_load(&h->total_reclaimed) + 1;
    if (count_reclaimed) {
      h->reclaim_journal_after = after;
      atomic_thread_fence(memory_order_release);
      h->reclaim_journal_seq = g.seq + 1;
    }
    dbp_gate n = dbp_gate_op(g, i, true);
    if (dbp_gate_cas(h, &g, n)) {
      atomic_store_explicit(&r->word, REC_WORD(REC_FREE, n.seq),
                            memory_order_release);
      if (count_reclaimed) {
        atomic_store(&h->total_reclaimed, after);
        h->reclaim_journal_seq = 0;
      }
      return;
    }
  }
}

unsigned dbp_reap_process_locked(dbpool_coord *c, unsigned p,
                                 bool count_reclaimed)
{
  dbp_header *h = c->hdr;
  dbp_gate_set_flags(c, G_SLOW, 0);
  dbp_gate_help(c, dbp_gate_load(h));
  uint32_t hwm = h->record_hwm < DBP_RECORDS ? h->record_hwm : DBP_RECORDS;
  unsigned released = 0;
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    if (atomic_load(&r->owner) != p + 1) continue;
    released += REC_STATE(atomic_load(&r->word)) == REC_HELD;
    dbp_reclaim_record_locked(c, i, count_reclaimed);
    atomic_store(&r->flags, 0);
    dbp_label_store(r->label, DBP_LABEL_WORDS, NULL);
    atomic_store(&r->owner, 0);
    r->free_next = h->free_head;
    h->free_head = i;
  }
  dbp_process *pr = &c->procs[p];
  pr->n_records = 0;
  atomic_fetch_add(&pr->gen, 1);
  if (atomic_exchange(&pr->state, PROC_FREE) == PROC_LIVE &&
      atomic_load(&h->live_processes) > 0)
    atomic_fetch_sub(&h->live_processes, 1);
  return released;
}

/* Our own identity, computed once per process (fork generation). */
static bool is_self(pid_t pid, uint32_t kind, uint64_t ident)
{
  static __thread unsigned gen;
  static __thread uint32_t my_kind;
  static __thread uint64_t my_ident;
  if (pid != dbp_pid()) return false;
  if (gen != dbp_fork_gen()) {
    dbp_self_identity(&my_kind, &my_ident);
    gen = dbp_fork_gen();
  }
  return kind == my_kind && ident == my_ident;
}

int dbp_reap(dbpool_coord *c)
{
  if (c->readonly) return 0;
  dbp_header *h = c->hdr;
  atomic_store(&h->last_reap_ns, dbp_mono_ns());
  struct { uint32_t p, gen; } dead[DBP_PROCESSES];
  unsigned nd = 0;
  uint32_t phwm = h->process_hwm < DBP_PROCESSES ? h->process_hwm : DBP_PROCESSES;
  for (uint32_t p = 0; p < phwm; p++) {
    dbp_process *pr = &c->procs[p];
    if (atomic_load(&pr->state) != PROC_LIVE) continue;
    uint32_t gen = atomic_load(&pr->gen);
    pid_t pid = atomic_load(&pr->pid);
    uint32_t kind = atomic_load(&pr->ident_kind);
    uint64_t ident = atomic_load(&pr->ident);
    if (is_self(pid, kind, ident)) continue;
    if (dbp_process_dead(pid, kind, ident)) dead[nd++] = (typeof(dead[0])){p, gen};
  }
  if (nd == 0) return 0;
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  unsigned total = 0;
  for (unsigned k = 0; k < nd; k++) {
    dbp_process *pr = &c->procs[dead[k].p];
    if (atomic_load(&pr->state) == PROC_LIVE && atomic_load(&pr->gen) == dead[k].gen)
      total += dbp_reap_process_locked(c, dead[k].p, true);
  }
  uint32_t woken[64];
  unsigned n = dbp_grant_waiters(c, woken, 64);
  dbp_update_slow(c);
  dbp_unlock(c);
  dbp_wake_records(c, woken, n);
  return (int)total;
}

void dbp_maybe_reap(dbpool_coord *c)
{
  if (c->readonly) return;
  int64_t now = dbp_mono_ns();
  int64_t last = atomic_load(&c->hdr->last_reap_ns);
  if (now - last < (int64_t)DBP_REAP_MIN_MS * 1000000) return;
  if (!atomic_compare_exchange_strong(&c->hdr->last_reap_ns, &last, now)) return;
  dbp_reap(c);
}

int dbpool_coord_reap(dbpool_coord *c)
{
  if (!c) return dbp_err(-EINVAL, "dbpool: reap: pool is NULL");
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: pool %s is attached read-only", c->name);
  return dbp_reap(c);
}

int dbp_live_process_count(dbpool_coord *c, bool check)
{
  uint32_t phwm = c->hdr->process_hwm < DBP_PROCESSES ? c->hdr->process_hwm
                                                       : DBP_PROCESSES;
  int n = 0;
  for (uint32_t p = 0; p < phwm; p++) {
    dbp_process *pr = &c->procs[p];
    if (atomic_load(&pr->state) != PROC_LIVE) continue;
    if (check && dbp_process_dead(atomic_load(&pr->pid), atomic_load(&pr->ident_kind),
                                  atomic_load(&pr->ident)))
      continue;
    n++;
  }
  return n;
}
