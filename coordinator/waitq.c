/*
** waitq.c -- the slow paths: the FIFO wait queue, grants and timeouts.
**
** A waiter queues its own record (state WAITING, a ticket from next_ticket)
** under the lock, sets the gate's SLOW flag, and sleeps on the record's wake
** futex. Whoever frees a slot while SLOW is set (a release, a raised limit, a
** resume, a reap) grants it to the queue's head under the lock: a gate
** "acquire" op on the waiter's record, then a wake. The waiter never needs
** the lock to learn it was granted; it needs it only to leave the queue on
** timeout. Waiters wake every DBP_POLL_MS to reclaim slots of dead
** processes, so a dead holder costs them at most that much. Signals neither
** end nor extend a wait, except in an interruptible acquire (private.h,
** sigwait.c), which a caught SIGINT or SIGQUIT ends.
*/
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* The queue's links live in shared memory: every one is read once into a
** local, checked, and only the local is used. */
static void q_append(dbpool_coord *c, uint32_t i)
{
  dbp_header *h = c->hdr;
  dbp_record *r = &c->recs[i];
  uint32_t tail = atomic_load(&h->q_tail);
  atomic_store(&r->q_next, DBP_REC_NONE);
  atomic_store(&r->q_prev, dbp_rec_in(h, tail) ? tail : DBP_REC_NONE);
  DBP_CRASH_POINT("queue-half-linked");
  if (dbp_rec_in(h, tail))
    atomic_store(&c->recs[tail].q_next, i);
  else
    atomic_store(&h->q_head, i);
  atomic_store(&h->q_tail, i);
  atomic_fetch_add(&h->n_waiting, 1);
}

/* Unlink record i, whose state the caller has already moved out of
** WAITING. Links that do not check out (garbage, or a dead lock holder's
** half-done edit) make us rebuild the queue from the records instead. */
void dbp_queue_remove(dbpool_coord *c, uint32_t i)
{
  dbp_header *h = c->hdr;
  dbp_record *r = &c->recs[i];
  uint32_t prev = atomic_load(&r->q_prev), next = atomic_load(&r->q_next);
  uint32_t head = atomic_load(&h->q_head), tail = atomic_load(&h->q_tail);
  bool ok = (head == i) ? !dbp_rec_in(h, prev)
                        : (dbp_rec_in(h, prev) && atomic_load(&c->recs[prev].q_next) == i);
  ok = ok && ((tail == i) ? !dbp_rec_in(h, next)
                          : (dbp_rec_in(h, next) && atomic_load(&c->recs[next].q_prev) == i));
  if (!ok || atomic_load(&h->n_waiting) == 0) {
    dbp_queue_rebuild(c);
    return;
  }
  if (dbp_rec_in(h, prev)) atomic_store(&c->recs[prev].q_next, next);
  else atomic_store(&h->q_head, next);
  if (dbp_rec_in(h, next)) atomic_store(&c->recs[next].q_prev, prev);
  else atomic_store(&h->q_tail, prev);
  atomic_store(&r->q_prev, DBP_REC_NONE);
  atomic_store(&r->q_next, DBP_REC_NONE);
  atomic_fetch_sub(&h->n_waiting, 1);
}

typedef struct { uint64_t ticket; uint32_t idx; } q_entry;

