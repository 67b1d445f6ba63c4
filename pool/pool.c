/*
** pool.c -- dbpool_open / acquire / release / close and statistics.
**
** Fast path: acquire pops the most recently used idle connection and
** release pushes it back, each under the pool lock (sync.h) with a handful
** of stores and one store to shared memory (the holder's idle flag): no
** clock, no system call. Everything else is the slow path:
**
** - No idle connection, room to open one: reserve an entry and become an
**   "opener": unlock, take a host slot (FIFO with every process), open, run
**   init_sql. A connection of ours released meanwhile is handed to the
**   longest-waiting opener, whose host wait is cancelled.
** - Pool full: queue in arrival order and sleep on a private futex word.
**   Releases nudge the head of the queue; a thread that arrives while a
**   connection is idle may take it first (throughput), but once a waiter
**   has waited STARVE_NS, releases hand connections to the queue's head
**   directly until a waiter is served in time (as Go's sync.Mutex does). So
**   waiters are served in order and none waits unboundedly. A connection
**   closed while threads wait leaves its entry reserved for the head waiter.
** - Release of a dirty connection (open transaction, running statement):
**   reset outside the lock; if that fails, close it.
** - Release while another process waits for a host slot and this pool keeps
**   min_idle idle already: close it and give the slot back.
*/
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "pool_internal.h"

const char *dbpool_errmsg(dbpool *pool)
{
  (void)pool;
  return dbp_errmsg();
}

static int64_t mono_ns(void) { return dbp_mono_ns(); }

static int inherited(void)
{
  return dbp_err(SQLITE_MISUSE, "dbpool: this pool was inherited across "
                  "fork(); a child must open its own pool");
}

static bool foreign(const dbpool *p)
{
  return p->fork_gen != dbp_fork_gen();
}

void dbpool_config_init(dbpool_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->size = (uint32_t)sizeof *cfg;
  cfg->max_size = 10;
  cfg->min_idle = 0;
  cfg->acquire_timeout_ms = 5000;
  cfg->idle_timeout_ms = 600000;
  cfg->max_lifetime_ms = 1800000;
  cfg->leak_threshold_ms = 0;
  cfg->close_timeout_ms = 5000;
  cfg->open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
}

static int check_config(const dbpool_config *c)
{
#define BAD(...) return dbp_err(SQLITE_MISUSE, __VA_ARGS__)
  if (c->max_size < 1 || c->max_size > DBPOOL_MAX_CONNECTIONS_LIMIT)
    BAD("dbpool: max_size=%d is out of range (1..%d)", c->max_size,
        DBPOOL_MAX_CONNECTIONS_LIMIT);
  if (c->min_idle < 0 || c->min_idle > c->max_size)
    BAD("dbpool: min_idle=%d is out of range (0..max_size=%d)", c->min_idle, c->max_size);
  if (c->idle_timeout_ms < 0) BAD("dbpool: idle_timeout_ms=%d is negative", c->idle_timeout_ms);
  if (c->max_lifetime_ms < 0) BAD("dbpool: max_lifetime_ms=%d is negative", c->max_lifetime_ms);
  if (c->leak_threshold_ms < 0)
    BAD("dbpool: leak_threshold_ms=%d is negative", c->leak_threshold_ms);
  if (c->close_timeout_ms < 0) BAD("dbpool: close_timeout_ms=%d is negative", c->close_timeout_ms);
  if (!(c->open_flags & (SQLITE_OPEN_READWRITE | SQLITE_OPEN_READONLY)))
    BAD("dbpool: open_flags=0x%x has neither SQLITE_OPEN_READWRITE nor "
        "SQLITE_OPEN_READONLY", (unsigned)c->open_flags);
#undef BAD
  return SQLITE_OK;
}

