/*
** private.h -- the coordinator's interface for the rest of dbpool, and for
** nobody else: the in-process pool (pool/, in the same library), the SQLite
** extension (ext/, which links its own hidden copy of the coordinator), and
** dbpool's own tests and benchmarks. Every symbol here is hidden: not part
** of the public contract (include/), never exported, free to change. A
** function moves to include/ only with a reason an outside program has.
*/
#ifndef DBPOOL_COORD_PRIVATE_H
#define DBPOOL_COORD_PRIVATE_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/base.h"
#include "dbpool_admin.h"

#define DBP_PRIVATE __attribute__((visibility("hidden")))

/* Where each growable struct's first version ends (base/sized.c): never
** change these; members added later go after the one named. */
#define DBP_V1_HOST_STATS DBP_END_OF(dbpool_host_stats, avg_wait_ns)
#define DBP_V1_WRITER_STATS DBP_END_OF(dbpool_writer_stats, handoff_ns)
#define DBP_V1_HOLDER_INFO DBP_END_OF(dbpool_holder_info, joined)
#define DBP_V1_WRITER_INFO DBP_END_OF(dbpool_writer_info, waited_ns)

/* Whether err, from opening a segment that dbpool_coord_list named, means
** "not a pool to list" -- it went away meanwhile (-ENOENT), is not open to
** this user (-EACCES), or is not a valid pool (-EBADMSG: anyone can put a
** file under a pool's name in /dev/shm) -- rather than a failure to report
** (out of memory, no file descriptors, ...). Listings (pool_stats,
** dbpoolctl list) skip the first kind and fail on the second: they never
** silently leave pools out. (admin.c) */
DBP_PRIVATE int dbp_list_skips(int err);

/* ------------------------------------------------ what a holder is */

/* No holder record (a connection that is not counted by this copy). */
#define DBP_NO_RECORD (~0u)

/* dbp_holder_record: h's record number, as in dbpool_holder_info. */
DBP_PRIVATE unsigned dbp_holder_record(const dbpool_holder *h);

/* dbp_holder_coord: the pool a holder belongs to. */
DBP_PRIVATE dbpool_coord *dbp_holder_coord(const dbpool_holder *h);

/*
** dbp_holder_set_joined: record how h came (a dbpool_joined value; set
** once, after dbpool_holder_new). Returns 0, -EINVAL or -EPERM.
*/
DBP_PRIVATE int dbp_holder_set_joined(dbpool_holder *h, int joined);

/*
** dbp_coord_set_record_label / dbp_coord_record_label: set or read the
** label of the holder with record number record (dbp_holder_record), for
** code that knows a record but not its dbpool_holder (the extension, for
** connections of an in-process pool). Setting is allowed only for holders
** of the calling process: -EPERM otherwise, -EINVAL for a bad record.
*/
DBP_PRIVATE int dbp_coord_set_record_label(dbpool_coord *c, unsigned record,
                                           const char *label);
DBP_PRIVATE int dbp_coord_record_label(dbpool_coord *c, unsigned record,
                                       char *buf, size_t cap);

/* ----------------------------------------------- the pool's fast path */

/*
** The two shared-memory words the C pool's acquire/release fast path
** touches, so that it can store and load them directly instead of calling
** through the API (which re-validates the holder and the fork generation
** on every call; the pool has checked its own fork generation already).
*/
#define DBP_FAST_IDLE_FLAG 1u /* store it to mark a held slot idle, 0 active */

/* The holder record's flags word (idle bit). Valid while h lives. */
DBP_PRIVATE _Atomic uint32_t *dbp_holder_flags_word(dbpool_holder *h);

/* dbp_holder_set_idle: the same through a call: mark a held slot idle (1)
** or in use (0). */
DBP_PRIVATE void dbp_holder_set_idle(dbpool_holder *h, int idle);

/* The pool's count of queued waiters. Valid while c is open. */
DBP_PRIVATE const _Atomic uint32_t *dbp_coord_waiting_word(dbpool_coord *c);

/* dbp_coord_waiting: how many waiters are queued now (one atomic load). */
DBP_PRIVATE unsigned dbp_coord_waiting(const dbpool_coord *c);