static int by_ticket(const void *a, const void *b)
{
  const q_entry *x = a, *y = b;
  if (x->ticket != y->ticket) return x->ticket < y->ticket ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Relink the queue from the WAITING records, in ticket order. */
void dbp_queue_rebuild(dbpool_coord *c)
{
  dbp_header *h = c->hdr;
  uint32_t hwm = dbp_record_hwm(h);
  unsigned n = 0;
  for (uint32_t i = 0; i < hwm; i++)
    n += REC_STATE(atomic_load(&c->recs[i].word)) == REC_WAITING;
  atomic_store(&h->q_head, DBP_REC_NONE);
  atomic_store(&h->q_tail, DBP_REC_NONE);
  atomic_store(&h->n_waiting, 0);
  q_entry *e = n ? malloc(n * sizeof *e) : NULL;
  unsigned k = 0;
  uint64_t max_ticket = 0;
  for (uint32_t i = 0; i < hwm && k < n; i++) {
    dbp_record *r = &c->recs[i];
    if (REC_STATE(atomic_load(&r->word)) != REC_WAITING) continue;
    uint64_t t = atomic_load(&r->ticket);
    if (t > max_ticket) max_ticket = t;
    if (e) e[k] = (q_entry){t, i};
    else q_append(c, i); /* no memory: index order beats losing waiters */
    k++;
  }
  if (e) {
    qsort(e, k, sizeof *e, by_ticket);
    for (unsigned j = 0; j < k; j++) q_append(c, e[j].idx);
    free(e);
  }
  if (atomic_load(&h->next_ticket) <= max_ticket) atomic_store(&h->next_ticket, max_ticket + 1);
}

/* Under the lock: SLOW is set exactly while someone waits or the pool is
** paused or removed. */
void dbp_update_slow(dbpool_coord *c)
{
  dbp_gate g = dbp_gate_load(c->hdr);
  bool want = atomic_load(&c->hdr->n_waiting) > 0 ||
              (g.bits & (G_PAUSED | G_REMOVED));
  if (want)
    dbp_gate_set_flags(c, G_SLOW, 0);
  else
    dbp_gate_set_flags(c, 0, G_SLOW);
}

void dbp_wake_records(dbpool_coord *c, const uint32_t *idx, unsigned n)
{
  for (unsigned k = 0; k < n; k++)
    if (dbp_rec_in(c->hdr, idx[k])) dbp_futex_wake(&c->recs[idx[k]].wake, INT_MAX, DBP_FUTEX_SHARED);
}

/* Under the lock, with SLOW set whenever the queue is not empty: give free
** slots to the queue's head, in order. Records to wake after unlocking go to
** woken (up to cap; the rest are woken at once). Returns how many are in
** woken. */
unsigned dbp_grant_waiters(dbpool_coord *c, uint32_t *woken, unsigned cap)
{
  dbp_header *h = c->hdr;
  unsigned n = 0, guard = 0;
  while (atomic_load(&h->n_waiting) > 0 && guard++ < 2 * DBP_RECORDS) {
    dbp_gate g = dbp_gate_load(h);
    if ((g.bits & (G_PAUSED | G_REMOVED)) || g_active(g.bits) >= g_max(g.bits))
      break;
    uint32_t w = atomic_load(&h->q_head);
    if (!dbp_rec_in(h, w) ||
        REC_STATE(atomic_load(&c->recs[w].word)) != REC_WAITING) {
      dbp_queue_rebuild(c);
      continue;
    }
    dbp_gate_help(c, g);
    dbp_gate ng = dbp_gate_op(g, w, false);
    if (!dbp_gate_cas(h, &g, ng)) continue;
    DBP_CRASH_POINT("grant-gate-moved");
    dbp_record *r = &c->recs[w];
    atomic_store(&r->since_ns, dbp_real_coarse_ns());
    atomic_store_explicit(&r->word, REC_WORD(REC_HELD, ng.seq),
                          memory_order_release);
    dbp_queue_remove(c, w);
    atomic_fetch_add_explicit(&r->wake, 1, memory_order_release);
    if (n < cap)
      woken[n++] = w;
    else
      dbp_futex_wake(&r->wake, INT_MAX, DBP_FUTEX_SHARED);
  }
  return n;
}

/* The end of every critical section that may have freed slots: grant them
** to the queue's head, leave SLOW as it should be, unlock, then wake the
** granted waiters (after unlocking: they need nothing from us). */
void dbp_unlock_granting(dbpool_coord *c)
{
  uint32_t woken[64];
  unsigned n = dbp_grant_waiters(c, woken, 64);
  dbp_update_slow(c);
  dbp_unlock(c);
  dbp_wake_records(c, woken, n);
}

static int64_t deadline_of(int64_t start, int timeout_ms)
{
  return timeout_ms < 0 ? -1 : start + (int64_t)timeout_ms * 1000000;
}

/* Why no slot came: a paused pool may have every slot free, so it says so
** rather than "in use". */
static int timed_out(dbpool_holder *hd, int64_t start, bool tried_once)
{
  dbpool_coord *c = hd->c;
  dbp_gate g = dbp_gate_snapshot(c->hdr);
  long long waited = (dbp_mono_ns() - start) / 1000000;
  int err = tried_once ? -EAGAIN : -ETIMEDOUT;
  if (g.bits & G_PAUSED)
    return dbp_err(err, "dbpool: pool full: the pool of %s is paused (%u of %u "
                   "connections in use; waited %lld ms)", c->path,
                   g_active(g.bits), g_max(g.bits), waited);
  return dbp_err(err, "dbpool: pool full: all %u connections to %s are in use "
                 "(waited %lld ms)", g_max(g.bits), c->path, waited);
}

static void notify_waiter_listeners(dbp_header *h)
{
  atomic_fetch_add(&h->waiter_event, 1);
  if (atomic_load(&h->event_listeners) > 0)
    dbp_futex_wake(&h->waiter_event, INT_MAX, DBP_FUTEX_SHARED);
}

/* Leave the queue (timeout, or the pool was removed). Returns 0 if the slot
** was granted before we got the lock: then we keep it. A timeout (count_timeout)
** is recorded with the wait since start. */
static int leave_queue(dbpool_holder *hd, bool count_timeout, int64_t start)
{
  dbpool_coord *c = hd->c;
  dbp_record *r = hd->rec;
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  uint64_t w = atomic_load(&r->word);
  if (REC_STATE(w) == REC_HELD) {
    dbp_unlock(c);
    return 0;
  }
  if (REC_STATE(w) == REC_WAITING) {
    atomic_store(&r->word, REC_WORD(REC_FREE, REC_SEQ(w)));
    DBP_CRASH_POINT("leaving-queue");
    dbp_queue_remove(c, hd->idx);
  }
  if (count_timeout) dbp_record_timeout(c->hdr, (uint64_t)(dbp_mono_ns() - start));
  dbp_unlock_granting(c);
  return 1;
}

static int wait_in_queue(dbpool_holder *hd, int64_t start, int64_t deadline,
                         dbp_sigwait *sw);

/* The futex wait failed with something other than a wake-up, a timeout or
** a signal (EFAULT, ENOSYS...): leave the queue rather than spin. */
static int cannot_sleep(dbpool_holder *hd, int err, int64_t start)
{
  int rc = leave_queue(hd, false, start);
  if (rc <= 0) return rc; /* granted meanwhile: keep it */
  return dbp_err(err, "dbpool: cannot wait for a slot of %s: %s", hd->c->path,
                 strerror(-err));
}
static int acquire_slow(dbpool_holder *hd, int timeout_ms, dbp_sigwait *sw);

/* An interruptible acquire holds the ending signals pending from before it
** queues (sigwait.c): one that arrives once others can see it waiting is
** never lost to a handler that runs before it sleeps. */
int dbp_acquire_slow(dbpool_holder *hd, int timeout_ms)
{
  if (!hd->interruptible) return acquire_slow(hd, timeout_ms, NULL);
  dbp_sigwait sw;
  dbp_sigwait_begin(&sw);
  int rc = acquire_slow(hd, timeout_ms, &sw);
  dbp_sigwait_end(&sw);
  return rc;
}

/* Under the lock, until we queue: take a free slot if nobody waits (0,
** unlocked), fail (< 0, unlocked), or mark the gate SLOW and return 1 with
** the lock held: we must queue. A try-once looks for dead holders once
** before it says no. */
static int take_or_mark_slow(dbpool_holder *hd, int timeout_ms, int64_t start)
{
  dbpool_coord *c = hd->c;
  dbp_header *h = c->hdr;
  bool reaped = false;
  for (;;) {
    dbp_gate g = dbp_gate_load(h);
    dbp_gate_help(c, g);
    if (g.bits & G_REMOVED) {
      dbp_unlock(c);
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it",
                     c->name, c->path);
    }
    if (!(g.bits & G_PAUSED) && atomic_load(&h->n_waiting) == 0 &&
        g_active(g.bits) < g_max(g.bits)) {
      dbp_gate n = dbp_gate_op(g, hd->idx, false);
      if (!dbp_gate_cas(h, &g, n)) continue;
      atomic_store_explicit(&hd->rec->word, REC_WORD(REC_HELD, n.seq),
                            memory_order_release);
      dbp_unlock(c);
      hd->held = true;
      return 0;
    }
    if (atomic_exchange_explicit(&hd->cancel, 0, memory_order_acquire)) {
      dbp_unlock(c);
      return dbp_err(-ECANCELED, "dbpool: acquire of a slot of %s was cancelled",
                     c->path);
    }
    if (timeout_ms == 0) {
      dbp_unlock(c);
      /* Before saying no: a dead process may hold what we need. */
      if (!reaped && dbp_maybe_reap(c) > 0) {
        reaped = true;
        int rc = dbp_lock(c, -1);
        if (rc) return rc;
        continue;
      }
      dbp_record_timeout(h, (uint64_t)(dbp_mono_ns() - start));
      return timed_out(hd, start, true);
    }
    if (g.bits & G_SLOW) return 1;
    dbp_gate n = {.seq = g.seq, .bits = g.bits | G_SLOW};
    if (dbp_gate_cas(h, &g, n)) return 1;
  }
}

