/*
** dbpool_coord.h -- the host-wide connection cap, independent of SQLite.
**
** One pool exists per database file on the host, kept in a POSIX shared
** memory segment keyed by the file's (st_dev, st_ino). Every process that
** attaches to it shares one limit (max_connections), one FIFO queue of
** waiters, live settings and cumulative statistics. Slots held or waited for
** by a process that dies (SIGKILL included) are reclaimed by the survivors.
**
** Vocabulary
**   pool     the shared state of one database file (a dbpool_coord handle
**            is this process's attachment to it);
**   holder   one record in the pool that can hold one slot or wait for one
**            (the SQLite extension keeps one per connection, the C pool one
**            per pooled connection); it is created once and then acquires
**            and releases any number of times;
**   slot     one unit of max_connections.
**
** Errors: every function that can fail returns 0 (or a count) on success and
** a negative errno value on failure; dbpool_strerror() names it and
** dbpool_last_error() gives this thread's detailed message for the last
** failure (naming the path, value or limit involved). The library never
** prints, and never aborts or exits the process.
**
** Process and thread safety: all functions are thread-safe unless a comment
** says otherwise. A dbpool_holder must not be used by two threads at the same
** time (acquire from one thread and release from another is fine). Handles
** are per process: after fork() the child must not use holders created by the
** parent (it gets -EPERM and the parent's slots are untouched); a child that
** opens pools or creates holders attaches as itself.
*/
#ifndef DBPOOL_COORD_H
#define DBPOOL_COORD_H

#include <stddef.h>
#include <stdint.h>

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

/* ---------------------------------------------------------------- errors */

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
** call. Thread-safe (thread-local).
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
** dbpool_coord_open_with: dbpool_coord_open (read-write), and if the pool is
** created now, it starts with values[s] for each setting s whose value is
** not DBPOOL_SETTING_UNSET (validated first: -ERANGE changes nothing). An
** explicit value never consults the environment. values may be NULL.
*/
#define DBPOOL_SETTING_UNSET INT64_MIN
DBPOOL_EXTERN int dbpool_coord_open_with(const char *db_path, const int64_t *values,
                                         dbpool_coord **out);

/*
** dbpool_coord_open_segment: attach to a pool by segment name (as given by
** dbpool_coord_list), e.g. to show pools whose database is elsewhere.
** Same returns as dbpool_coord_open; never creates.
*/
DBPOOL_EXTERN int dbpool_coord_open_segment(const char *segment_name,
                                            unsigned flags,
                                            dbpool_coord **out);

/*
** dbpool_coord_close: drop this handle. When the process's last handle and
** last holder of the pool are gone, its process record is removed. Holders
** created from the handle keep the attachment alive until they are freed.
** NULL is ignored.
*/
DBPOOL_EXTERN void dbpool_coord_close(dbpool_coord *c);

/*
** dbpool_coord_segment_name: the shared memory object name of the pool,
** e.g. "/dbpool.803.1a2f". Valid while the handle is open.
*/
DBPOOL_EXTERN const char *dbpool_coord_segment_name(const dbpool_coord *c);

/*
** dbpool_coord_database: the database path recorded in the pool (absolute,
** as first resolved). Copies at most cap bytes, NUL-terminated.
*/
DBPOOL_EXTERN void dbpool_coord_database(const dbpool_coord *c, char *buf,
                                         size_t cap);

/*
** dbpool_coord_remove: remove the pool of db_path (or, when db_path is NULL,
** the pool named segment_name) with its settings and statistics. Refused
** with -EBUSY while a live process is attached (has holders), unless force
** is non-zero; slots of dead processes are reclaimed first. Needs write
** permission on the database (or root): -EPERM otherwise. Processes still
** attached to a force-removed pool see it removed: waiters are woken,
** acquires fail with -ESTALE (reopen the pool; the SQLite extension and the
** C pool move their connections to the new pool by themselves). Only the
** segment's owner or root may delete its name (/dev/shm is sticky): anyone
** else's removal marks it removed, every opener then skips it, and its owner
** or root deletes it later (dbpool_coord_gc). Never leaves two pools in use
** for one database except by force.
** Returns 0 (removed), 1 (marked removed, name left for its owner or root,
** or because it could not be deleted: dbpool_last_error() says which),
** -ENOENT (no such pool), -EBUSY, -EPERM, -EACCES or -errno.
*/
DBPOOL_EXTERN int dbpool_coord_remove(const char *db_path,
                                      const char *segment_name, int force);

