/*
** reap.c -- taking back what dead processes held.
**
** Nobody can count on a dying process: SIGKILL runs no handler. Survivors
** find the dead instead. Waiters look every DBP_POLL_MS, and so do an
** acquire that finds the pool full and a reader of statistics that may
** write the segment (the waiters and acquirers at most one scan per
** DBP_REAP_MIN_MS across the pool);
** a process arriving looks when nobody has for DBP_REAP_IDLE_MS;
** dbpool_coord_reap() looks on demand. A scan asks the
** kernel whether each registered process still holds its liveness lock
** (liveness.c) without the pool lock, then takes the lock and, for each
** process still registered under the same generation and still dead,
** releases its held slots (gate "release" ops, counted as reclaimed),
** removes its queue places and frees its records.
**
** total_reclaimed must agree with the gate even if the reaper itself dies
** mid-way, so each reclaim writes a journal first: "if the gate reaches seq
** S, total_reclaimed becomes A". Recovery (lock.c) completes it. With SLOW
** set, only the lock holder moves the gate, so the next op's seq is known.
*/
#include <errno.h>
#include <stdlib.h>
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
      atomic_store(&h->reclaim_journal_after, after);
      atomic_store(&h->reclaim_journal_seq, g.seq + 1);
    }
    DBP_CRASH_POINT("reclaim-journaled");
    dbp_gate n = dbp_gate_op(g, i, true);
    if (dbp_gate_cas(h, &g, n)) {
      DBP_CRASH_POINT("reclaim-gate-moved");
      atomic_store_explicit(&r->word, REC_WORD(REC_FREE, n.seq),
                            memory_order_release);
      DBP_CRASH_POINT("reclaim-uncounted");
      if (count_reclaimed) {
        atomic_store(&h->total_reclaimed, after);
        atomic_store(&h->reclaim_journal_seq, 0);
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
  uint32_t hwm = dbp_record_hwm(h);
  unsigned released = 0;
  for (uint32_t i = 0; i < hwm; i++) {
    dbp_record *r = &c->recs[i];
    if (atomic_load(&r->owner) != p + 1) continue;
    released += REC_STATE(atomic_load(&r->word)) == REC_HELD;
    dbp_reclaim_record_locked(c, i, count_reclaimed);
    DBP_CRASH_POINT("reap-record-freed");
    atomic_store(&r->flags, 0);
    dbp_label_store(r->label, DBP_LABEL_WORDS, NULL);
    atomic_store(&r->owner, 0);
    atomic_store(&r->free_next, atomic_load(&h->free_head));
    atomic_store(&h->free_head, i);
  }
  dbp_process *pr = &c->procs[p];
  atomic_store(&pr->n_records, 0);
  atomic_fetch_add(&pr->gen, 1);
  atomic_store(&pr->state, PROC_FREE);
  return released;
}

/* A process entry as read without the lock: to be reaped only if, under
** the lock, it is still exactly this (an entry being re-registered changes
** generation) and still not alive. */
typedef struct proc_snapshot {
  uint32_t p, gen;
} proc_snapshot;

static bool same_process(dbp_process *pr, const proc_snapshot *s)
{
  return atomic_load(&pr->state) == PROC_LIVE && atomic_load(&pr->gen) == s->gen;
}

int dbp_reap(dbpool_coord *c)
{
  if (c->readonly) return 0; /* GCOVR_EXCL_BR_LINE: every caller refuses or skips read-only attachments first */
  dbp_header *h = c->hdr;
  atomic_store(&h->last_reap_ns, dbp_mono_ns());
  proc_snapshot *dead = malloc(DBP_PROCESSES * sizeof *dead);
  if (!dead) return dbp_err(-ENOMEM, "dbpool: reap: out of memory");
  unsigned nd = 0;
  uint32_t phwm = dbp_process_hwm(h);
  for (uint32_t p = 0; p < phwm; p++) {
    dbp_process *pr = &c->procs[p];
    if (atomic_load(&pr->state) != PROC_LIVE) continue;
    proc_snapshot s = {.p = p, .gen = atomic_load(&pr->gen)};
    if (!dbp_process_alive(c, p)) dead[nd++] = s;
  }
  int total = 0;
  if (nd > 0) {
    int rc = dbp_lock(c, -1);
    if (rc) {
      free(dead);
      return rc;
    }
    /* A registration takes the liveness lock before it publishes LIVE, under
    ** the pool lock: checked again here, the answer is final. */
    for (unsigned k = 0; k < nd; k++)
      if (same_process(&c->procs[dead[k].p], &dead[k]) &&
          !dbp_process_alive(c, dead[k].p))
        total += (int)dbp_reap_process_locked(c, dead[k].p, true);
    dbp_unlock_granting(c);
  }
  free(dead);
  return total;
}

/* At most one reap scan per DBP_REAP_MIN_MS across the pool. Returns the
** slots reclaimed. last_reap_ns is untrusted: a value in the future (or
** garbage) counts as stale rather than disabling reaping. */
int dbp_maybe_reap(dbpool_coord *c)
{
  if (c->readonly) return 0; /* GCOVR_EXCL_BR_LINE: called only by acquires, which need a writable attachment */
  int64_t now = dbp_mono_ns();
  int64_t last = atomic_load(&c->hdr->last_reap_ns);
  uint64_t age = (uint64_t)now - (uint64_t)last;
  if (last <= now && age < (uint64_t)DBP_REAP_MIN_MS * 1000000) return 0;
  if (!atomic_compare_exchange_strong(&c->hdr->last_reap_ns, &last, now)) return 0;
  int n = dbp_reap(c);
  return n > 0 ? n : 0;
}

/* Look for the dead at least every DBP_REAP_IDLE_MS while processes
** arrive, whether or not anyone waits. */
void dbp_reap_if_idle(dbpool_coord *c)
{
  if (c->readonly) return; /* GCOVR_EXCL_BR_LINE: called only by holder_new, which refuses read-only attachments */
  int64_t now = dbp_mono_ns();
  int64_t last = atomic_load(&c->hdr->last_reap_ns);
  if (last <= now && (uint64_t)(now - last) < (uint64_t)DBP_REAP_IDLE_MS * 1000000)
    return;
  dbp_maybe_reap(c);
}

int dbpool_coord_reap(dbpool_coord *c)
{
  if (!c) return dbp_err(-EINVAL, "dbpool: reap: pool is NULL");
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: pool %s is attached read-only", c->name);
  return dbp_reap(c);
}