static char *dup_or_null(const char *s, bool *oom)
{
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

static void pool_free(dbpool *p)
{
  if (p->entries)
    for (int i = 0; i < p->cfg.max_size; i++) dbpool_holder_free(p->entries[i].holder);
  dbpool_coord_close(p->coord);
  for (int i = 0; i < p->nretired; i++) dbpool_coord_close(p->retired[i]);
  free(p->entries);
  free(p->map);
  free(p->path);
  free(p->uri);
  free(p->init_sql);
  free(p->validation_sql);
  free(p->vfs);
  free(p);
}

/* The caller's configuration as this library's struct: the members its
** size covers, defaults for the rest (a program built with older headers). */
static int full_config(const dbpool_config *given, dbpool_config *full)
{
  dbpool_config_init(full);
  if (!given) return SQLITE_OK;
  if (dbp_sized_check(given, POOL_V1_CONFIG, "dbpool_config", "dbpool_config_init"))
    return SQLITE_MISUSE; /* message set */
  memcpy(full, given, given->size < sizeof *full ? given->size : sizeof *full);
  full->size = (uint32_t)sizeof *full;
  return SQLITE_OK;
}

int dbpool_open(const char *path, const dbpool_config *given, dbpool **out)
{
  dbpool_config config;
  const dbpool_config *cfg = &config;
  if (!out) return dbp_err(SQLITE_MISUSE, "dbpool: open: out is NULL");
  *out = NULL;
  if (!path) return dbp_err(SQLITE_MISUSE, "dbpool: open: path is NULL");
  int rc = full_config(given, &config);
  if (rc) return rc;
  rc = check_config(cfg);
  if (rc) return rc;

  /* The host pool needs the file to exist; SQLite may create it. */
  if (access(path, F_OK) != 0 && (cfg->open_flags & SQLITE_OPEN_CREATE)) {
    sqlite3 *db = NULL;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, cfg->vfs);
    if (rc != SQLITE_OK) {
      dbp_err(rc, "dbpool: cannot create %s: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
      sqlite3_close(db);
      return rc;
    }
    sqlite3_close(db);
  }

  dbpool *p = calloc(1, sizeof *p);
  if (!p) return dbp_err(SQLITE_NOMEM, "dbpool: out of memory");
  p->cfg = *cfg;
  bool oom = false;
  p->path = dup_or_null(path, &oom);
  p->init_sql = dup_or_null(cfg->init_sql, &oom);
  p->validation_sql = dup_or_null(cfg->validation_sql, &oom);
  p->vfs = dup_or_null(cfg->vfs, &oom);
  p->cfg.init_sql = p->init_sql;
  p->cfg.validation_sql = p->validation_sql;
  p->cfg.vfs = p->vfs;
  p->uri = conn_uri(path);
  p->entries = calloc((size_t)cfg->max_size, sizeof *p->entries);
  p->idle_top = -1;
  p->fork_gen = dbp_fork_gen();
  p->real_minus_mono_ns = dbp_real_ns() - mono_ns();
  if (oom || !p->uri || !p->entries || map_init(p) != 0) {
    pool_free(p);
    return dbp_err(SQLITE_NOMEM, "dbpool: out of memory");
  }
  int crc = dbpool_coord_open(path, 0, &p->coord);
  if (crc) {
    rc = dbp_sqlite_rc(crc, SQLITE_CANTOPEN); /* message set */
    pool_free(p);
    return rc;
  }
  p->host_waiting = dbp_coord_waiting_word(p->coord);
  rc = housekeeper_start(p);
  if (rc) {
    pool_free(p);
    return rc;
  }
  *out = p;
  return SQLITE_OK;
}

/* ---------------------------------------------------------------- acquire */

#define STARVE_NS 1000000 /* a waiter this old switches releases to handoff */

static inline void lock(dbpool *p) { pool_lock_acquire(&p->lock); }
static inline void unlock(dbpool *p) { pool_lock_release(&p->lock); }

/* Wake a waiter whose word was set under the lock. Called after unlocking:
** the waiter may already be gone (it needs the lock to leave, which we no
** longer hold), and a wake of a dead stack address only causes a spurious
** wakeup somewhere, which every wait here tolerates. */
void pool_wake(pool_waiter *w)
{
  if (w) pool_futex_wake(&w->word, 1);
}

/* Under the lock: the bookkeeping of a checkout of entry e by this thread
** (tid given for a thread we hand it to). */
static inline void stamp_checkout(dbpool *p, pool_entry *e, int tid)
{
  e->uses++;
  e->leak_reported = false;
  if (p->cfg.leak_threshold_ms > 0) {
    e->checkout_ms = pool_coarse_ms();
    e->checkout_tid = tid;
  }
}

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
  stamp_checkout(p, e, p->cfg.leak_threshold_ms > 0 ? dbp_tid() : 0);
  entry_set_idle(e, 0);
  return i;
}