/*
** dbpool_coord_list: call cb once per pool segment in this namespace that
** exists in /dev/shm (readable or not), with its segment name, in name
** order. Read-only: listing never removes or changes anything. A non-zero
** return from cb stops the walk and is returned. Returns 0, cb's value, or
** a negative errno (a directory that cannot be read fully is an error, not
** a shorter list).
*/
typedef int (*dbpool_coord_list_cb)(const char *segment_name, void *arg);
DBPOOL_EXTERN int dbpool_coord_list(dbpool_coord_list_cb cb, void *arg);

/*
** dbpool_coord_list_skips: whether err, from opening a segment that
** dbpool_coord_list named, means "not a pool to list" -- it went away
** meanwhile (-ENOENT), is not open to this user (-EACCES), or is not a
** valid pool (-EBADMSG: anyone can put a file under a pool's name in
** /dev/shm) -- rather than a failure to report (out of memory, no file
** descriptors, ...). Listings (pool_stats, dbpoolctl list) skip the first
** kind and fail on the second: they never silently leave pools out.
*/
DBPOOL_EXTERN int dbpool_coord_list_skips(int err);

/* Where a pool's database file is, as dbpool_coord_file_state tells. */
typedef enum dbpool_file_state {
  DBPOOL_FILE_OK = 0,       /* the recorded path names the pool's file */
  DBPOOL_FILE_REPLACED = 1, /* the path names another file now (restored
                               from a backup, say); the pool serves the
                               connections still open to the old file */
  DBPOOL_FILE_GONE = 2,     /* no file at the path: deleted, or renamed and
                               not opened under its new name since */
  DBPOOL_FILE_REMOVED = 3,  /* the pool itself was removed */
  DBPOOL_FILE_UNKNOWN = 4   /* the path cannot be looked up by this user */
} dbpool_file_state;

/* dbpool_coord_file_state: the state above (a stat of the recorded path). */
DBPOOL_EXTERN dbpool_file_state dbpool_coord_file_state(dbpool_coord *c);

/* dbpool_file_state_name: "ok", "replaced", "gone", "removed", "unknown". */
DBPOOL_EXTERN const char *dbpool_file_state_name(int state);

/*
** dbpool_coord_gc: collect pools of this namespace that nobody uses and
** that serve no database file any more: the file is gone or was replaced,
** the pool was removed, or its owner can no longer read the database. A
** database renamed within its directory is found, and its pool kept (its
** recorded path is updated). With dry_run, only reports. cb (may be NULL)
** is called once per pool with what was done and why. Returns the number of
** pools removed (or that would be), or a negative errno.
*/
typedef enum dbpool_gc_action {
  DBPOOL_GC_KEPT = 0,
  DBPOOL_GC_REMOVED = 1,
  DBPOOL_GC_WOULD_REMOVE = 2
} dbpool_gc_action;

typedef struct dbpool_gc_entry {
  const char *segment;  /* segment name */
  const char *database; /* recorded database path ("" if unreadable) */
  dbpool_gc_action action;
  const char *reason;   /* one phrase, e.g. "database file is gone" */
} dbpool_gc_entry;

typedef int (*dbpool_coord_gc_cb)(const dbpool_gc_entry *e, void *arg);
DBPOOL_EXTERN int dbpool_coord_gc(int dry_run, dbpool_coord_gc_cb cb, void *arg);

/*
** dbpool_coord_namespace: the namespace in effect (DBPOOL_NAMESPACE), "" for
** the default. Returns -EINVAL if the variable holds an invalid value.
*/
DBPOOL_EXTERN int dbpool_coord_namespace(const char **out);

/* ------------------------------------------------------- holders, slots */

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
** Returns 0, -EAGAIN (timeout 0 and no slot free), -ETIMEDOUT, -EALREADY
** (the holder already holds or waits), -EPERM (holder of another process),
** -EBADMSG (corrupt segment), or another -errno.
*/
DBPOOL_EXTERN int dbpool_holder_acquire(dbpool_holder *h, int timeout_ms);

/*
** dbpool_holder_acquire_cancellable: dbpool_holder_acquire that also gives
** up, with -ECANCELED, once *cancel is non-zero: another thread sets it
** (with an atomic store, e.g. __atomic_store_n) and calls
** dbpool_holder_wake(h). A slot granted before the cancel is seen is
** kept (the call returns 0). Lets an in-process pool stop a thread waiting
** for a host slot when one of its own connections comes free.
*/
DBPOOL_EXTERN int dbpool_holder_acquire_cancellable(dbpool_holder *h,
                                                    int timeout_ms,
                                                    const int *cancel);

