/*
** dbpool.h -- an in-process SQLite connection pool under the host-wide cap.
**
** A threaded C application gets each handler its own connection, reused
** across requests, and every open connection holds one slot of the
** database's host-wide pool (dbpool_coord.h): all processes together never
** exceed max_connections, and a pool with idle connections gives them back
** when another process waits.
**
**   dbpool_config cfg;
**   dbpool_config_init(&cfg);
**   cfg.max_size = 8;
**   cfg.init_sql = "PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000;";
**   dbpool *pool;
**   if (dbpool_open("/srv/app.db", &cfg, &pool) != SQLITE_OK) ...
**   sqlite3 *db;
**   if (dbpool_acquire(pool, &db) == SQLITE_OK) {
**     ... use db from this thread ...
**     dbpool_release(pool, db);
**   } else fprintf(stderr, "%s\n", dbpool_errmsg(pool));
**   dbpool_close(pool);
**
** Functions return SQLite result codes. dbpool_errmsg() gives the calling
** thread's message for its last failure.
**
** Threads: every function is thread-safe. A connection is used by one
** thread at a time; any thread may release it. Connections are opened with
** SQLITE_OPEN_NOMUTEX by default (the pool guarantees exclusive use).
**
** Where time-based work happens: idle timeout, max lifetime, min_idle, leak
** detection, file-moved checks and giving idle slots back to other
** processes all run in one housekeeping thread per pool, never in
** dbpool_acquire/dbpool_release: the fast path then needs no clock and no
** system call, and idle connections are closed even when nobody calls the
** pool. Releases also give a connection back to the host at once (instead
** of keeping it idle) when another process is waiting.
**
** fork(): a pool inherited across fork() refuses every call in the child
** with SQLITE_MISUSE and touches none of the parent's connections or slots.
*/
#ifndef DBPOOL_H
#define DBPOOL_H

#include <sqlite3.h>
#include <stdint.h>

#include "dbpool_coord.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct dbpool dbpool;

/* A connection held past leak_threshold_ms, reported once when detected
** (returned == 0) and again when it comes back (returned == 1). */
typedef struct dbpool_leak {
  uint32_t size;          /* the bytes of this struct the library filled */
  sqlite3 *db;
  const char *database;   /* the pool's database path */
  int thread;             /* thread id (gettid) that acquired it */
  int64_t acquired_at_ns; /* CLOCK_REALTIME */
  int64_t held_ms;        /* so far, or in all when returned */
  int returned;
} dbpool_leak;

typedef struct dbpool_config {
  uint32_t size;          /* set by dbpool_config_init: members past it
                             (a program built with older headers) take
                             their defaults */
  int max_size;           /* most connections this pool opens (10) */
  int min_idle;           /* idle connections kept open, even when other
                             processes wait (0) */
  int acquire_timeout_ms; /* dbpool_acquire's wait, in this pool and for a
                             host slot together (5000); < 0 waits forever */
  int idle_timeout_ms;    /* close connections idle this long, down to
                             min_idle (600000; 0 = never) */
  int max_lifetime_ms;    /* retire connections this old, each minus up to
                             2.5% at random so they do not all expire
                             together (1800000; 0 = never) */
  int leak_threshold_ms;  /* report connections held longer (0 = off) */
  int close_timeout_ms;   /* dbpool_close waits this long for connections
                             still checked out (5000) */
  int open_flags;         /* sqlite3_open_v2 flags (READWRITE | CREATE |
                             NOMUTEX); URI is always added */
  const char *vfs;        /* VFS name, or NULL for the default */
  const char *init_sql;   /* run once on each new connection, or NULL */
  const char *validation_sql; /* run at each checkout, or NULL (default:
                             health is checked without a query) */
  /* on_leak, or NULL: called for each report of a leak, in the pool's
  ** housekeeping thread when detected (returned == 0) and in the thread
  ** calling dbpool_release when it comes back (returned == 1), with no
  ** lock of the pool held. It may call any dbpool function, except
  ** dbpool_close of this pool from the housekeeping thread (close waits
  ** for that thread); it should return soon, as housekeeping waits. */
  void (*on_leak)(void *arg, const dbpool_leak *leak);
  void *on_leak_arg;
} dbpool_config;

