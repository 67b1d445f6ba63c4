/*
** layout.h -- the bytes of a pool segment, shared by every process.
**
** A segment is one POSIX shared memory object: a header, a table of process
** records and a table of holder records. docs/protocol.md explains the
** protocol; the short version:
**
**   The gate (16 bytes, changed only by a 16-byte compare-and-swap) holds
**   everything an uncontended acquire or release must look at: the number of
**   slots held, the limit, flags, and the last operation (which record went
**   to HELD or FREE, with a 64-bit sequence number). Acquire and release are
**   one CAS on the gate followed by a store to the holder's record. Whoever
**   next reads the gate first completes ("helps") the recorded operation on
**   its record if that has not happened yet, so a process killed between the
**   CAS and the store leaves nothing half-done: the gate and the records
**   always agree once helped.
**
**   Everything else (the FIFO wait queue, process registration, reaping,
**   settings) happens under a robust process-shared mutex. While anyone
**   waits or the pool is paused, the gate's SLOW flag sends every acquire and
**   release through the mutex, so no arrival overtakes a waiter.
**
** Every byte here may be garbage written by another process: readers
** validate indices and lengths before use.
*/
#ifndef DBPOOL_LAYOUT_H
#define DBPOOL_LAYOUT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dbpool_admin.h"
#include "writer_layout.h"

#define DBP_MAGIC UINT64_C(0x31304c4f4f504244) /* "DBPOOL01" */
#define DBP_LAYOUT_VERSION 4u
#define DBP_RECORDS 8191u   /* holder records; 13-bit index */
#define DBP_REC_NONE 8191u  /* "no record" in the gate */
#define DBP_PROCESSES 1024u /* process records */
#define DBP_LABEL_WORDS (DBPOOL_LABEL_MAX / 8)
#define DBP_COMM_WORDS (DBPOOL_PROCESS_NAME_MAX / 8)

/* ------------------------------------------------------------------ gate */

__extension__ typedef unsigned __int128 dbp_u128;

/* The gate's upper word. Fields of 13 bits hold 0..8191. */
#define G_ACTIVE_SHIFT 0
#define G_MAX_SHIFT 13
#define G_PEAK_SHIFT 26
#define G_REC_SHIFT 39
#define G_FIELD_MASK UINT64_C(0x1fff)
#define G_KIND_REL (UINT64_C(1) << 52) /* last op: 0 acquire, 1 release */
#define G_SLOW (UINT64_C(1) << 53)     /* acquire/release must take the lock */
#define G_PAUSED (UINT64_C(1) << 54)
#define G_REMOVED (UINT64_C(1) << 55)  /* segment unlinked; reattach */

typedef union dbp_gate_word {
  dbp_u128 whole;
  uint64_t half[2]; /* [0] = seq, [1] = bits (little-endian x86-64) */
} dbp_gate_word;

typedef struct dbp_gate {
  uint64_t seq;  /* acquires + releases ever done in the pool */
  uint64_t bits; /* fields above */
} dbp_gate;

static inline unsigned g_field(uint64_t bits, int shift)
{
  return (unsigned)((bits >> shift) & G_FIELD_MASK);
}

static inline uint64_t g_with(uint64_t bits, int shift, unsigned v)
{
  return (bits & ~(G_FIELD_MASK << shift)) | ((uint64_t)v & G_FIELD_MASK) << shift;
}

#define g_active(b) g_field((b), G_ACTIVE_SHIFT)
#define g_max(b) g_field((b), G_MAX_SHIFT)
#define g_peak(b) g_field((b), G_PEAK_SHIFT)
#define g_rec(b) g_field((b), G_REC_SHIFT)

/* --------------------------------------------------------------- records */

/* A record word: state in the low 2 bits, the sequence number of the last
** gate operation applied to the record above them. */
enum { REC_FREE = 0, REC_HELD = 1, REC_WAITING = 2 };
#define REC_STATE(w) ((unsigned)((w) & 3u))
#define REC_SEQ(w) ((w) >> 2)
#define REC_WORD(state, seq) ((((uint64_t)(seq)) << 2) | (uint64_t)(state))
#define REC_SEQ_MASK (UINT64_MAX >> 2)

#define REC_FLAG_IDLE 1u

typedef struct dbp_record {
  _Atomic uint64_t word;     /* state | applied seq; see above */
  _Atomic uint32_t wake;     /* futex: bumped when granted or dismissed */
  _Atomic uint32_t owner;    /* process index + 1; 0 = unowned */
  _Atomic int32_t tid;
  _Atomic uint32_t flags;    /* REC_FLAG_IDLE */
  _Atomic int64_t since_ns;  /* CLOCK_REALTIME: held or waiting since */
  _Atomic uint64_t ticket;   /* FIFO position while waiting (lock) */
  _Atomic uint32_t q_prev, q_next; /* wait queue links (lock) */
  _Atomic uint32_t free_next; /* unowned record stack (lock) */
  _Atomic uint32_t joined;   /* dbpool_joined: how the holder came (shown only) */
  _Atomic uint64_t label[DBP_LABEL_WORDS];
  uint8_t reserved[128 - 104];
} dbp_record;

