/*
** lock.c -- the pool's robust process-shared mutex, and recovery when the
** process holding it died.
**
** Everything the lock guards is either written with the gate's helping
** protocol or can be rebuilt from the records: the wait queue (records in
** WAITING state, ordered by ticket), the free-record stack (unowned records),
** per-process record counts and the count of held slots. So recovery does
** not need to know what the dead owner was doing: it rebuilds.
*/
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"

/* Critical sections are a few hundred ns; sleeping on the mutex costs a
** context switch (~30 us cross-CPU here). Spin briefly first. */
#define DBP_LOCK_SPINS 200

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* glibc's robust mutexes mark an unrecoverable one with this owner
** (nptl's PTHREAD_MUTEX_NOTRECOVERABLE). */
#define DBP_MUTEX_NOTRECOVERABLE 0x7ffffffe

/* Is the lock unrecoverable (a process saw its owner dead and unlocked it
** without making it consistent)? glibc 2.36's pthread_mutex_trylock reports
** such a mutex with ENOTRECOVERABLE but leaves it locked by the caller, so
** that the caller's next lock hangs forever: never try one. */
static bool unrecoverable(const dbpool_coord *c)
{
#ifdef __GLIBC__
  return __atomic_load_n(&c->hdr->lock.__data.__owner, __ATOMIC_ACQUIRE) ==
         DBP_MUTEX_NOTRECOVERABLE;
#else
  (void)c;
  return false;
#endif
}

int dbp_lock(dbpool_coord *c, int64_t deadline_mono_ns)
{
  int rc = unrecoverable(c) ? ENOTRECOVERABLE : EBUSY;
  for (int i = 0; i < DBP_LOCK_SPINS && rc == EBUSY; i++) {
    rc = pthread_mutex_trylock(&c->hdr->lock);
    if (rc == EBUSY) cpu_relax();
  }
  if (rc != EBUSY) {
    /* got it (or an error to report below) */
  } else if (deadline_mono_ns < 0) {
    rc = pthread_mutex_lock(&c->hdr->lock);
  } else {
    /* pthread_mutex_timedlock takes a CLOCK_REALTIME deadline; convert.
    ** (pthread_mutex_clocklock would take ours, but ThreadSanitizer does not
    ** know it, and a jump of the wall clock only stretches or shortens a
    ** wait for a lock that is held for microseconds.) */
    int64_t left = deadline_mono_ns - dbp_mono_ns();
    struct timespec ts = dbp_ts(dbp_real_ns() + (left > 0 ? left : 0));
    rc = pthread_mutex_timedlock(&c->hdr->lock, &ts);
  }
  if (rc == 0) return 0;
  if (rc == EOWNERDEAD) {
    dbp_recover(c);
    pthread_mutex_consistent(&c->hdr->lock);
    return 0;
  }
  if (rc == ETIMEDOUT) return -ETIMEDOUT;
  if (rc == ENOTRECOVERABLE)
    return dbp_err(-ENOTRECOVERABLE,
                   "dbpool: the lock of pool %s is unrecoverable; remove the "
                   "pool (dbpoolctl rm --force)", c->name);
  return dbp_err(-EBADMSG, "dbpool: the lock of pool %s is corrupt (%s)",
                 c->name, strerror(rc));
}

void dbp_unlock(dbpool_coord *c) { pthread_mutex_unlock(&c->hdr->lock); }

static bool owner_live(dbpool_coord *c, uint32_t owner, uint32_t phwm)
{
  return owner >= 1 && owner <= phwm &&
         atomic_load(&c->procs[owner - 1].state) == PROC_LIVE;
}

void dbp_recover(dbpool_coord *c)
{
  dbp_header *h = c->hdr;
  /* Freeze the fast paths so that the gate changes only here. */
  dbp_gate_set_flags(c, G_SLOW, 0);
  dbp_gate g = dbp_gate_load(h);
  dbp_gate_help(c, g);

  uint64_t jseq = atomic_load(&h->reclaim_journal_seq);
  uint64_t jafter = atomic_load(&h->reclaim_journal_after);
  if (jseq && g.seq >= jseq && atomic_load(&h->total_reclaimed) < jafter)
    atomic_store(&h->total_reclaimed, jafter);
  atomic_store(&h->reclaim_journal_seq, 0);

  uint32_t hwm = dbp_record_hwm(h), phwm = dbp_process_hwm(h);
  atomic_store(&h->record_hwm, hwm);
  atomic_store(&h->process_hwm, phwm);
  for (uint32_t p = 0; p < phwm; p++) atomic_store(&c->procs[p].n_records, 0);

  atomic_store(&h->free_head, DBP_REC_NONE);
  for (uint32_t i = hwm; i-- > 0;) {
    dbp_record *r = &c->recs[i];
    uint32_t owner = atomic_load(&r->owner);
    if (owner_live(c, owner, phwm)) {
      atomic_fetch_add(&c->procs[owner - 1].n_records, 1);
      continue;
    }
    /* Owned by no live process entry: give back whatever it held. */
    if (REC_STATE(atomic_load(&r->word)) != REC_FREE)
      dbp_reclaim_record_locked(c, i, true);
    atomic_store(&r->owner, 0);
    atomic_store(&r->free_next, atomic_load(&h->free_head));
    atomic_store(&h->free_head, i);
  }
  dbp_queue_rebuild(c);

  /* The gate's count must equal the HELD records; repair garbage. */
  unsigned held = 0;
  for (uint32_t i = 0; i < hwm; i++)
    held += REC_STATE(atomic_load(&c->recs[i].word)) == REC_HELD;
  g = dbp_gate_load(h);
  while (g_active(g.bits) != held) {
    dbp_gate n = {.seq = g.seq, .bits = g_with(g.bits, G_ACTIVE_SHIFT, held)};
    if (dbp_gate_cas(h, &g, n)) break;
  }
  if (g_max(g.bits) < 1 || g_max(g.bits) > DBPOOL_MAX_CONNECTIONS_LIMIT) {
    dbp_gate n = {.seq = g.seq, .bits = g_with(g.bits, G_MAX_SHIFT, 1)};
    while (!dbp_gate_cas(h, &g, n))
      n = (dbp_gate){.seq = g.seq, .bits = g_with(g.bits, G_MAX_SHIFT, 1)};
  }

  uint32_t woken[64];
  unsigned n = dbp_grant_waiters(c, woken, 64);
  dbp_update_slow(c);
  dbp_wake_records(c, woken, n);
}
