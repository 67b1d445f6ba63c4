/*
** pool_internal.h -- the in-process connection pool's private structures.
**
** One lock (sync.h) guards everything here; the critical sections are short,
** and no SQLite call that can block, no system call, and no clock read
** happens under it on the acquire/release fast path. Connections are
** opened, closed and reset outside the lock.
*/
#ifndef DBPOOL_POOL_INTERNAL_H
#define DBPOOL_POOL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "dbpool.h"
#include "coordinator/private.h"
#include "base/sqlite_rc.h"
#include "sync.h"

#define POOL_HIDDEN __attribute__((visibility("hidden")))

/* Where the growable structs of dbpool.h end in their first version
** (base/sized.c): never change these. */
#define POOL_V1_CONFIG DBP_END_OF(dbpool_config, on_leak_arg)
#define POOL_V1_STATS DBP_END_OF(dbpool_stats, misuses)

typedef enum entry_state {
  ENTRY_EMPTY = 0, /* no connection */
  ENTRY_OPENING,   /* being opened by an acquirer or the housekeeper */
  ENTRY_IDLE,      /* open, on the idle stack */
  ENTRY_OUT,       /* checked out */
  ENTRY_RESETTING, /* being reset on release */
  ENTRY_CHECKING,  /* taken off the idle stack by the housekeeper */
  ENTRY_CLOSING    /* being closed */
} entry_state;

/* Why a connection is closed (for statistics). */
typedef enum close_reason {
  CLOSE_IDLE, CLOSE_LIFETIME, CLOSE_BROKEN, CLOSE_RESET_FAILED,
  CLOSE_GIVEN_BACK, CLOSE_POOL_CLOSE
} close_reason;

typedef struct pool_entry {
  sqlite3 *db;
  dbpool_holder *holder; /* our host slot record, kept across connections */
  _Atomic uint32_t *idle_word; /* its idle flag in shared memory */
  entry_state state;
  int idle_next;         /* idle stack link (index, -1 ends) */
  int64_t expires_ms;    /* max lifetime deadline (monotonic ms), 0 never */
  uint64_t uses;         /* checkouts so far: the housekeeper's idle clock */
  uint64_t hk_uses;      /* uses when the housekeeper last looked */
  int64_t hk_idle_seen_ms; /* when it first saw this entry idle since then */
  int64_t checkout_ms;   /* monotonic, only with leak detection on */
  int checkout_tid;
  bool retire;           /* close instead of reusing when released */
  close_reason retire_why; /* and count it as this */
  bool leak_reported;
  bool open_cancelled;   /* its opener's host wait was called off (a
                            connection of ours was handed to it) */
} pool_entry;

/* A thread waiting in dbpool_acquire because the pool is full (on its
** stack), queued in arrival order. Only the head of the queue may take an
** idle connection; a release nudges it (word = 1) or, once a waiter has
** waited STARVE_NS, hands the connection to it directly. */
typedef struct pool_waiter {
  _Atomic uint32_t word; /* futex: 1 = look again */
  int entry;        /* handed a checked-out entry (or one to open), or -1 */
  bool retry;       /* entry is reserved for us to open a connection in */
  bool queued;
  int tid;
  int64_t since_ns;
  struct pool_waiter *next;
} pool_waiter;

/* A thread opening a connection in a reserved entry, usually waiting for a
** host slot (on its stack). A connection of ours that comes free meanwhile
** goes to it first: the release cancels its host wait (dbpool_holder_cancel
** on the entry's holder, or, before the entry has one, open_cancelled for
** the holder it gets). */
typedef struct pool_opener {
  int handed;       /* a checked-out entry handed to us, or -1 */
  int reserved;     /* the entry we are opening */
  int tid;
  struct pool_opener *next;
} pool_opener;


struct dbpool {
  pool_lock lock;
  dbpool_config cfg;
  char *path;     /* the database file */
  char *uri;      /* "file:<percent-encoded path>" */
  char *init_sql, *validation_sql, *vfs; /* owned copies */
  dbpool_coord *coord;  /* the host pool (replaced if it is removed) */
  const _Atomic uint32_t *host_waiting; /* waiters queued for host slots */
  dbpool_coord *retired[8]; /* host pools removed under us, closed at the end */
  int nretired;
  unsigned fork_gen;

  pool_entry *entries; /* cfg.max_size of them */
  int idle_top;        /* idle stack (most recently used on top) */
  int n_idle, n_out, n_total;
  pool_waiter *wq_head, *wq_tail;
  int n_waiting;
  pool_opener *openers; /* in arrival order */
  bool starving;  /* a waiter waited STARVE_NS: releases hand off directly */
  bool closing;
  _Atomic uint32_t drain_event; /* futex: bumped as close's wait may end */

  /* sqlite3* -> entry index: open addressing, linear probing. */
  struct map_slot { sqlite3 *db; int idx; } *map;
  unsigned map_mask;

  int64_t real_minus_mono_ns; /* to report wall-clock times */
  pthread_t housekeeper;
  bool hk_started, hk_stop;
  _Atomic uint32_t hk_event; /* futex: bumped to stop the housekeeper */
  int hk_period_ms;
  struct hk_work *hk_work;   /* its memory, made before it starts */

  dbpool_stats st; /* counters (the gauges are computed on demand) */
};