typedef struct dbpool_stats {
  uint32_t size;   /* DBPOOL_INIT; then the bytes filled */
  int max_size, min_idle;
  int active;      /* checked out now */
  int idle;        /* open and waiting in the pool */
  int total;       /* open or being opened */
  int waiting;     /* threads waiting in dbpool_acquire */
  int available;   /* could be handed out without waiting on this pool:
                      idle + (max_size - total) */
  double utilization; /* active / max_size */
  uint64_t checkouts;        /* successful acquires */
  uint64_t timeouts;         /* acquires that timed out (pool or host) */
  uint64_t total_wait_ns, max_wait_ns;
  double avg_wait_ms;        /* per checkout */
  uint64_t created;          /* connections opened */
  uint64_t open_failures;    /* opens or init_sql that failed */
  uint64_t closed;           /* connections closed, by reason: */
  uint64_t closed_idle;      /*   idle_timeout */
  uint64_t closed_lifetime;  /*   max_lifetime */
  uint64_t closed_broken;    /*   file moved/deleted, validation failed */
  uint64_t closed_reset_failed; /* could not be rolled back on release */
  uint64_t closed_given_back;   /* idle slot given to a waiting process */
  uint64_t closed_pool_close;   /* dbpool_close */
  uint64_t validations_passed, validations_failed;
  uint64_t leaks_reported;
  uint64_t resets;           /* releases that rolled back or reset */
  uint64_t misuses;          /* bad or double releases refused */
} dbpool_stats;

/* dbpool_config_init: fill cfg with the defaults shown above, and its
** size. */
DBPOOL_EXTERN void dbpool_config_init(dbpool_config *cfg);

/*
** dbpool_open: create a pool for the database at path (which must exist,
** unless open_flags has SQLITE_OPEN_CREATE and it can be created) and attach
** to its host-wide pool. cfg NULL means defaults; it is copied. Connections
** open lazily, except min_idle ones, opened by the housekeeper.
** Returns SQLITE_OK and *out, SQLITE_MISUSE (bad config: the message names
** the field and value), SQLITE_CANTOPEN, SQLITE_NOMEM, SQLITE_PERM.
** On failure *out is NULL and dbpool_errmsg(NULL) has the message.
*/
DBPOOL_EXTERN int dbpool_open(const char *path, const dbpool_config *cfg,
                              dbpool **out);

/*
** dbpool_acquire: check a connection out, waiting up to acquire_timeout_ms
** for one of this pool's connections or for a host slot to open a new one.
** Waiting threads are served in arrival order. Returns SQLITE_OK and *db,
** SQLITE_BUSY on timeout (message: which wait timed out and how long),
** SQLITE_MISUSE when the pool is closing or was inherited across fork(), or
** the error of opening the connection or running init_sql.
*/
DBPOOL_EXTERN int dbpool_acquire(dbpool *pool, sqlite3 **db);

/* dbpool_acquire_timeout: the same with a per-call timeout (0 tries once,
** negative waits forever). */
DBPOOL_EXTERN int dbpool_acquire_timeout(dbpool *pool, sqlite3 **db,
                                         int timeout_ms);

/*
** dbpool_release: check a connection back in. An open transaction is
** rolled back and statements left running are reset; a connection that
** cannot be reset is closed (counted in closed_reset_failed). Releasing a
** connection that is not checked out from this pool, or twice, returns
** SQLITE_MISUSE with a message and changes nothing.
*/
DBPOOL_EXTERN int dbpool_release(dbpool *pool, sqlite3 *db);

/*
** dbpool_close: new acquires fail at once; waits up to close_timeout_ms for
** checked-out connections to come back, then closes every connection,
** returns every slot and frees the pool: SQLITE_OK. If some are still out
** after the wait, it closes the rest and returns SQLITE_BUSY: the pool stays
** allocated (closing); each late release closes its connection, and a later
** dbpool_close call finishes. NULL is a no-op.
*/
DBPOOL_EXTERN int dbpool_close(dbpool *pool);

/* dbpool_get_stats: a snapshot of the pool's statistics (out->size set by
** DBPOOL_INIT; SQLITE_MISUSE for a size below the first version's). */
DBPOOL_EXTERN int dbpool_get_stats(dbpool *pool, dbpool_stats *out);

/* dbpool_get_host_stats: the host-wide pool's statistics (all processes;
** out->size set by DBPOOL_INIT). */
DBPOOL_EXTERN int dbpool_get_host_stats(dbpool *pool, dbpool_host_stats *out);

/*
** dbpool_errmsg: the calling thread's message for its last failed call on
** any pool (pool may be NULL, e.g. after dbpool_open failed). Never NULL.
*/
DBPOOL_EXTERN const char *dbpool_errmsg(dbpool *pool);

#ifdef __cplusplus
}
#endif
#endif /* DBPOOL_H */
