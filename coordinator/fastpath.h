/*
** fastpath.h -- for dbpool's in-process pool (pool/, same library) only:
** the two shared-memory words its acquire/release fast path touches, so
** that it can store and load them directly instead of calling through the
** public API (which re-validates the holder and the fork generation on
** every call; the pool has checked its own fork generation already).
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

#endif
