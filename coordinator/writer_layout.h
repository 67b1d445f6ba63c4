/*
** writer_layout.h -- the writer queue's bytes in a pool segment.
**
** SQLite lets one transaction write a WAL database at a time (its
** WAL_WRITE_LOCK). The writer queue decides whose turn that is, host-wide:
** docs/protocol.md ("The writer queue") explains the protocol; writer.c is
** the code. The short version:
**
**   The turn word says who may write: nobody (FREE), an entry that took the
**   turn and is taking or holding SQLite's lock (HELD), or an entry the turn
**   was handed to and that has not come for it yet (GRANTED). It changes only
**   by a 64-bit compare-and-swap and carries a sequence number, so a decision
**   made on an old value (expire this grant, skip that dead holder) fails
**   instead of undoing a newer one.
**
**   An entry belongs to one connection (one open database file) of one
**   process. A connection that finds the turn taken takes a ticket (its
**   entry becomes WAITING); the waiting entry with the smallest ticket is the
**   head of the queue. Nothing links the entries: the queue is recomputed by
**   scanning them, so no half-done edit of a dead process can corrupt it.
**
** Every byte here may be garbage written by another process: indices are
** range-checked and read once.
*/
#ifndef DBPOOL_WRITER_LAYOUT_H
#define DBPOOL_WRITER_LAYOUT_H

#include <stdatomic.h>
#include <stdint.h>

#include "dbpool_admin.h"

#define DBP_WQ_ENTRIES 512u   /* connections that can queue at once */
#define DBP_WQ_NONE 0xffffu   /* "no entry" in the turn word */

/* The turn word: entry index (16 bits), kind (2), STRICT (1), sequence. */
enum { WQ_FREE = 0, WQ_HELD = 1, WQ_GRANTED = 2 };
#define WQ_T_IDX(t) ((uint32_t)((t) & 0xffffu))
#define WQ_T_KIND(t) ((unsigned)(((t) >> 16) & 3u))
#define WQ_T_STRICT (UINT64_C(1) << 18)
#define WQ_T_SEQ_ONE (UINT64_C(1) << 19)
#define WQ_T_MAKE(old, kind, idx, strict)                                    \
  ((((old) & ~(WQ_T_SEQ_ONE - 1)) + WQ_T_SEQ_ONE) |                          \
   ((uint64_t)(kind) << 16) | ((uint64_t)(idx) & 0xffffu) |                  \
   ((strict) ? WQ_T_STRICT : 0))

/* An entry's state word: kind in the low 2 bits, a generation above them
** (bumped each time the entry is taken), so that a compare-and-swap made
** on a stale reading fails. */
enum { WQE_FREE = 0, WQE_IDLE = 1, WQE_WAITING = 2 };
#define WQE_KIND(w) ((unsigned)((w) & 3u))
#define WQE_GEN(w) ((w) >> 2)
#define WQE_WORD(gen, kind) ((((uint64_t)(gen)) << 2) | (uint64_t)(kind))

/* Settings stored here (see settings.c). */
#define DBP_WQ_ON_DEFAULT 1
#define DBP_WQ_STARVE_DEFAULT_MS 20

/* Journal mode last seen by a writer: the queue serves WAL databases only. */
enum { WQ_JOURNAL_UNKNOWN = 0, WQ_JOURNAL_WAL = 1, WQ_JOURNAL_ROLLBACK = 2 };

typedef struct dbp_wq_entry {
  _Atomic uint64_t state;    /* WQE_* | generation */
  _Atomic uint64_t ticket;   /* queue position while WAITING */
  _Atomic int64_t since_ns;  /* CLOCK_MONOTONIC: waiting since */
  _Atomic int64_t alive_ns;  /* CLOCK_MONOTONIC: the waiter or grantee is
                                known to come back before this */
  _Atomic uint32_t wake;     /* futex: bumped when the turn may be ours */
  _Atomic uint32_t losses;   /* times woken for a free turn and beaten */
  _Atomic int32_t pid, tid;  /* for display and the same-thread check */
  _Atomic uint32_t proc;     /* the owner's process record + 1 */
  _Atomic uint32_t proc_gen; /* that record's generation: its liveness */
  _Atomic int64_t expired_ns; /* CLOCK_MONOTONIC: its place expired then */
  _Atomic uint32_t record;   /* the connection's holder record, for display */
  uint32_t reserved0;
} dbp_wq_entry;

typedef struct dbp_writerq {
  /* The turn, and what the contended path reads with it. */
  _Alignas(64) _Atomic uint64_t turn;
  _Atomic int64_t turn_ns;      /* CLOCK_MONOTONIC: last grant */
  _Atomic int64_t strict_ns;    /* CLOCK_MONOTONIC: last strict hand-off */
  _Atomic uint64_t next_ticket;
  _Atomic int64_t oldest_ns;    /* hint: the oldest waiter's since_ns
                                   (INT64_MAX: none; 0: unknown) */
  _Atomic uint32_t n_waiting;   /* WAITING entries (repaired by checks) */
  _Atomic uint32_t entry_hwm;   /* entries [0, hwm) have been used */

  /* Settings and what writers report. */
  _Alignas(64) _Atomic uint32_t enabled;   /* writer_queue */
  _Atomic uint32_t starve_ms;              /* writer_starvation_ms */
  _Atomic uint32_t journal;                /* WQ_JOURNAL_* */
  uint32_t reserved0;
  _Atomic int64_t last_check_ns;           /* rate limit of dead checks */

  /* Statistics: written after the fact, never on the way to the lock. */
  _Alignas(64) _Atomic uint64_t total_writes;  /* turns taken */
  _Atomic uint64_t total_waits;    /* of those, after waiting */
  _Atomic uint64_t total_wait_ns;
  _Atomic uint64_t max_wait_ns;
  _Atomic uint64_t skipped_dead;   /* turns and tickets of dead processes */
  _Atomic uint64_t expired;        /* granted turns and tickets never used */
  _Atomic uint64_t strict_grants;  /* hand-offs in starvation mode */
  _Atomic uint64_t handoff_ns;     /* grant to claim, summed over hand-offs */
  _Atomic uint64_t hist[DBPOOL_HIST_BUCKETS];

  _Alignas(64) dbp_wq_entry entries[DBP_WQ_ENTRIES];
} dbp_writerq;

_Static_assert(sizeof(dbp_wq_entry) == 72, "entry size is part of the layout");
_Static_assert(DBP_WQ_ENTRIES < DBP_WQ_NONE, "fits the turn word");

#endif /* DBPOOL_WRITER_LAYOUT_H */