/* dbpool_holder_wake: wake h's waiting thread to look at its cancel flag.
** Thread-safe; harmless when nobody waits. */
DBPOOL_EXTERN void dbpool_holder_wake(dbpool_holder *h);

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

/*
** dbpool_holder_set_idle: mark a held slot as idle in an in-process pool
** (1) or in use (0). A store to shared memory; no lock, no system call.
*/
DBPOOL_EXTERN void dbpool_holder_set_idle(dbpool_holder *h, int idle);

/*
** dbpool_coord_set_slot_label / dbpool_coord_slot_label: set or read the
** label of the holder with record number slot (dbpool_holder_slot), for code
** that knows a slot but not its dbpool_holder (e.g. the SQLite extension for
** connections of an in-process pool). Setting is allowed only for holders
** of the calling process: -EPERM otherwise, -EINVAL for a bad slot.
*/
DBPOOL_EXTERN int dbpool_coord_set_slot_label(dbpool_coord *c, unsigned slot,
                                              const char *label);
DBPOOL_EXTERN int dbpool_coord_slot_label(dbpool_coord *c, unsigned slot,
                                          char *buf, size_t cap);

/*
** How a holder came to the pool, shown with it (pool_connections' joined
** column, dbpoolctl status) so that an operator can see which way each
** connection is counted, e.g. that `dbpoolctl run` is in effect.
*/
typedef enum dbpool_joined {
  DBPOOL_JOINED_API = 0,     /* "api": dbpool_holder_new, nothing more said */
  DBPOOL_JOINED_LOAD = 1,    /* "load": the connection that loaded the extension */
  DBPOOL_JOINED_AUTO = 2,    /* "auto": opened after loading, counted automatically */
  DBPOOL_JOINED_PRELOAD = 3, /* "preload": counted through libdbpool-preload.so */
  DBPOOL_JOINED_C_POOL = 4   /* "c-pool": a connection of dbpool_open's pool */
} dbpool_joined;

/*
** dbpool_holder_set_joined: record how h came (a dbpool_joined value; set
** once, after dbpool_holder_new). Returns 0, -EINVAL or -EPERM.
** dbpool_joined_name: "api", "load", "auto", "preload", "c-pool", or
** "unknown" for any other value.
*/
DBPOOL_EXTERN int dbpool_holder_set_joined(dbpool_holder *h, int joined);
DBPOOL_EXTERN const char *dbpool_joined_name(int joined);

/* dbpool_holder_slot: the holder's record number, as in dbpool_holder_info. */
DBPOOL_EXTERN unsigned dbpool_holder_slot(const dbpool_holder *h);

/* dbpool_holder_coord: the pool a holder belongs to. */
DBPOOL_EXTERN dbpool_coord *dbpool_holder_coord(const dbpool_holder *h);

/* ------------------------------------------------------------ settings */

typedef enum dbpool_setting {
  DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS = 0,
  DBPOOL_SETTING_MAX_CONNECTIONS = 1,
  DBPOOL_SETTING_PAUSED = 2,
  DBPOOL_SETTING_WRITER_QUEUE = 3,         /* 1: WAL writers take turns */
  DBPOOL_SETTING_WRITER_STARVATION_MS = 4, /* barging stops past this wait */
  DBPOOL_SETTING_COUNT = 5
} dbpool_setting;

typedef struct dbpool_setting_info {
  const char *name;        /* "max_connections" */
  int64_t default_value;   /* before the environment variable */
  int64_t min_value, max_value;
  const char *env;         /* variable read when a pool is created, or NULL */
  const char *description; /* one sentence */
} dbpool_setting_info;

/*
** dbpool_setting_describe: the descriptor of setting s (settings are in
** alphabetical order), or NULL if s is out of range. Thread-safe.
*/
DBPOOL_EXTERN const dbpool_setting_info *dbpool_setting_describe(int s);

/*
** dbpool_setting_lookup: the setting named name. Returns it (>= 0) or
** -EINVAL with a message naming the unknown setting.
*/
DBPOOL_EXTERN int dbpool_setting_lookup(const char *name);

