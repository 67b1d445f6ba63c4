/*
** dbpool_admin.h -- seeing and steering pools from outside: what dbpoolctl
** and the SQLite extension's tables use. Listing the pools of a namespace,
** attaching by segment name, removing and collecting pools, the holders and
** writers of a pool, the wait-time histogram, settings described and
** parsed from text, reaping dead processes now.
**
** Includes dbpool_coord.h (its conventions hold here: 0 or a negative errno,
** dbpool_last_error() for the message, thread-safe unless said otherwise).
**
** Callbacks (dbpool_coord_list, dbpool_coord_gc) run in the calling thread,
** before the function returns, with no lock of the library held: they may
** call any dbpool function (e.g. dbpool_coord_open_segment on the name they
** are given). The strings and structs they are passed are valid only during
** the call.
*/
#ifndef DBPOOL_ADMIN_H
#define DBPOOL_ADMIN_H

#include "dbpool_coord.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ----------------------------------------------------------- attaching */

/*
** dbpool_coord_open_with: dbpool_coord_open (read-write), and if the pool is
** created now, it starts with values[s] for each setting s whose value is
** not DBPOOL_SETTING_UNSET (validated first: -ERANGE changes nothing). An
** explicit value never consults the environment. values may be NULL, or
** DBPOOL_SETTING_COUNT values.
*/
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
** dbpool_coord_namespace: the namespace in effect (DBPOOL_NAMESPACE), "" for
** the default. Returns -EINVAL if the variable holds an invalid value.
*/
DBPOOL_EXTERN int dbpool_coord_namespace(const char **out);

/* ------------------------------------------------- listing, collecting */

/*
** dbpool_coord_list: call cb once per pool segment in this namespace that
** exists in /dev/shm (readable or not), with its segment name, in name
** order. Read-only: listing never removes or changes anything. A non-zero
** return from cb stops the walk and is returned. Returns 0, cb's value, or
** a negative errno (a directory that cannot be read fully is an error, not
** a shorter list). cb: see "Callbacks" above.
*/
typedef int (*dbpool_coord_list_cb)(const char *segment_name, void *arg);
DBPOOL_EXTERN int dbpool_coord_list(dbpool_coord_list_cb cb, void *arg);

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
** is called once per pool with what was done and why (see "Callbacks"
** above; its return value is ignored). Returns the number of pools removed
** (or that would be), or a negative errno.
*/
typedef enum dbpool_gc_action {
  DBPOOL_GC_KEPT = 0,
  DBPOOL_GC_REMOVED = 1,
  DBPOOL_GC_WOULD_REMOVE = 2
} dbpool_gc_action;

typedef struct dbpool_gc_entry {
  uint32_t size;        /* the bytes of this struct the library filled */
  const char *segment;  /* segment name */
  const char *database; /* recorded database path ("" if unreadable) */
  dbpool_gc_action action;
  const char *reason;   /* one phrase, e.g. "database file is gone" */
} dbpool_gc_entry;

typedef int (*dbpool_coord_gc_cb)(const dbpool_gc_entry *e, void *arg);
DBPOOL_EXTERN int dbpool_coord_gc(int dry_run, dbpool_coord_gc_cb cb, void *arg);

/*
** dbpool_coord_reap: reclaim now the slots and queue places of processes
** that died. Waiters do this by themselves every 25 ms while they wait.
** Returns the number of slots reclaimed (>= 0) or a negative errno.
*/
DBPOOL_EXTERN int dbpool_coord_reap(dbpool_coord *c);

/* ------------------------------------------------------------ settings */

typedef struct dbpool_setting_info {
  uint32_t size;           /* the bytes of this struct the library filled */
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

/* ------------------------------------------------- holders of a pool */

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

/* dbpool_joined_name: "api", "load", "auto", "preload", "c-pool", or
** "unknown" for any other value. */
DBPOOL_EXTERN const char *dbpool_joined_name(int joined);

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
  unsigned record;         /* the holder's record number */
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
** listed, reclaimed or not). Fills at most cap entries of elem_size bytes
** (sizeof buf[0]: the members that fit; the rest zeroed) and returns the
** total count (which may exceed cap), or a negative errno (-EINVAL for an
** elem_size below the first version's). Lock-free.
*/
DBPOOL_EXTERN int dbpool_coord_holders(dbpool_coord *c, dbpool_holder_info *buf,
                                       size_t cap, size_t elem_size);

/* ------------------------------------------------ wait-time histogram */

/*
** Wait-time histogram: bucket b counts acquire attempts (granted or timed
** out) whose wait was in [dbpool_hist_lower_ns(b), dbpool_hist_lower_ns(b +
** 1)). Bucket 0 holds attempts that did not wait (under 1024 ns).
** dbpool_coord_histogram fills counts[0..n-1] (at most as many buckets as
** the library has) and returns how many buckets the library has
** (DBPOOL_HIST_BUCKETS of the headers it was built with), or a negative
** errno. dbpool_hist_lower_ns(DBPOOL_HIST_BUCKETS) is the last bucket's
** upper bound (and that of any b past it).
*/
#define DBPOOL_HIST_BUCKETS 265
DBPOOL_EXTERN uint64_t dbpool_hist_lower_ns(unsigned b);
DBPOOL_EXTERN int dbpool_coord_histogram(dbpool_coord *c, uint64_t *counts, size_t n);

/* ---------------------------------------------------------- writer queue */

/*
** The writer queue (SQLite extension, WAL databases): transaction writers
** take turns at SQLite's write lock host-wide, in arrival order; a free turn
** may be taken out of order ("barging") until a waiter has waited
** writer_starvation_ms, then it is handed to the longest waiter. Rollback-
** journal databases are not queued (journal says which kind a writer saw).
*/
typedef struct dbpool_writer_stats {
  uint32_t size;            /* DBPOOL_INIT; then the bytes filled */
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

/* dbpool_coord_writer_stats: a lock-free snapshot (out->size set by
** DBPOOL_INIT). Returns 0 or -EINVAL (NULL, or a size below the first
** version's). */
DBPOOL_EXTERN int dbpool_coord_writer_stats(dbpool_coord *c,
                                            dbpool_writer_stats *out);

typedef enum dbpool_writer_state {
  DBPOOL_WRITER_WRITING = 1, /* holds the turn (and SQLite's write lock) */
  DBPOOL_WRITER_GRANTED = 2, /* the turn was handed to it; not taken yet */
  DBPOOL_WRITER_WAITING = 3  /* queued for the turn */
} dbpool_writer_state;

typedef struct dbpool_writer_info {
  unsigned record;   /* the connection's holder record, or ~0u if unknown */
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
** waits for it. Fills at most cap entries of elem_size bytes (sizeof
** buf[0]) and returns the total count, or -EINVAL.
*/
DBPOOL_EXTERN int dbpool_coord_writers(dbpool_coord *c, dbpool_writer_info *buf,
                                       size_t cap, size_t elem_size);

#ifdef __cplusplus
}
#endif
#endif /* DBPOOL_ADMIN_H */
