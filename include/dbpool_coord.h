/*
** dbpool_coord.h -- the host-wide connection cap, independent of SQLite:
** what a program that counts its own connections needs. Listing, removing,
** collecting and inspecting pools (what dbpoolctl does) is dbpool_admin.h.
**
** One pool exists per database file on the host, kept in a POSIX shared
** memory segment keyed by the file's (st_dev, st_ino). Every process that
** attaches to it shares one limit (max_connections), one FIFO queue of
** waiters, live settings and cumulative statistics. Slots held or waited for
** by a process that dies (SIGKILL included) are reclaimed by the survivors.
**
**   dbpool_coord *c;
**   dbpool_holder *h;
**   if (dbpool_coord_open("/srv/app.db", 0, &c) != 0 ||
**       dbpool_holder_new(c, &h) != 0) {
**     fprintf(stderr, "%s\n", dbpool_last_error());
**     return 1;
**   }
**   if (dbpool_holder_acquire(h, DBPOOL_TIMEOUT_DEFAULT) == 0) {
**     ... open and use one connection ...
**     dbpool_holder_release(h);
**   }
**   dbpool_holder_free(h);
**   dbpool_coord_close(c);
**
** Vocabulary
**   pool     the shared state of one database file (a dbpool_coord handle
**            is this process's attachment to it);
**   slot     one unit of max_connections: what a holder holds;
**   holder   one record in the pool that can hold one slot or wait for one
**            (the SQLite extension keeps one per connection, the C pool one
**            per pooled connection); it is created once and then acquires
**            and releases any number of times;
**   record   a holder's numbered place in the pool's table of holders (up
**            to 8191 per pool), shown by dbpool_coord_holders.
**
** Errors: every function that can fail returns 0 (or a count) on success and
** a negative errno value on failure; dbpool_strerror() names it and
** dbpool_last_error() gives this thread's detailed message for the last
** failure (naming the path, value or limit involved). The library never
** prints, and never aborts or exits the process.
**
** Process and thread safety: all functions are thread-safe unless a comment
** says otherwise. A dbpool_holder must not be used by two threads at the same
** time (acquire from one thread and release from another is fine;
** dbpool_holder_cancel may be called from any thread at any time). Handles
** are per process: after fork() the child must not use holders created by the
** parent (it gets -EPERM and the parent's slots are untouched); a child that
** opens pools or creates holders attaches as itself.
**
** Growable structs (docs/c-api.md, "ABI stability"): a struct the caller
** hands in starts with a size member, which the caller sets with
** DBPOOL_INIT(&s) (or dbpool_config_init) so that members can be added at
** the end without breaking programs built against older headers. The
** library refuses a size smaller than the struct's first version (-EINVAL,
** SQLITE_MISUSE), reads and writes only the members that fit, and sets size
** to the bytes it filled. Arrays of structs come with the size of one
** element (sizeof buf[0]); structs the library hands out (callback
** arguments, descriptors) carry the size it filled.
*/
#ifndef DBPOOL_COORD_H
#define DBPOOL_COORD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dbpool_version.h"