/*
** dbp_coord_wait_for_waiter: block until a waiter is queued in the pool
** (or is already queued), timeout_ms elapses (0 polls, negative waits
** forever), or dbp_coord_wake_listeners() is called. Returns 1 if someone
** waits, 0 otherwise. Lets an in-process pool give back idle slots on
** demand (its housekeeper thread sleeps here).
*/
DBP_PRIVATE int dbp_coord_wait_for_waiter(dbpool_coord *c, int timeout_ms);

/* dbp_coord_wake_listeners: make every dbp_coord_wait_for_waiter call on
** this pool (in any process) return now, e.g. to stop a thread. */
DBP_PRIVATE void dbp_coord_wake_listeners(dbpool_coord *c);

/*
** dbp_holder_uncancel: drop a cancel of h that no acquire has used up yet
** (dbpool_holder_cancel). The C pool calls it, under its own lock, before
** an acquire that its releases may cancel from then on.
*/
DBP_PRIVATE void dbp_holder_uncancel(dbpool_holder *h);

/* What a statx of a database file tells that a pool needs: its identity
** (dev, ino, birth: dbfile.c), owner and mode, and its link count. Kept
** small: the extension's VFS shim keeps one in every open file, and SQLite
** zeroes each file's room (the database's, the journal's) at every open. */
typedef struct dbp_file_id {
  uint64_t dev, ino, birth; /* birth 0: the file system keeps none */
  uint32_t mode, uid, gid, nlink;
} dbp_file_id;

/* id from a statx made with STATX_BASIC_STATS | STATX_BTIME (dbfile.c):
** 0, or -1 when the statx lacks one of the fields id keeps. */
struct statx;
DBP_PRIVATE int dbp_file_id_from_statx(const struct statx *sx, dbp_file_id *id);

/* dbpool_coord_open(path, 0) for a database SQLite has just opened: 1
** (and no message) when the name is not a regular file (or is gone), so
** the connection is not counted; with one stat of the name in all, or
** none when opened (the statx of the descriptor SQLite opened, or NULL)
** gives the file's identity. */
DBP_PRIVATE int dbp_coord_open_file(const char *db_path, const dbp_file_id *opened,
                                    dbpool_coord **out);

/* dbpool_holder_free, told whether the database file still has a name: 1
** yes, 0 no, -1 unknown (then the last holder to leave looks, as
** dbpool_holder_free does: deleted, the process leaves the pool). */
DBP_PRIVATE void dbp_holder_free_linked(dbpool_holder *h, int linked);

/* ------------------------------------------------- a removed pool */

/* Was c's pool removed (dbpoolctl rm --force)? One load of the gate. */
DBP_PRIVATE int dbp_coord_removed(const dbpool_coord *c);

/* Was h's pool removed? If so and h holds a slot, move the slot into the
** pool now at db_path (created or joined): a new holder that holds a slot
** there even above the limit (as after lowering max_connections; the
** connection was open before), with h's label; h is freed and *hp
** replaced. Returns 1 if moved, 0 if there was nothing to do, or -errno.
** For the SQLite extension, whose connections hold their slot for life. */
DBP_PRIVATE int dbp_holder_rejoin(dbpool_holder **hp, const char *db_path);

/* -------------------------------------------- an interruptible wait */

/*
** dbp_holder_acquire_interruptible: dbpool_holder_acquire, except that a
** wait for a slot ends with -EINTR ("dbpool: interrupted while waiting for
** a slot of PATH") when SIGINT or SIGQUIT (Ctrl-C, Ctrl-\) is caught by a
** handler while it waits (a signal that this thread blocks, ignores or
** that kills the process does not count). While it sleeps, the thread
** blocks every other signal (SIGKILL and SIGSTOP cannot be); they are
** delivered between sleeps, at least every 25 ms, so a process's timers and
** children are served and never end the wait. The uncontended path is the
** same as dbpool_holder_acquire's. For the SQLite extension: the public
** acquire keeps its promise that signals neither fail nor extend a wait.
*/
DBP_PRIVATE int dbp_holder_acquire_interruptible(dbpool_holder *h, int timeout_ms);

#endif /* DBPOOL_COORD_PRIVATE_H */