/* ------------------------------------------------------ process records */

/* A process record is LIVE from registration (a process's first holder) to
** its last holder's release. Whether its process still lives is not stored
** here: the process holds an exclusive OFD lock on the byte
** DBP_LIVENESS_BYTE(p) of the segment file, which the kernel drops when the
** process exits (whatever killed it, in whatever pid namespace). See
** liveness.c. */
enum { PROC_FREE = 0, PROC_LIVE = 1 };

typedef struct dbp_process {
  _Atomic uint32_t state;
  _Atomic uint32_t gen;        /* bumped each time the entry is reused */
  _Atomic int32_t pid;         /* in the process's own pid namespace */
  _Atomic uint32_t n_records;  /* records owned (lock) */
  _Atomic uint64_t pidns;      /* pid namespace inode (0 unknown) */
  _Atomic int64_t attached_ns; /* CLOCK_REALTIME */
  _Atomic uint64_t comm[DBP_COMM_WORDS];
  uint8_t reserved[64 - 48];
} dbp_process;

/* The byte of the segment file whose OFD lock says "process record p is
** alive": past the end of the file (locks need no data there). */
#define DBP_LIVENESS_BYTE(p) ((off_t)DBP_SEGMENT_SIZE + (off_t)(p))

/* ---------------------------------------------------------------- header */

typedef struct dbp_header {
  /* Identity: written once before the segment is published. */
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_size;
  uint64_t segment_size;
  uint64_t key_dev, key_ino, key_birth; /* the database file (identity.c) */
  uint32_t records, processes;
  uint32_t mutex_size; /* sizeof(pthread_mutex_t): ABI check */
  uint32_t reserved0;
  int64_t created_ns;  /* CLOCK_REALTIME */
  char path[DBPOOL_PATH_MAX]; /* absolute database path (lock) */

  /* The gate: alone on its cache line with the fast path's other reads. */
  _Alignas(64) dbp_gate_word gate;
  _Atomic int32_t acquire_timeout_ms;

  /* Lock-free readable state maintained under the lock. */
  _Alignas(64) _Atomic uint32_t n_waiting;
  _Atomic uint32_t waiter_event;     /* futex: bumped when a waiter queues */
  _Atomic uint32_t event_listeners;  /* processes blocked on waiter_event */
  uint32_t reserved2;
  _Atomic int64_t last_reap_ns;      /* CLOCK_MONOTONIC rate limiter */
  _Atomic uint64_t total_timeouts;
  _Atomic uint64_t total_reclaimed;
  _Atomic int64_t last_used_ns;      /* CLOCK_REALTIME of the last registration */

  /* The lock and what only it guards. */
  _Alignas(64) pthread_mutex_t lock;
  _Atomic uint32_t q_head, q_tail; /* DBP_REC_NONE when empty */
  _Atomic uint64_t next_ticket;
  _Atomic uint32_t free_head;   /* stack of unowned records below hwm */
  _Atomic uint32_t record_hwm;  /* records [0, hwm) have been used */
  _Atomic uint32_t process_hwm;
  uint32_t reserved1;
  _Atomic uint64_t reclaim_journal_seq; /* see reap.c */
  _Atomic uint64_t reclaim_journal_after;

  /* Wait statistics: lock-free atomics, written by waiters after waking. */
  _Alignas(64) _Atomic uint64_t total_wait_ns;
  _Atomic uint64_t max_wait_ns;
  _Atomic uint64_t hist[DBPOOL_HIST_BUCKETS];

  dbp_writerq writerq; /* writer_layout.h */
} dbp_header;

#define DBP_PROCESSES_OFF \
  ((sizeof(dbp_header) + 4095u) & ~(size_t)4095u)
#define DBP_RECORDS_OFF \
  (DBP_PROCESSES_OFF + (size_t)DBP_PROCESSES * sizeof(dbp_process))
#define DBP_SEGMENT_SIZE \
  ((DBP_RECORDS_OFF + (size_t)DBP_RECORDS * sizeof(dbp_record) + 4095u) & \
   ~(size_t)4095u)

_Static_assert(sizeof(dbp_record) == 128, "record is two cache lines");
_Static_assert(sizeof(dbp_process) == 64, "process record is one line");
_Static_assert(DBPOOL_LABEL_MAX % 8 == 0, "label is whole words");
_Static_assert(DBPOOL_MAX_CONNECTIONS_LIMIT < DBP_REC_NONE, "fits the gate");

#endif /* DBPOOL_LAYOUT_H */
