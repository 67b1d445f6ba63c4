/*
** acquire.c -- dbpool_acquire.
**
** Fast path: pop the most recently used idle connection under the pool lock
** (sync.h), a handful of stores and one store to shared memory (the
** holder's idle flag): no clock, no system call. Otherwise:
**
** - No idle connection, room to open one: reserve an entry and become an
**   "opener": unlock, take a host slot (FIFO with every process), open, run
**   init_sql. A connection of ours released meanwhile is handed to the
**   longest-waiting opener, whose host wait is cancelled (handoff.c).
** - Pool full: queue in arrival order and sleep on a private futex word
**   until a release nudges us or hands us a connection (handoff.c).
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"

/* Under the lock: an idle connection, checked out. */
static inline int take_idle_locked(dbpool *p)
{
  int i = p->idle_top;
  pool_entry *e = &p->entries[i];
  p->idle_top = e->idle_next;
  e->state = ENTRY_OUT;
  p->n_idle--;
  p->n_out++;
  p->st.checkouts++;
  pool_stamp_checkout(p, e, p->cfg.leak_threshold_ms > 0 ? dbp_tid() : 0);
  entry_set_idle(e, 0);
  return i;
}

static void unqueue_locked(dbpool *p, pool_waiter *w)
{
  pool_waiter **pp = &p->wq_head, *prev = NULL;
  for (; *pp; prev = *pp, pp = &(*pp)->next)
    if (*pp == w) {
      *pp = w->next;
      if (p->wq_tail == w) p->wq_tail = prev;
      p->n_waiting--;
      w->queued = false;
      break;
    }
  pool_queue_emptied_locked(p);
}

static void remove_opener_locked(dbpool *p, pool_opener *op)
{
  for (pool_opener **pp = &p->openers; *pp; pp = &(*pp)->next)
    if (*pp == op) {
      *pp = op->next;
      return;
    }
}

static void record_wait_locked(dbpool *p, int64_t start_ns)
{
  uint64_t w = (uint64_t)(dbp_mono_ns() - start_ns);
  p->st.total_wait_ns += w;
  if (w > p->st.max_wait_ns) p->st.max_wait_ns = w;
}

/* Milliseconds to an absolute deadline (-1: none), rounded up: a wait
** given this never ends before the deadline. */
static int left_ms(int64_t deadline)
{
  if (deadline < 0) return -1;
  int64_t left = (deadline - dbp_mono_ns() + 999999) / 1000000;
  return left > 0 ? (int)left : 0;
}

static int closing_error(dbpool *p)
{
  return dbp_err(SQLITE_MISUSE, "dbpool: the pool of %s is closing", p->path);
}

/* Open a connection in reserved entry idx (state OPENING, counted in
** n_total) as an opener. Called and returns with the lock held. */
static int open_reserved(dbpool *p, int idx, int64_t deadline, int64_t start_ns, int *got)
{
  pool_entry *e = &p->entries[idx];
  pool_opener op = {.handed = -1, .reserved = idx, .tid = dbp_tid()};
  pool_opener **tail = &p->openers;
  while (*tail) tail = &(*tail)->next;
  *tail = &op;
  e->open_cancelled = false; /* releases may cancel our host wait from now */
  dbp_holder_uncancel(e->holder);
  unlock_pool(p);
  int rc = conn_open(p, e, left_ms(deadline));
  lock_pool(p);
  remove_opener_locked(p, &op);
  if (rc == SQLITE_OK) {
    p->st.created++;
    map_put(p, e->db, idx);
  }
  if (op.handed >= 0) {
    /* One of ours came free while we waited for the host: take it. A
    ** connection we opened meanwhile anyway goes to the next taker. */
    if (rc == SQLITE_OK) pool_wake(pool_offer_locked(p, idx)); /* rare */
    else pool_entry_emptied_locked(p, idx);
    *got = op.handed;
    record_wait_locked(p, start_ns);
    return SQLITE_OK;
  }
  if (rc != SQLITE_OK) {
    if (rc == SQLITE_BUSY) p->st.timeouts++;
    else if (rc != SQLITE_ABORT) p->st.open_failures++;
    pool_entry_emptied_locked(p, idx);
    return rc == SQLITE_ABORT ? closing_error(p) : rc; /* only close cancels
                                                          without handing */
  }
  if (p->closing) {
    entry_retire_locked(p, idx, CLOSE_POOL_CLOSE);
    pool_close_entry(p, idx);
    return closing_error(p);
  }
  pool_hand_out_locked(p, idx, op.tid);
  record_wait_locked(p, start_ns);
  *got = idx;
  return SQLITE_OK;
}