/* Under the lock, which it releases: take a ticket and join the queue. */
static void queue_up(dbpool_holder *hd)
{
  dbpool_coord *c = hd->c;
  dbp_header *h = c->hdr;
  dbp_record *r = hd->rec;
  uint64_t w = atomic_load(&r->word);
  atomic_store(&r->ticket, atomic_fetch_add(&h->next_ticket, 1));
  atomic_store(&r->since_ns, dbp_real_coarse_ns());
  atomic_store_explicit(&r->word, REC_WORD(REC_WAITING, REC_SEQ(w)),
                        memory_order_release);
  q_append(c, hd->idx);
  DBP_CRASH_POINT("queued");
  hd->waiting = true;
  dbp_unlock(c);
  notify_waiter_listeners(h);
}

static int acquire_slow(dbpool_holder *hd, int timeout_ms, dbp_sigwait *sw)
{
  dbpool_coord *c = hd->c;
  dbp_header *h = c->hdr;
  int64_t start = dbp_mono_ns();
  if (timeout_ms == DBPOOL_TIMEOUT_DEFAULT) {
    timeout_ms = atomic_load(&h->acquire_timeout_ms);
    if (timeout_ms < 0 || timeout_ms > DBPOOL_ACQUIRE_TIMEOUT_LIMIT)
      timeout_ms = DBPOOL_ACQUIRE_TIMEOUT_LIMIT;
  }
  int64_t deadline = deadline_of(start, timeout_ms);
  /* Full? A dead process may hold what we need: look before queueing. */
  dbp_gate g0 = dbp_gate_snapshot(h);
  if (g_active(g0.bits) >= g_max(g0.bits)) dbp_maybe_reap(c);

  /* Try-once does not wait for a slot, but may wait for the lock (held for
  ** microseconds; bounded in case its holder is stopped). */
  int rc = dbp_lock(c, timeout_ms == 0 ? start + 100000000 : deadline);
  if (rc == -ETIMEDOUT) {
    dbp_record_timeout(h, (uint64_t)(dbp_mono_ns() - start));
    return timed_out(hd, start, timeout_ms == 0);
  }
  if (rc) return rc;
  rc = take_or_mark_slow(hd, timeout_ms, start);
  if (rc <= 0) return rc;
  queue_up(hd);
  rc = wait_in_queue(hd, start, deadline, sw);
  hd->waiting = false;
  if (rc) return rc;
  hd->held = true;
  dbp_record_wait(h, (uint64_t)(dbp_mono_ns() - start));
  return 0;
}

