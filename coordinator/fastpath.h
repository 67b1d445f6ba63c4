/*
** fastpath.h -- for dbpool's in-process pool (pool/, same library) and the
** SQLite extension (ext/, which carries its own copy of the coordinator)
** only: the two shared-memory words the pool's acquire/release fast path
** touches, so that it can store and load them directly instead of calling
** through the public API (which re-validates the holder and the fork
** generation on every call; the pool has checked its own fork generation
** already), and what both need when a pool is removed under them.
** Not part of the public contract.
*/
#ifndef DBPOOL_FASTPATH_H
#define DBPOOL_FASTPATH_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbpool_coord.h"

#define DBP_FAST_IDLE_FLAG 1u /* store it to mark a held slot idle, 0 active */

/* The holder record's flags word (idle bit). Valid while h lives. */
__attribute__((visibility("hidden"))) _Atomic uint32_t *
dbp_holder_flags_word(dbpool_holder *h);

/* The pool's count of queued waiters. Valid while c is open. */
__attribute__((visibility("hidden"))) const _Atomic uint32_t *
dbp_coord_waiting_word(dbpool_coord *c);

/* What a statx of a database file tells that a pool needs: its identity
** (dev, ino, birth: dbfile.c), owner and mode, and its link count. Kept
** small: the VFS shim keeps one in every open file, and SQLite zeroes each
** file's room (the database's, the journal's) at every open. */
typedef struct dbp_file_id {
  uint64_t dev, ino, birth; /* birth 0: the file system keeps none */
  uint32_t mode, uid, gid, nlink;
} dbp_file_id;

/* id from a statx made with STATX_BASIC_STATS | STATX_BTIME (dbfile.c):
** 0, or -1 when the statx lacks one of the fields id keeps. */
struct statx;
__attribute__((visibility("hidden"))) int dbp_file_id_from_statx(const struct statx *sx,
                                                                 dbp_file_id *id);

/* dbpool_coord_open(path, 0) for a database SQLite has just opened: 1
** (and no message) when the name is not a regular file (or is gone), so
** the connection is not counted; with one stat of the name in all, or
** none when opened (the statx of the descriptor SQLite opened, or NULL)
** gives the file's identity. */
__attribute__((visibility("hidden"))) int dbp_coord_open_file(const char *db_path,
                                                              const dbp_file_id *opened,
                                                              dbpool_coord **out);

/* dbpool_holder_free, told whether the database file still has a name: 1
** yes, 0 no, -1 unknown (then the last holder to leave looks, as
** dbpool_holder_free does: deleted, the process leaves the pool). */
__attribute__((visibility("hidden"))) void dbp_holder_free_linked(dbpool_holder *hd,
                                                                  int linked);

/* Was c's pool removed (dbpoolctl rm --force)? One load of the gate. */
__attribute__((visibility("hidden"))) int dbp_coord_removed(const dbpool_coord *c);

/* Was h's pool removed? If so and h holds a slot, move the slot into the
** pool now at db_path (created or joined): a new holder that holds a slot
** there even above the limit (as after lowering max_connections; the
** connection was open before), with h's label; h is freed and *hp
** replaced. Returns 1 if moved, 0 if there was nothing to do, or -errno.
** For the SQLite extension, whose connections hold their slot for life. */
__attribute__((visibility("hidden"))) int dbp_holder_rejoin(dbpool_holder **hp,
                                                            const char *db_path);

#endif