/* Called and returns with the lock held. deadline: absolute monotonic ns,
** -1 for none; timeout_ms as the caller gave it (0: try once). */
static int acquire_locked(dbpool *p, int64_t deadline, int timeout_ms, int64_t start_ns,
                          int *got)
{
  if (p->closing) return closing_error(p);
  if (p->idle_top >= 0 && (!p->wq_head || !p->starving)) {
    *got = take_idle_locked(p);
    record_wait_locked(p, start_ns);
    return SQLITE_OK;
  }
  if (!p->wq_head && p->n_total < p->cfg.max_size) {
    int idx = 0;
    while (p->entries[idx].state != ENTRY_EMPTY) idx++;
    p->entries[idx].state = ENTRY_OPENING;
    p->n_total++;
    return open_reserved(p, idx, deadline, start_ns, got);
  }
  if (timeout_ms == 0 || (deadline >= 0 && dbp_mono_ns() >= deadline)) {
    p->st.timeouts++;
    return dbp_err(SQLITE_BUSY, "dbpool: pool full: all %d connections of the pool "
                    "of %s are checked out", p->cfg.max_size, p->path);
  }

  /* Queue, then wait to be nudged, handed a connection, or handed an entry
  ** to open. */
  pool_waiter w = {.entry = -1, .queued = true, .since_ns = dbp_mono_ns(), .tid = dbp_tid()};
  if (p->wq_tail) p->wq_tail->next = &w; else p->wq_head = &w;
  p->wq_tail = &w;
  p->n_waiting++;
  for (;;) {
    atomic_store_explicit(&w.word, 0, memory_order_relaxed);
    int64_t until = deadline;
    if (!p->starving) { /* wake when we would start starving */
      int64_t starve_at = w.since_ns + POOL_STARVE_NS;
      if (until < 0 || starve_at < until) until = starve_at;
    }
    unlock_pool(p);
    pool_futex_wait(&w.word, 0, until);
    lock_pool(p);
    if (w.entry >= 0) { /* dequeued by whoever handed us something */
      if (w.retry) return open_reserved(p, w.entry, deadline, start_ns, got);
      record_wait_locked(p, start_ns);
      *got = w.entry;
      /* Like Go's sync.Mutex: handoff mode ends once a waiter is served
      ** before it starved (or the queue is empty). */
      if (dbp_mono_ns() - w.since_ns < POOL_STARVE_NS) p->starving = false;
      return SQLITE_OK;
    }
    if (p->closing) {
      unqueue_locked(p, &w);
      if (p->n_waiting == 0) pool_drain_event_locked(p);
      return closing_error(p);
    }
    int64_t now = dbp_mono_ns();
    if (now - w.since_ns >= POOL_STARVE_NS) p->starving = true;
    if (p->wq_head == &w && p->idle_top >= 0) {
      pool_pop_waiter_locked(p);
      *got = take_idle_locked(p);
      record_wait_locked(p, start_ns);
      if (now - w.since_ns < POOL_STARVE_NS) p->starving = false;
      /* More idle and more waiters: pass the nudge on. */
      if (p->wq_head && p->idle_top >= 0 &&
          atomic_load_explicit(&p->wq_head->word, memory_order_relaxed) == 0) {
        atomic_store_explicit(&p->wq_head->word, 1, memory_order_release);
        pool_futex_wake(&p->wq_head->word, 1);
      }
      return SQLITE_OK;
    }
    if (deadline >= 0 && now >= deadline) {
      unqueue_locked(p, &w);
      p->st.timeouts++;
      return dbp_err(SQLITE_BUSY, "dbpool: pool full: no connection of the pool "
                      "of %s came free within %d ms (max_size=%d, all checked out)",
                      p->path, timeout_ms, p->cfg.max_size);
    }
  }
}

/* Everything but the fast path: waiting, opening, validation. */
__attribute__((noinline)) static int acquire_slow(dbpool *p, sqlite3 **db, int timeout_ms)
{
  int64_t start_ns = dbp_mono_ns();
  int64_t deadline = timeout_ms < 0 ? -1 : start_ns + (int64_t)timeout_ms * 1000000;
  int idx, rc, failed = 0;
  for (;;) {
    lock_pool(p);
    rc = acquire_locked(p, deadline, timeout_ms, start_ns, &idx);
    unlock_pool(p);
    if (rc != SQLITE_OK) break;
    if (!p->validation_sql) break;
    /* The optional validation query, for those who asked for one. */
    pool_entry *e = &p->entries[idx];
    int bad = conn_validate(p, e->db);
    lock_pool(p);
    if (!bad) {
      p->st.validations_passed++;
      unlock_pool(p);
      break;
    }
    p->st.validations_failed++;
    p->st.checkouts--; /* counted when taken; it was not a checkout */
    p->n_out--;
    entry_retire_locked(p, idx, CLOSE_BROKEN);
    pool_close_entry(p, idx);
    failed++;
    if (deadline >= 0 && dbp_mono_ns() >= deadline) {
      p->st.timeouts++;
      unlock_pool(p);
      rc = dbp_err(SQLITE_BUSY, "dbpool: no connection of the pool of %s passed "
                    "validation_sql within %d ms (%d failed it)", p->path,
                    timeout_ms, failed);
      break;
    }
    unlock_pool(p);
  }
  if (rc == SQLITE_OK) *db = p->entries[idx].db;
  return rc;
}

static inline int acquire(dbpool *p, sqlite3 **db, int timeout_ms)
{
  if (!p || !db) return dbp_err(SQLITE_MISUSE, "dbpool: acquire: NULL argument");
  *db = NULL;
  if (pool_foreign(p)) return pool_inherited();
  lock_pool(p);
  if (__builtin_expect(p->idle_top >= 0 && !p->starving && !p->closing &&
                       !p->validation_sql, 1)) { /* the fast path */
    int idx = take_idle_locked(p);
    unlock_pool(p);
    *db = p->entries[idx].db;
    return SQLITE_OK;
  }
  unlock_pool(p);
  return acquire_slow(p, db, timeout_ms);
}

int dbpool_acquire_timeout(dbpool *p, sqlite3 **db, int timeout_ms)
{
  return acquire(p, db, timeout_ms);
}

/* The same body inline, not a call to dbpool_acquire_timeout: the fast path
** is a few dozen instructions. */
int dbpool_acquire(dbpool *p, sqlite3 **db)
{
  return acquire(p, db, p ? p->cfg.acquire_timeout_ms : 0);
}