/* Queued: sleep until granted (0), or leave the queue and fail: deadline,
** removal, cancel, or (sw not NULL: interruptible) an ending signal. */
static int wait_in_queue(dbpool_holder *hd, int64_t start, int64_t deadline,
                         dbp_sigwait *sw)
{
  dbpool_coord *c = hd->c;
  dbp_header *h = c->hdr;
  dbp_record *r = hd->rec;
  bool interrupted = false;
  for (;;) {
    uint32_t v = atomic_load_explicit(&r->wake, memory_order_acquire);
    unsigned state = REC_STATE(atomic_load_explicit(&r->word, memory_order_acquire));
    if (state == REC_HELD) return 0;
    if (state != REC_WAITING) /* our place was taken from us: garbage */
      return dbp_err(-EBADMSG, "dbpool: pool %s lost holder %u's place in "
                     "the queue", c->name, hd->idx);
    bool removed = dbp_gate_snapshot(h).bits & G_REMOVED;
    bool cancelled = atomic_load_explicit(&hd->cancel, memory_order_acquire) != 0;
    int64_t now = dbp_mono_ns();
    if (removed || cancelled || interrupted || (deadline >= 0 && now >= deadline)) {
      int rc = leave_queue(hd, !removed && !cancelled && !interrupted, start);
      if (rc <= 0) return rc; /* 0: granted just in time, keep it */
      if (removed)
        return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it",
                       c->name, c->path);
      if (cancelled) {
        atomic_store_explicit(&hd->cancel, 0, memory_order_relaxed); /* used up */
        return dbp_err(-ECANCELED, "dbpool: acquire of a slot of %s was "
                       "cancelled", c->path);
      }
      if (interrupted)
        return dbp_err(-EINTR, "dbpool: interrupted while waiting for a slot "
                       "of %s", c->path);
      return timed_out(hd, start, false);
    }
    int64_t slice = now + (int64_t)DBP_POLL_MS * 1000000;
    if (deadline >= 0 && deadline < slice) slice = deadline;
    int rc = sw ? dbp_sigwait_sleep(sw, &r->wake, v, slice)
                : dbp_futex_wait(&r->wake, v, slice, DBP_FUTEX_SHARED);
    if (rc == -ETIMEDOUT)
      dbp_maybe_reap(c); /* a dead holder's slot may be ours: see above */
    else if (rc < 0 && rc != -EINTR) /* the kernel refused the wait */
      return cannot_sleep(hd, rc, start);
    interrupted = rc == -EINTR;
  }
}