/* Milliseconds of the monotonic clock (base/base.h): the precise one for
** deadlines, the coarse one (4 ms steps, no system call) for stamps on the
** fast path. */
static inline int64_t pool_mono_ms(void) { return dbp_mono_ns() / 1000000; }
static inline int64_t pool_coarse_ms(void) { return dbp_mono_coarse_ns() / 1000000; }

#define POOL_STARVE_NS 1000000 /* a waiter this old switches releases to handoff */

static inline void lock_pool(dbpool *p) { pool_lock_acquire(&p->lock); }
static inline void unlock_pool(dbpool *p) { pool_lock_release(&p->lock); }

/* Was the pool inherited across fork()? (Every call refuses then.) */
static inline bool pool_foreign(const dbpool *p) { return p->fork_gen != dbp_fork_gen(); }

/* Under the lock: the bookkeeping of a checkout of entry e by this thread
** (tid given for a thread we hand it to). */
static inline void pool_stamp_checkout(dbpool *p, pool_entry *e, int tid)
{
  e->uses++;
  e->leak_reported = false;
  if (p->cfg.leak_threshold_ms > 0) {
    e->checkout_ms = pool_coarse_ms();
    e->checkout_tid = tid;
  }
}

/* Wake a waiter whose word was set under the lock. Called after unlocking:
** the waiter may already be gone (it needs the lock to leave, which we no
** longer hold), and a wake of a dead stack address only causes a spurious
** wakeup somewhere, which every wait here tolerates. Inline: every release
** calls it, nearly always with NULL. */
static inline void pool_wake(pool_waiter *w)
{
  if (w) pool_futex_wake(&w->word, 1);
}

/* lifecycle.c */
POOL_HIDDEN int pool_inherited(void); /* SQLITE_MISUSE with its message */

/* release.c: leak reports (built under the lock, delivered outside it). */
POOL_HIDDEN void pool_report_leak(dbpool *p, const dbpool_leak *leak);
POOL_HIDDEN dbpool_leak pool_leak_of(dbpool *p, const pool_entry *e);

/* handoff.c: the waiters' queue, the openers, and who gets a connection
** that comes free. All under the lock. */
POOL_HIDDEN void pool_entry_emptied_locked(dbpool *p, int idx);
POOL_HIDDEN pool_waiter *pool_offer_locked(dbpool *p, int idx);
POOL_HIDDEN void pool_queue_emptied_locked(dbpool *p);
POOL_HIDDEN pool_waiter *pool_pop_waiter_locked(dbpool *p);
POOL_HIDDEN void pool_drain_event_locked(dbpool *p);
POOL_HIDDEN void pool_hand_out_locked(dbpool *p, int idx, int tid);
POOL_HIDDEN void pool_cancel_opener_locked(dbpool *p, pool_opener *op);
/* Close entry idx (already retired under the lock) outside it: unlocks,
** closes, locks again. */
POOL_HIDDEN void pool_close_entry(dbpool *p, int idx);

/* Mark entry e's slot idle (1) or in use (0) in the host pool. */
static inline void entry_set_idle(pool_entry *e, int idle)
{
  atomic_store_explicit(e->idle_word, idle ? DBP_FAST_IDLE_FLAG : 0,
                        memory_order_relaxed);
}

/* Is anyone (in any process) queued for a host slot? */
static inline bool host_has_waiters(const dbpool *p)
{
  return atomic_load_explicit(p->host_waiting, memory_order_relaxed) != 0;
}

/* Under the lock: entry idx (its connection clean) goes on top of the idle
** stack. pool_offer_locked's last step; inline for the release fast path. */
static inline void pool_push_idle_locked(dbpool *p, int idx)
{
  pool_entry *e = &p->entries[idx];
  e->state = ENTRY_IDLE;
  e->idle_next = p->idle_top;
  p->idle_top = idx;
  p->n_idle++;
  entry_set_idle(e, 1);
}

/* conn.c: opening, resetting and closing connections. */
POOL_HIDDEN int conn_open(dbpool *p, pool_entry *e, int timeout_ms);
POOL_HIDDEN int conn_needs_reset(sqlite3 *db);
POOL_HIDDEN int conn_reset(sqlite3 *db);
POOL_HIDDEN int conn_has_moved(sqlite3 *db);
POOL_HIDDEN int conn_validate(dbpool *p, sqlite3 *db);
POOL_HIDDEN void conn_close(dbpool *p, pool_entry *e);
POOL_HIDDEN void entry_retire_locked(dbpool *p, int idx, close_reason why);
POOL_HIDDEN char *conn_uri(const char *path);

/* map.c */
POOL_HIDDEN int map_init(dbpool *p);
POOL_HIDDEN void map_put(dbpool *p, sqlite3 *db, int idx);
static inline unsigned map_slot_of(const dbpool *p, sqlite3 *db)
{
  uint64_t h = (uint64_t)(uintptr_t)db * UINT64_C(0x9E3779B97F4A7C15);
  return (unsigned)(h >> 32) & p->map_mask;
}
/* The entry of db, or -1 (inline: every release looks). */
static inline int map_get(const dbpool *p, sqlite3 *db)
{
  for (unsigned i = map_slot_of(p, db);; i = (i + 1) & p->map_mask) {
    if (p->map[i].db == db) return p->map[i].idx;
    if (!p->map[i].db) return -1;
  }
}
POOL_HIDDEN void map_del(dbpool *p, sqlite3 *db);

/* housekeeper.c */
POOL_HIDDEN int housekeeper_start(dbpool *p);
POOL_HIDDEN void housekeeper_stop(dbpool *p);

#endif