/*
** dbpool_setting_parse: parse text as a value of setting s. The one rule
** for values from every source (SQL, PRAGMA, URI, dbpoolctl, environment):
** surrounding whitespace is ignored; the rest is a decimal integer, or a
** decimal number whose value is an integer ("3.0", "30e-1": how SQLite
** writes a REAL); paused also takes on/off/true/false/yes/no (any case).
** "3.5", "abc" and "" are invalid (-EINVAL); an integer outside the
** setting's range is -ERANGE. The message names the setting, the value as
** given and the range. Changes nothing.
*/
DBPOOL_EXTERN int dbpool_setting_parse(int s, const char *text,
                                       int64_t *value);

/*
** dbpool_coord_get / dbpool_coord_set: read or change a live setting of the
** pool, visible to every process at once. Lowering max_connections below the
** number held revokes nothing; new acquires wait until below the limit.
** Raising it or resuming lets waiters in at once. set returns 0, -EINVAL
** (unknown setting), -ERANGE (value out of range; nothing changed), -EROFS.
*/
DBPOOL_EXTERN int dbpool_coord_get(dbpool_coord *c, int s, int64_t *value);
DBPOOL_EXTERN int dbpool_coord_set(dbpool_coord *c, int s, int64_t value);

/* ---------------------------------------------------------- statistics */