int dbp_release_slow(dbpool_holder *hd)
{
  dbpool_coord *c = hd->c;
  dbp_header *h = c->hdr;
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  dbp_gate g = dbp_gate_load(h);
  for (;;) {
    dbp_gate_help(c, g);
    if (REC_STATE(atomic_load(&hd->rec->word)) != REC_HELD) {
      /* Taken from us (only recovery from garbage does that). */
      dbp_unlock(c);
      hd->held = false;
      return dbp_err(-EBADMSG, "dbpool: pool %s no longer records holder %u "
                     "as holding a slot", c->name, hd->idx);
    }
    if (g_active(g.bits) == 0) {
      /* The gate says nothing is held while we hold: repair from records. */
      dbp_recover(c);
      g = dbp_gate_load(h);
      if (g_active(g.bits) == 0) {
        dbp_unlock(c);
        hd->held = false;
        return dbp_err(-EBADMSG, "dbpool: pool %s lost track of holder %u",
                       c->name, hd->idx);
      }
      continue;
    }
    dbp_gate n = dbp_gate_op(g, hd->idx, true);
    if (dbp_gate_cas(h, &g, n)) {
      DBP_CRASH_POINT("release-gate-moved");
      atomic_store_explicit(&hd->rec->word, REC_WORD(REC_FREE, n.seq),
                            memory_order_release);
      break;
    }
  }
  hd->held = false;
  dbp_unlock_granting(c);
  return 0;
}