static void queue_emptied_locked(dbpool *p)
{
  if (!p->wq_head) {
    p->wq_tail = NULL;
    p->starving = false;
  }
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
  queue_emptied_locked(p);
}

static pool_waiter *pop_waiter_locked(dbpool *p)
{
  pool_waiter *w = p->wq_head;
  if (w) {
    p->wq_head = w->next;
    p->n_waiting--;
    w->queued = false;
    queue_emptied_locked(p);
  }
  return w;
}

static void remove_opener_locked(dbpool *p, pool_opener *op)
{
  for (pool_opener **pp = &p->openers; *pp; pp = &(*pp)->next)
    if (*pp == op) {
      *pp = op->next;
      return;
    }
}

static void drain_event_locked(dbpool *p)
{
  atomic_fetch_add(&p->drain_event, 1);
  pool_futex_wake(&p->drain_event, 64);
}

/* Under the lock: entry idx has no connection any more. If threads wait,
** the head one gets the entry reserved to open a connection in it (the
** returned waiter, to wake). */
static pool_waiter *entry_emptied_locked(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  pool_waiter *w = p->closing ? NULL : pop_waiter_locked(p);
  if (w) {
    e->state = ENTRY_OPENING;
    w->entry = idx;
    w->retry = true;
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  e->state = ENTRY_EMPTY;
  p->n_total--;
  if (p->closing && p->n_total == 0) drain_event_locked(p);
  return NULL;
}

void pool_entry_emptied_locked(dbpool *p, int idx)
{
  pool_waiter *w = entry_emptied_locked(p, idx);
  if (w) pool_futex_wake(&w->word, 1); /* rare path: wake under the lock */
}

/* Under the lock: hand entry idx, checked out, to someone waiting. */
static void hand_out_locked(dbpool *p, int idx, int tid)
{
  pool_entry *e = &p->entries[idx];
  e->state = ENTRY_OUT;
  p->n_out++;
  p->st.checkouts++;
  stamp_checkout(p, e, tid);
  entry_set_idle(e, 0);
}

/* Under the lock: call off opener op's wait for a host slot (its acquire
** returns SQLITE_ABORT unless it got the slot already). */
static void cancel_opener_locked(dbpool *p, pool_opener *op)
{
  pool_entry *e = &p->entries[op->reserved];
  e->open_cancelled = true;
  if (e->holder) dbpool_holder_cancel(e->holder);
}

/* Under the lock: entry idx holds a ready connection that nobody has
** checked out (a release, a fresh min_idle connection, a checked one). In
** order: the longest-waiting opener (its host wait is cancelled), a
** starving head waiter (direct handoff), or the idle stack with a nudge to
** the head waiter. Returns the waiter to wake after unlocking. */
pool_waiter *pool_offer_locked(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  if (!p->closing && p->openers) {
    pool_opener *op = p->openers;
    p->openers = op->next;
    hand_out_locked(p, idx, op->tid);
    op->handed = idx;
    cancel_opener_locked(p, op); /* rare: under the lock */
    return NULL;
  }
  pool_waiter *w = p->wq_head;
  if (w && p->starving && !p->closing) {
    pop_waiter_locked(p);
    hand_out_locked(p, idx, w->tid);
    w->entry = idx;
    w->retry = false;
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  e->state = ENTRY_IDLE;
  e->idle_next = p->idle_top;
  p->idle_top = idx;
  p->n_idle++;
  entry_set_idle(e, 1);
  if (w && atomic_load_explicit(&w->word, memory_order_relaxed) == 0) {
    atomic_store_explicit(&w->word, 1, memory_order_release);
    return w;
  }
  return NULL;
}

/* Close entry idx (already retired under the lock) outside it. */
static void close_entry(dbpool *p, int idx)
{
  unlock(p);
  conn_close(p, &p->entries[idx]);
  lock(p);
  pool_entry_emptied_locked(p, idx);
}

static void record_wait_locked(dbpool *p, int64_t start_ns)
{
  uint64_t w = (uint64_t)(mono_ns() - start_ns);
  p->st.total_wait_ns += w;
  if (w > p->st.max_wait_ns) p->st.max_wait_ns = w;
}

/* Milliseconds to an absolute deadline (-1: none), rounded up: a wait
** given this never ends before the deadline. */
static int left_ms(int64_t deadline)
{
  if (deadline < 0) return -1;
  int64_t left = (deadline - mono_ns() + 999999) / 1000000;
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
  unlock(p);
  int rc = conn_open(p, e, left_ms(deadline));
  lock(p);
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
    close_entry(p, idx);
    return closing_error(p);
  }
  hand_out_locked(p, idx, op.tid);
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
  if (timeout_ms == 0 || (deadline >= 0 && mono_ns() >= deadline)) {
    p->st.timeouts++;
    return dbp_err(SQLITE_BUSY, "dbpool: pool full: all %d connections of the pool "
                    "of %s are checked out", p->cfg.max_size, p->path);
  }

  /* Queue, then wait to be nudged, handed a connection, or handed an entry
  ** to open. */
  pool_waiter w = {.entry = -1, .queued = true, .since_ns = mono_ns(), .tid = dbp_tid()};
  if (p->wq_tail) p->wq_tail->next = &w; else p->wq_head = &w;
  p->wq_tail = &w;
  p->n_waiting++;
  for (;;) {
    atomic_store_explicit(&w.word, 0, memory_order_relaxed);
    int64_t until = deadline;
    if (!p->starving) { /* wake when we would start starving */
      int64_t starve_at = w.since_ns + STARVE_NS;
      if (until < 0 || starve_at < until) until = starve_at;
    }
    unlock(p);
    pool_futex_wait(&w.word, 0, until);
    lock(p);
    if (w.entry >= 0) { /* dequeued by whoever handed us something */
      if (w.retry) return open_reserved(p, w.entry, deadline, start_ns, got);
      record_wait_locked(p, start_ns);
      *got = w.entry;
      /* Like Go's sync.Mutex: handoff mode ends once a waiter is served
      ** before it starved (or the queue is empty). */
      if (mono_ns() - w.since_ns < STARVE_NS) p->starving = false;
      return SQLITE_OK;
    }
    if (p->closing) {
      unqueue_locked(p, &w);
      if (p->n_waiting == 0) drain_event_locked(p);
      return closing_error(p);
    }
    int64_t now = mono_ns();
    if (now - w.since_ns >= STARVE_NS) p->starving = true;
    if (p->wq_head == &w && p->idle_top >= 0) {
      pop_waiter_locked(p);
      *got = take_idle_locked(p);
      record_wait_locked(p, start_ns);
      if (now - w.since_ns < STARVE_NS) p->starving = false;
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
  int64_t start_ns = mono_ns();
  int64_t deadline = timeout_ms < 0 ? -1 : start_ns + (int64_t)timeout_ms * 1000000;
  int idx, rc, failed = 0;
  for (;;) {
    lock(p);
    rc = acquire_locked(p, deadline, timeout_ms, start_ns, &idx);
    unlock(p);
    if (rc != SQLITE_OK) break;
    if (!p->validation_sql) break;
    /* The optional validation query, for those who asked for one. */
    pool_entry *e = &p->entries[idx];
    int bad = conn_validate(p, e->db);
    lock(p);
    if (!bad) {
      p->st.validations_passed++;
      unlock(p);
      break;
    }
    p->st.validations_failed++;
    p->st.checkouts--; /* counted when taken; it was not a checkout */
    p->n_out--;
    entry_retire_locked(p, idx, CLOSE_BROKEN);
    close_entry(p, idx);
    failed++;
    if (deadline >= 0 && mono_ns() >= deadline) {
      p->st.timeouts++;
      unlock(p);
      rc = dbp_err(SQLITE_BUSY, "dbpool: no connection of the pool of %s passed "
                    "validation_sql within %d ms (%d failed it)", p->path,
                    timeout_ms, failed);
      break;
    }
    unlock(p);
  }
  if (rc == SQLITE_OK) *db = p->entries[idx].db;
  return rc;
}

int dbpool_acquire_timeout(dbpool *p, sqlite3 **db, int timeout_ms)
{
  if (!p || !db) return dbp_err(SQLITE_MISUSE, "dbpool: acquire: NULL argument");
  *db = NULL;
  if (foreign(p)) return inherited();
  lock(p);
  if (__builtin_expect(p->idle_top >= 0 && !p->starving && !p->closing &&
                       !p->validation_sql, 1)) { /* the fast path */
    int idx = take_idle_locked(p);
    unlock(p);
    *db = p->entries[idx].db;
    return SQLITE_OK;
  }
  unlock(p);
  return acquire_slow(p, db, timeout_ms);
}

int dbpool_acquire(dbpool *p, sqlite3 **db)
{
  return dbpool_acquire_timeout(p, db, p ? p->cfg.acquire_timeout_ms : 0);
}

/* ---------------------------------------------------------------- release */

/* A leak report (built under the lock, delivered outside it). */
static dbpool_leak leak_of(dbpool *p, const pool_entry *e, int returned)
{
  int64_t now = pool_coarse_ms();
  dbpool_leak leak = {.size = sizeof leak, .db = e->db, .database = p->path,
                      .thread = e->checkout_tid,
                      .acquired_at_ns = e->checkout_ms * 1000000 + p->real_minus_mono_ns,
                      .held_ms = now - e->checkout_ms, .returned = returned};
  return leak;
}

dbpool_leak pool_leak_of(dbpool *p, const pool_entry *e) { return leak_of(p, e, 0); }

void pool_report_leak(dbpool *p, const dbpool_leak *leak)
{
  if (leak->returned)
    sqlite3_log(SQLITE_WARNING, "dbpool: connection %p to %s, reported as "
                "possibly leaked, came back after %lld ms (thread %d)",
                (void *)leak->db, p->path, (long long)leak->held_ms, leak->thread);
  else
    sqlite3_log(SQLITE_WARNING, "dbpool: connection %p to %s has been held for "
                "%lld ms by thread %d (leak_threshold_ms=%d): possible leak",
                (void *)leak->db, p->path, (long long)leak->held_ms, leak->thread,
                p->cfg.leak_threshold_ms);
  if (p->cfg.on_leak) p->cfg.on_leak(p->cfg.on_leak_arg, leak);
}

static int release_misuse(dbpool *p, sqlite3 *db)
{
  p->st.misuses++;
  unlock(p);
  return dbp_err(SQLITE_MISUSE, "dbpool: release of connection %p, which is "
                  "not checked out from the pool of %s (released twice, or "
                  "never acquired from it)", (void *)db, p->path);
}

/* A release that resets, closes, gives back or reports. Lock held; entry
** idx is checked out. */
__attribute__((noinline)) static int release_slow(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  sqlite3 *db = e->db;
  close_reason why = CLOSE_IDLE;
  bool close_it = false;
  if (conn_needs_reset(db)) {
    e->state = ENTRY_RESETTING; /* refuses a second release meanwhile */
    unlock(p);
    int dirty = conn_reset(db);
    lock(p);
    p->st.resets++;
    if (dirty) {
      close_it = true;
      why = CLOSE_RESET_FAILED;
    }
    e->state = ENTRY_OUT;
  }
  bool leaked = e->leak_reported;
  dbpool_leak leak;
  if (leaked) leak = leak_of(p, e, 1);
  e->leak_reported = false;
  if (!close_it && (e->retire || p->closing)) {
    close_it = true;
    why = p->closing ? CLOSE_POOL_CLOSE : e->retire_why;
  }
  if (!close_it && !p->wq_head && !p->openers && p->n_idle >= p->cfg.min_idle &&
      host_has_waiters(p)) {
    close_it = true; /* another process waits for a slot: give ours back */
    why = CLOSE_GIVEN_BACK;
  }
  p->n_out--;
  pool_waiter *wake = NULL;
  if (close_it) {
    entry_retire_locked(p, idx, why);
    close_entry(p, idx);
  } else {
    wake = pool_offer_locked(p, idx);
  }
  unlock(p);
  pool_wake(wake);
  if (leaked) pool_report_leak(p, &leak);
  return SQLITE_OK;
}

int dbpool_release(dbpool *p, sqlite3 *db)
{
  if (!p) return dbp_err(SQLITE_MISUSE, "dbpool: release: pool is NULL");
  if (foreign(p)) return inherited();
  lock(p);
  int idx = db ? map_get(p, db) : -1;
  if (idx < 0 || p->entries[idx].state != ENTRY_OUT) return release_misuse(p, db);
  pool_entry *e = &p->entries[idx];
  /* The fast path: clean, nothing to report, nobody else to think of. */
  if (__builtin_expect(!e->leak_reported && !e->retire && !p->closing &&
                       !conn_needs_reset(db) &&
                       (p->wq_head || p->openers || p->n_idle < p->cfg.min_idle ||
                        !host_has_waiters(p)), 1)) {
    p->n_out--;
    pool_waiter *wake = pool_offer_locked(p, idx);
    unlock(p);
    pool_wake(wake);
    return SQLITE_OK;
  }
  return release_slow(p, idx);
}

/* ------------------------------------------------------------------ close */

int dbpool_close(dbpool *p)
{
  if (!p) return SQLITE_OK;
  if (foreign(p)) return inherited();
  housekeeper_stop(p);
  lock(p);
  p->closing = true;
  for (pool_waiter *w = p->wq_head; w; w = w->next) {
    atomic_store(&w->word, 1);
    pool_futex_wake(&w->word, 1);
  }
  for (pool_opener *op = p->openers; op; op = op->next) {
    cancel_opener_locked(p, op);
  }
  while (p->idle_top >= 0) {
    int idx = p->idle_top;
    p->idle_top = p->entries[idx].idle_next;
    p->n_idle--;
    entry_retire_locked(p, idx, CLOSE_POOL_CLOSE);
    close_entry(p, idx);
  }
  int64_t deadline = mono_ns() + (int64_t)p->cfg.close_timeout_ms * 1000000;
  while ((p->n_total > 0 || p->n_waiting > 0) && mono_ns() < deadline) {
    uint32_t v = atomic_load(&p->drain_event);
    unlock(p);
    pool_futex_wait(&p->drain_event, v, deadline);
    lock(p);
  }
  int out = p->n_total, waiting = p->n_waiting;
  unlock(p);
  if (out > 0 || waiting > 0)
    return dbp_err(SQLITE_BUSY, "dbpool: close: %d connection%s of %s still "
                    "checked out after %d ms; the pool stays open (closing) "
                    "until they are released and dbpool_close is called again",
                    out, out == 1 ? "" : "s", p->path, p->cfg.close_timeout_ms);
  pool_free(p);
  return SQLITE_OK;
}

/* ------------------------------------------------------------- statistics */

static int stats_full(dbpool *p, dbpool_stats *out);

int dbpool_get_stats(dbpool *p, dbpool_stats *out)
{
  if (!p || !out) return dbp_err(SQLITE_MISUSE, "dbpool: get_stats: NULL argument");
  if (foreign(p)) return inherited();
  if (dbp_sized_check(out, POOL_V1_STATS, "dbpool_stats", "DBPOOL_INIT"))
    return SQLITE_MISUSE; /* message set */
  dbpool_stats full;
  int rc = stats_full(p, &full);
  if (rc == SQLITE_OK) dbp_sized_out(out, &full, sizeof full);
  return rc;
}

static int stats_full(dbpool *p, dbpool_stats *out)
{
  lock(p);
  *out = p->st;
  out->size = (uint32_t)sizeof *out;
  out->max_size = p->cfg.max_size;
  out->min_idle = p->cfg.min_idle;
  out->active = p->n_out;
  out->idle = p->n_idle;
  out->total = p->n_total;
  out->waiting = p->n_waiting;
  out->available = p->n_idle + (p->cfg.max_size - p->n_total);
  unlock(p);
  out->utilization = (double)out->active / out->max_size;
  out->avg_wait_ms = out->checkouts ? (double)out->total_wait_ns / 1e6 / (double)out->checkouts : 0;
  return SQLITE_OK;
}

int dbpool_get_host_stats(dbpool *p, dbpool_host_stats *out)
{
  if (!p || !out) return dbp_err(SQLITE_MISUSE, "dbpool: get_host_stats: NULL argument");
  if (foreign(p)) return inherited();
  if (dbp_sized_check(out, DBP_V1_HOST_STATS, "dbpool_host_stats", "DBPOOL_INIT"))
    return SQLITE_MISUSE; /* message set */
  int rc = dbpool_coord_stats(p->coord, out);
  return rc ? dbp_sqlite_rc(rc, SQLITE_ERROR) : SQLITE_OK; /* message set */
  return SQLITE_OK;
}