typedef struct dbpool_host_stats {
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

#ifndef DBPOOL_H /* TEMPORARY: old name, until every caller is renamed */
typedef dbpool_host_stats dbpool_stats;
#endif

/*
** dbpool_coord_stats: a snapshot of the pool's statistics. Lock-free: takes
** no lock and does not disturb acquirers. Returns 0 or -EBADMSG.
*/
DBPOOL_EXTERN int dbpool_coord_stats(dbpool_coord *c, dbpool_host_stats *out);

/*
** Wait-time histogram: bucket b counts acquire attempts (granted or timed
** out) whose wait was in [dbpool_hist_lower_ns(b), dbpool_hist_lower_ns(b +
** 1)). Bucket 0 holds attempts that did not wait (under 1024 ns). DBPOOL_HIST_BUCKETS buckets.
** dbpool_coord_histogram fills counts[0..DBPOOL_HIST_BUCKETS-1].
*/
#define DBPOOL_HIST_BUCKETS 265
DBPOOL_EXTERN uint64_t dbpool_hist_lower_ns(unsigned b);
DBPOOL_EXTERN int dbpool_coord_histogram(dbpool_coord *c, uint64_t *counts);

typedef enum dbpool_holder_state {
  DBPOOL_HOLDER_ACTIVE = 1,
  DBPOOL_HOLDER_IDLE = 2,
  DBPOOL_HOLDER_WAITING = 3
} dbpool_holder_state;

/* What is known of a holder's process. */
typedef enum dbpool_process_state {
  DBPOOL_PROCESS_RUNNING = 0,
  DBPOOL_PROCESS_STOPPED = 1,  /* SIGSTOP or a debugger: alive, not running */
  DBPOOL_PROCESS_ELSEWHERE = 2 /* another pid namespace (a container): alive,
                                  its pid is its own namespace's */
} dbpool_process_state;

/* dbpool_process_state_name: "running", "stopped", "elsewhere" (or
** "unknown" for another value). */
DBPOOL_EXTERN const char *dbpool_process_state_name(int state);

typedef struct dbpool_holder_info {
  unsigned slot;           /* record number (dbpool_holder_slot) */
  int32_t pid;
  int32_t tid;
  char process[DBPOOL_PROCESS_NAME_MAX];
  dbpool_holder_state state;
  int64_t since_ns;        /* CLOCK_REALTIME: held or waiting since */
  char label[DBPOOL_LABEL_MAX];
  dbpool_process_state process_state;
  int joined;              /* dbpool_joined (dbpool_joined_name) */
} dbpool_holder_info;

/*
** dbpool_coord_holders: every holder of a live process that holds or waits,
** waiters in queue order after holders (a dead process's holders are never
** listed, reclaimed or not). Fills at most cap entries and returns the total count
** (which may exceed cap), or a negative errno. Lock-free.
*/
DBPOOL_EXTERN int dbpool_coord_holders(dbpool_coord *c,
                                       dbpool_holder_info *buf, size_t cap);

/* ---------------------------------------------------------- writer queue */

/*
** The writer queue (SQLite extension, WAL databases): transaction writers
** take turns at SQLite's write lock host-wide, in arrival order; a free turn
** may be taken out of order ("barging") until a waiter has waited
** writer_starvation_ms, then it is handed to the longest waiter. Rollback-
** journal databases are not queued (journal says which kind a writer saw).
*/
typedef struct dbpool_writer_stats {
  int32_t enabled;          /* the writer_queue setting */
  int32_t starvation_ms;    /* the writer_starvation_ms setting */
  int32_t journal;          /* last writer seen: 0 none yet, 1 WAL, 2 rollback journal */
  uint32_t waiting;         /* writers waiting for their turn now */
  uint32_t writing;         /* 1 while a queued writer holds the turn */
  uint64_t total_writes;    /* write transactions that took the turn */
  uint64_t total_waits;     /* of those, how many waited for it */
  uint64_t total_wait_ns;
  uint64_t max_wait_ns;
  uint64_t p50_wait_ns, p99_wait_ns, p999_wait_ns; /* over total_writes */
  uint64_t turns_skipped;   /* turns and places of processes that died */
  uint64_t turns_expired;   /* turns granted and never used, places abandoned */
  uint64_t strict_handoffs; /* turns handed to a starving waiter */
  uint64_t handoff_ns;      /* time from those hand-offs to their use, summed */
} dbpool_writer_stats;

/* dbpool_coord_writer_stats: a lock-free snapshot. Returns 0 or -EINVAL. */
DBPOOL_EXTERN int dbpool_coord_writer_stats(dbpool_coord *c,
                                            dbpool_writer_stats *out);

typedef enum dbpool_writer_state {
  DBPOOL_WRITER_WRITING = 1, /* holds the turn (and SQLite's write lock) */
  DBPOOL_WRITER_GRANTED = 2, /* the turn was handed to it; not taken yet */
  DBPOOL_WRITER_WAITING = 3  /* queued for the turn */
} dbpool_writer_state;

typedef struct dbpool_writer_info {
  unsigned slot;     /* the connection's holder record, or ~0u if unknown */
  int32_t pid, tid;
  dbpool_writer_state state;
  uint64_t ticket;   /* queue order */
  int64_t waited_ns; /* how long it has been queued (0 when writing) */
} dbpool_writer_info;

/*
** dbpool_writer_queue_status: what the queue does for this pool, in words:
** "on", "off", or "inactive: rollback-journal database (only WAL databases
** queue writers)". Static string.
*/
DBPOOL_EXTERN const char *dbpool_writer_queue_status(const dbpool_writer_stats *ws);

/* dbpool_writer_state_name: "writing", "granted", "waiting" (or "?"). */
DBPOOL_EXTERN const char *dbpool_writer_state_name(dbpool_writer_state s);

/*
** dbpool_coord_writers: every connection that holds the writer turn or
** waits for it. Fills at most cap entries and returns the total count.
*/
DBPOOL_EXTERN int dbpool_coord_writers(dbpool_coord *c, dbpool_writer_info *buf,
                                       size_t cap);

/* ------------------------------------------------------ waiting, reaping */

/*
** dbpool_coord_waiting: how many waiters are queued now. One atomic load:
** cheap enough for every release of an in-process pool.
*/
DBPOOL_EXTERN unsigned dbpool_coord_waiting(const dbpool_coord *c);

/*
** dbpool_coord_wait_for_waiter: block until a waiter is queued in the pool
** (or is already queued), timeout_ms elapses (0 polls, negative waits
** forever), or dbpool_coord_wake_listeners() is called. Returns 1 if
** someone waits, 0 otherwise. Lets an in-process pool give back idle slots
** on demand.
*/
DBPOOL_EXTERN int dbpool_coord_wait_for_waiter(dbpool_coord *c,
                                               int timeout_ms);

/* dbpool_coord_wake_listeners: make every dbpool_coord_wait_for_waiter call
** on this pool (in any process) return now, e.g. to stop a thread. */
DBPOOL_EXTERN void dbpool_coord_wake_listeners(dbpool_coord *c);

/*
** dbpool_coord_reap: reclaim now the slots and queue places of processes
** that died. Waiters do this by themselves every 25 ms while they wait.
** Returns the number of slots reclaimed (>= 0) or a negative errno.
*/
DBPOOL_EXTERN int dbpool_coord_reap(dbpool_coord *c);

/* dbpool_version_string: the library version, e.g. "0.1.0". */
DBPOOL_EXTERN const char *dbpool_version_string(void);

#ifdef __cplusplus
}
#endif
#endif /* DBPOOL_COORD_H */