#ifdef __cplusplus
extern "C" {
#endif

#if defined(DBPOOL_BUILDING) && defined(__GNUC__)
#define DBPOOL_EXTERN __attribute__((visibility("default")))
#else
#define DBPOOL_EXTERN /* nothing */
#endif

/* Limits of a pool. */
#define DBPOOL_MAX_CONNECTIONS_LIMIT 4096 /* highest max_connections */
#define DBPOOL_ACQUIRE_TIMEOUT_LIMIT 86400000 /* highest acquire_timeout_ms */
#define DBPOOL_WRITER_STARVATION_LIMIT 60000 /* highest writer_starvation_ms */
#define DBPOOL_LABEL_MAX 48  /* label bytes including the terminating NUL */
#define DBPOOL_PROCESS_NAME_MAX 16 /* process name bytes including the NUL */
#define DBPOOL_PATH_MAX 1024 /* recorded database path, including the NUL */

/* Environment variables read by the library. */
#define DBPOOL_ENV_NAMESPACE "DBPOOL_NAMESPACE"
#define DBPOOL_ENV_MAX_CONNECTIONS "DBPOOL_MAX_CONNECTIONS"
#define DBPOOL_ENV_ACQUIRE_TIMEOUT_MS "DBPOOL_ACQUIRE_TIMEOUT_MS"

/* Timeouts for dbpool_holder_acquire(). */
#define DBPOOL_TIMEOUT_DEFAULT (-2147483647 - 1) /* the pool's setting */
#define DBPOOL_TIMEOUT_INFINITE (-1)             /* any negative value */

typedef struct dbpool_coord dbpool_coord;
typedef struct dbpool_holder dbpool_holder;

/*
** DBPOOL_INIT(p): zero the struct *p and set its size member, before
** handing it to the library: `dbpool_host_stats st; DBPOOL_INIT(&st);`.
** p is evaluated more than once.
*/
#define DBPOOL_INIT(p) \
  ((void)memset((p), 0, sizeof *(p)), (p)->size = (uint32_t)sizeof *(p))

/* ------------------------------------------------------ version, errors */

/*
** dbpool_version: the library's version, e.g. "0.1.0";
** dbpool_version_number: the same as X * 1000000 + Y * 1000 + Z. The
** headers' are DBPOOL_VERSION and DBPOOL_VERSION_NUMBER (dbpool_version.h).
*/
DBPOOL_EXTERN const char *dbpool_version(void);
DBPOOL_EXTERN int dbpool_version_number(void);

/*
** dbpool_strerror: a short, static description of a negative errno value as
** this library uses it (e.g. -ETIMEDOUT: "timed out waiting for a slot").
** Never returns NULL. Thread-safe.
*/
DBPOOL_EXTERN const char *dbpool_strerror(int err);

/*
** DBPOOL_POOL_FULL_PREFIX: every message of a failure for lack of a slot (a
** host pool or an in-process pool that stayed full for the whole timeout)
** starts with it; the code is -ETIMEDOUT / -EAGAIN here and SQLITE_BUSY
** through SQLite. Lets applications tell "come back later" apart from
** SQLite's own SQLITE_BUSY ("database is locked"). SQLite puts its own text
** in front of an automatic extension's message, so search for it rather than
** compare the start.
*/
#define DBPOOL_POOL_FULL_PREFIX "dbpool: pool full: "

/*
** dbpool_last_error: this thread's message for the last failure of any
** dbpool function, e.g. "dbpool: max_connections=0 is out of range
** (1..4096)". Empty string if none. Valid until the thread's next dbpool
** call. Thread-safe (thread-local). The same text as dbpool_errmsg()
** (dbpool.h).
*/
DBPOOL_EXTERN const char *dbpool_last_error(void);

/* ----------------------------------------------------------- attaching */

enum {
  DBPOOL_OPEN_READONLY = 1, /* map read-only: statistics and listing only */
  DBPOOL_OPEN_NOCREATE = 2  /* fail with -ENOENT if the pool does not exist */
};

/*
** dbpool_coord_open: attach to the pool of the database file at db_path
** (relative paths, symlinks and hard links all reach the same pool), creating
** and initialising it atomically if it does not exist yet. The segment is
** created with the read/write permission bits of the database file; a
** segment with an unexpected owner or mode, or one that fails validation, is
** refused. Opening the same pool twice in a process returns two handles to
** one attachment.
**
** Returns 0 and *out, or: -ENOENT (no such database file, or no pool with
** DBPOOL_OPEN_NOCREATE), -EACCES (permissions), -EBADMSG (segment fails
** validation), -EINVAL (bad argument or environment variable), -ENOMEM,
** or another negative errno from the system.
*/
DBPOOL_EXTERN int dbpool_coord_open(const char *db_path, unsigned flags,
                                    dbpool_coord **out);

/*
** dbpool_coord_close: drop this handle. When the process's last handle and
** last holder of the pool are gone, its process record is removed. Holders
** created from the handle keep the attachment alive until they are freed.
** NULL is ignored.
*/
DBPOOL_EXTERN void dbpool_coord_close(dbpool_coord *c);

/* ------------------------------------------------------ holders, slots */

/*
** dbpool_holder_new: create a holder in the pool for this process (the
** process is registered in the pool on its first holder). It holds nothing.
** Returns 0 and *out, -ENOSPC when the pool has no free holder record,
** -EROFS on a read-only handle, -ENOMEM, or another -errno.
*/
DBPOOL_EXTERN int dbpool_holder_new(dbpool_coord *c, dbpool_holder **out);

/*
** dbpool_holder_free: release the slot if held, and free the holder.
** NULL is ignored. A holder inherited across fork() is only freed in the
** child's memory; the parent's slot is untouched.
*/
DBPOOL_EXTERN void dbpool_holder_free(dbpool_holder *h);

/*
** dbpool_holder_acquire: take one slot. Waiters are served in arrival order
** across all processes and threads; an arrival never overtakes a waiter.
** timeout_ms: 0 tries once; > 0 waits at most that long (an absolute
** deadline: signals neither fail the call nor extend it); negative waits
** forever; DBPOOL_TIMEOUT_DEFAULT uses the pool's acquire_timeout_ms.
** Uncontended, this takes no lock and makes no system call.
** Returns 0, -EAGAIN (timeout 0 and no slot free), -ETIMEDOUT, -ECANCELED
** (dbpool_holder_cancel), -EALREADY (the holder already holds or waits),
** -EPERM (holder of another process), -ESTALE (the pool was removed:
** reopen it), -EBADMSG (corrupt segment), or another -errno.
*/
DBPOOL_EXTERN int dbpool_holder_acquire(dbpool_holder *h, int timeout_ms);

/*
** dbpool_holder_cancel: make h's acquire give up with -ECANCELED instead of
** waiting: the one waiting now (in another thread), or if none waits, the
** next one. A cancel ends at most one acquire, and an acquire that gets a
** slot uses it up too: a slot free at once, or granted before the cancel
** was seen, is kept (the call returns 0). Any thread, any time (one atomic
** store and a futex wake: async-signal-safe). Returns 0, -EINVAL (h NULL)
** or -EPERM (holder of another process).
*/
DBPOOL_EXTERN int dbpool_holder_cancel(dbpool_holder *h);

/*
** dbpool_holder_release: give the slot back; the longest waiter gets it.
** Returns 0, -ENOENT (not held), -EPERM (holder of another process).
*/
DBPOOL_EXTERN int dbpool_holder_release(dbpool_holder *h);

/* dbpool_holder_held: 1 if the holder holds a slot, else 0. */
DBPOOL_EXTERN int dbpool_holder_held(const dbpool_holder *h);

/*
** dbpool_holder_set_label: set the short label shown with this holder
** (NULL or "" clears it). Longer labels are truncated to
** DBPOOL_LABEL_MAX - 1 bytes. Returns 0 or -EPERM.
*/
DBPOOL_EXTERN int dbpool_holder_set_label(dbpool_holder *h, const char *label);

/* ------------------------------------------------------------ settings */

typedef enum dbpool_setting {
  DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS = 0,
  DBPOOL_SETTING_MAX_CONNECTIONS = 1,
  DBPOOL_SETTING_PAUSED = 2,
  DBPOOL_SETTING_WRITER_QUEUE = 3,         /* 1: WAL writers take turns */
  DBPOOL_SETTING_WRITER_STARVATION_MS = 4, /* barging stops past this wait */
  DBPOOL_SETTING_COUNT = 5
} dbpool_setting;

/* "No value" in an array of setting values (dbpool_coord_open_with). */
#define DBPOOL_SETTING_UNSET INT64_MIN

/*
** dbpool_setting_lookup: the setting named name ("max_connections"...).
** Returns it (>= 0) or -EINVAL with a message naming the unknown setting.
*/
DBPOOL_EXTERN int dbpool_setting_lookup(const char *name);

/*
** dbpool_coord_get / dbpool_coord_set: read or change a live setting of the
** pool, visible to every process at once. Lowering max_connections below the
** number held revokes nothing; new acquires wait until below the limit.
** Raising it or resuming lets waiters in at once. set returns 0, -EINVAL
** (unknown setting), -ERANGE (value out of range; nothing changed), -EROFS,
** -EPERM (this user may not steer the pool).
*/
DBPOOL_EXTERN int dbpool_coord_get(dbpool_coord *c, int s, int64_t *value);
DBPOOL_EXTERN int dbpool_coord_set(dbpool_coord *c, int s, int64_t value);

/* ---------------------------------------------------------- statistics */

typedef struct dbpool_host_stats {
  uint32_t size;          /* DBPOOL_INIT; then the bytes filled */
  uint32_t max_connections;
  uint32_t active;        /* slots held now, idle ones included */
  uint32_t idle;          /* held slots marked idle (in-process pools) */
  uint32_t waiting;       /* waiters queued now */
  uint32_t peak_active;
  uint32_t processes;     /* live processes attached */
  int32_t acquire_timeout_ms;
  int32_t paused;
  uint64_t total_acquired;
  uint64_t total_released;  /* given back by their holders */
  uint64_t total_timeouts;  /* acquires that failed for lack of a slot */
  uint64_t total_reclaimed; /* slots taken back from dead processes */
  /* Wait figures: over every acquire attempt, granted (total_acquired) or
  ** timed out (total_timeouts, each with the time it waited before failing);
  ** attempts that found a slot at once count as 0. */
  uint64_t total_wait_ns;
  uint64_t max_wait_ns;
  uint64_t p50_wait_ns, p95_wait_ns, p99_wait_ns;
  int64_t created_at_ns;    /* CLOCK_REALTIME */
  uint32_t records_in_use;  /* holder records owned by processes (every
                               holder: holding, waiting or neither) */
  uint32_t records_max;     /* holder records of a pool (8191); holder_new
                               fails with -ENOSPC when all are in use */
  uint64_t avg_wait_ns;     /* total_wait_ns / (total_acquired + total_timeouts) */
} dbpool_host_stats;

/*
** dbpool_coord_stats: a snapshot of the pool's statistics (out->size set
** by DBPOOL_INIT). Lock-free: takes no lock and does not disturb acquirers.
** Returns 0, -EINVAL (NULL, or a size below the first version's) or
** -EBADMSG.
*/
DBPOOL_EXTERN int dbpool_coord_stats(dbpool_coord *c, dbpool_host_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* DBPOOL_COORD_H */
