/*
** internal.h -- process-private structures and the functions the
** coordinator's files share. Nothing here is part of the public contract.
*/
#ifndef DBPOOL_INTERNAL_H
#define DBPOOL_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "layout.h"

#define DBP_HIDDEN __attribute__((visibility("hidden")))
#define DBP_SEGMENT_NAME_MAX 96
#define DBP_SHM_DIR "/dev/shm"
#define DBP_POLL_MS 25   /* waiters look for dead processes this often */
#define DBP_REAP_MIN_MS 10 /* at most one reap scan per this, pool-wide */

/* This process's attachment to one pool. Refcounted: every open handle and
** every holder holds a reference. */
struct dbpool_coord {
  dbp_header *hdr;
  dbp_process *procs;
  dbp_record *recs;
  size_t map_size;
  bool readonly;
  char name[DBP_SEGMENT_NAME_MAX]; /* "/dbpool.<dev>.<ino>" */
  char path[DBPOOL_PATH_MAX];      /* database path, as recorded at attach */
  uint64_t dev, ino;     /* the database file's key */
  uint64_t seg_dev, seg_ino; /* the segment file mapped */
  int refs;          /* handles + holders; guarded by the registry lock */
  int holders;       /* holders alive; guarded by the registry lock */
  unsigned fork_gen; /* fork generation of the process that mapped it */
  int proc_idx;      /* our process record, -1 until the first holder */
  uint32_t proc_gen; /* its generation */
  unsigned proc_fork_gen; /* fork generation that registered proc_idx */
  struct dbpool_coord *next; /* registry list */
};

struct dbpool_holder {
  dbpool_coord *c;
  dbp_record *rec;
  uint32_t idx;
  int proc_idx;
  unsigned fork_gen;
  bool held;
  bool waiting;
  const int *cancel; /* during dbpool_holder_acquire_cancellable (atomic reads) */
};

/* errors.c */
DBP_HIDDEN int dbp_err(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
DBP_HIDDEN void dbp_clear_error(void);

/* clock.c: CLOCK_MONOTONIC for deadlines and waits, REALTIME for display. */
DBP_HIDDEN int64_t dbp_mono_ns(void);
DBP_HIDDEN int64_t dbp_real_ns(void);
DBP_HIDDEN int64_t dbp_real_coarse_ns(void);
DBP_HIDDEN struct timespec dbp_ts(int64_t ns);

/* futex.c */
DBP_HIDDEN int dbp_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                              int64_t deadline_mono_ns);
DBP_HIDDEN void dbp_futex_wake(_Atomic uint32_t *word, int n);

/* identity.c: who we are, who is alive. */
DBP_HIDDEN extern _Atomic unsigned dbp_g_fork_gen;
DBP_HIDDEN extern __thread pid_t dbp_t_tid;
DBP_HIDDEN extern __thread unsigned dbp_t_tid_gen;
DBP_HIDDEN pid_t dbp_pid(void);
DBP_HIDDEN pid_t dbp_tid_refresh(void);

static inline unsigned dbp_fork_gen(void)
{
  return atomic_load_explicit(&dbp_g_fork_gen, memory_order_relaxed);
}

static inline pid_t dbp_tid(void)
{
  if (__builtin_expect(dbp_t_tid_gen != dbp_fork_gen() || dbp_t_tid == 0, 0))
    return dbp_tid_refresh();
  return dbp_t_tid;
}
DBP_HIDDEN void dbp_self_identity(uint32_t *kind, uint64_t *ident);
DBP_HIDDEN void dbp_self_comm(char out[DBPOOL_PROCESS_NAME_MAX]);
DBP_HIDDEN uint64_t dbp_self_pidns(void);
DBP_HIDDEN bool dbp_process_dead(pid_t pid, uint32_t kind, uint64_t ident);
DBP_HIDDEN void dbp_registry_lock(void);
DBP_HIDDEN void dbp_registry_unlock(void);

/* gate.c (the hot helpers are inline below) */
DBP_HIDDEN dbp_gate dbp_gate_snapshot(const dbp_header *h);
DBP_HIDDEN void dbp_gate_set_flags(dbpool_coord *c, uint64_t set, uint64_t clear);

/* lock.c: the pool mutex, with recovery when its owner died. */
DBP_HIDDEN int dbp_lock(dbpool_coord *c, int64_t deadline_mono_ns);
DBP_HIDDEN void dbp_unlock(dbpool_coord *c);
DBP_HIDDEN void dbp_recover(dbpool_coord *c);

/* waitq.c: the slow paths, under the lock. */
DBP_HIDDEN int dbp_acquire_slow(dbpool_holder *hd, int timeout_ms);
DBP_HIDDEN int dbp_release_slow(dbpool_holder *hd);
DBP_HIDDEN void dbp_queue_remove(dbpool_coord *c, uint32_t idx);
DBP_HIDDEN void dbp_queue_rebuild(dbpool_coord *c);
DBP_HIDDEN unsigned dbp_grant_waiters(dbpool_coord *c, uint32_t *woken,
                                      unsigned cap);
DBP_HIDDEN void dbp_wake_records(dbpool_coord *c, const uint32_t *idx,
                                 unsigned n);
DBP_HIDDEN void dbp_update_slow(dbpool_coord *c);
DBP_HIDDEN void dbp_unlock_granting(dbpool_coord *c);

/* reap.c */
DBP_HIDDEN int dbp_maybe_reap(dbpool_coord *c);
DBP_HIDDEN int dbp_reap(dbpool_coord *c);
DBP_HIDDEN unsigned dbp_reap_process_locked(dbpool_coord *c, unsigned p,
                                            bool count_reclaimed);
DBP_HIDDEN void dbp_reclaim_record_locked(dbpool_coord *c, uint32_t i,
                                          bool count_reclaimed);
DBP_HIDDEN int dbp_live_process_count(dbpool_coord *c, bool check);

/* segment.c */
DBP_HIDDEN int dbp_segment_attach(const char *db_path, const char *seg_name,
                                  unsigned flags, dbpool_coord **out);
DBP_HIDDEN void dbp_segment_unmap(dbpool_coord *c);
DBP_HIDDEN bool dbp_segment_still_linked(const dbpool_coord *c);
DBP_HIDDEN int dbp_segment_name_for(const char *db_path,
                                    char out[DBP_SEGMENT_NAME_MAX],
                                    uint64_t *dev, uint64_t *ino);
DBP_HIDDEN int dbp_namespace(const char **out);

/* settings.c */
DBP_HIDDEN int dbp_setting_initial(int s, int64_t *value);

/* stats.c */
DBP_HIDDEN unsigned dbp_hist_bucket(uint64_t wait_ns);
DBP_HIDDEN void dbp_record_wait(dbp_header *h, uint64_t wait_ns);
/* An acquire that failed for lack of a slot after waiting waited_ns: counted
** in total_timeouts and in the wait figures. */
DBP_HIDDEN void dbp_record_timeout(dbp_header *h, uint64_t waited_ns);

/* registry.c */
DBP_HIDDEN int dbp_register_process(dbpool_coord *c);
DBP_HIDDEN void dbp_label_store(_Atomic uint64_t *dst, unsigned words,
                                const char *src);
DBP_HIDDEN void dbp_label_load(_Atomic uint64_t *src, unsigned words,
                               char *dst);

/* A valid record index (bytes in the segment are untrusted). */
static inline bool dbp_rec_ok(uint32_t i) { return i < DBP_RECORDS; }

/* Untrusted counts, read once and clamped: use the value returned, never
** the field again (another process may change it meanwhile). */
static inline uint32_t dbp_record_hwm(const dbp_header *h)
{
  uint32_t v = atomic_load_explicit(&h->record_hwm, memory_order_acquire);
  return v < DBP_RECORDS ? v : DBP_RECORDS;
}

static inline uint32_t dbp_process_hwm(const dbp_header *h)
{
  uint32_t v = atomic_load_explicit(&h->process_hwm, memory_order_acquire);
  return v < DBP_PROCESSES ? v : DBP_PROCESSES;
}

/* ------------------------------------------------- the gate, inline (hot) */

/* A consistent gate value, read without writing: seq, bits, seq again
** until the two seq reads agree. seq grows with every acquire and release,
** and every other change (flags, limit) keeps the rec and kind fields, so a
** pair read between two equal seqs is one the gate really held. Helping
** must never act on a torn pair: {new seq, old op} would apply an old op
** under a new sequence number. */
static inline dbp_gate dbp_gate_load(const dbp_header *h)
{
  for (;;) {
    uint64_t s1 = __atomic_load_n(&h->gate.half[0], __ATOMIC_ACQUIRE);
    uint64_t b = __atomic_load_n(&h->gate.half[1], __ATOMIC_ACQUIRE);
    uint64_t s2 = __atomic_load_n(&h->gate.half[0], __ATOMIC_ACQUIRE);
    if (s1 == s2) return (dbp_gate){.seq = s1, .bits = b};
  }
}

#if defined(__SANITIZE_THREAD__)
#define DBP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define DBP_TSAN 1
#endif
#endif

/* 16-byte compare-and-swap; returns the value the gate held. Under TSan the
** compiler's 16-byte atomics are emulated with a lock private to each
** process, which is not atomic across processes: use the instruction. */
static inline dbp_u128 dbp_cas16(dbp_u128 *p, dbp_u128 o, dbp_u128 n)
{
#if defined(DBP_TSAN) && defined(__x86_64__)
  uint64_t lo = (uint64_t)o, hi = (uint64_t)(o >> 64);
  __asm__ __volatile__("lock cmpxchg16b %1"
                       : "+a"(lo), "+m"(*p), "+d"(hi)
                       : "b"((uint64_t)n), "c"((uint64_t)(n >> 64))
                       : "cc", "memory");
  return (dbp_u128)hi << 64 | lo;
#else
  return __sync_val_compare_and_swap(p, o, n);
#endif
}

static inline bool dbp_gate_cas(dbp_header *h, dbp_gate *expected,
                                dbp_gate desired)
{
  dbp_u128 o = (dbp_u128)expected->bits << 64 | expected->seq;
  dbp_u128 n = (dbp_u128)desired.bits << 64 | desired.seq;
  dbp_u128 p = dbp_cas16(&h->gate.whole, o, n);
  if (p == o) return true;
  expected->seq = (uint64_t)p;
  expected->bits = (uint64_t)(p >> 64);
  return false;
}

/* Serial-number order on record sequence numbers (62 bits). */
static inline bool dbp_seq_before(uint64_t a, uint64_t b)
{
  uint64_t d = (b - a) & REC_SEQ_MASK;
  return d != 0 && d < (REC_SEQ_MASK >> 1);
}

/* Apply the gate's last op to its record unless that already happened:
** record sequence numbers only grow, so a late helper can never roll a
** record back. */
static inline void dbp_gate_help(dbpool_coord *c, dbp_gate g)
{
  uint32_t i = g_rec(g.bits);
  if (!dbp_rec_ok(i)) return;
  dbp_record *r = &c->recs[i];
  uint64_t s = g.seq & REC_SEQ_MASK;
  uint64_t w = atomic_load_explicit(&r->word, memory_order_acquire);
  if (__builtin_expect(!dbp_seq_before(REC_SEQ(w), s), 1)) return;
  unsigned state = (g.bits & G_KIND_REL) ? REC_FREE : REC_HELD;
  while (dbp_seq_before(REC_SEQ(w), s))
    if (atomic_compare_exchange_weak_explicit(&r->word, &w, REC_WORD(state, s),
                                              memory_order_acq_rel,
                                              memory_order_acquire))
      return;
}

/* The gate after "record rec acquires" or "record rec releases". */
static inline dbp_gate dbp_gate_op(dbp_gate g, uint32_t rec, bool release)
{
  unsigned active = g_active(g.bits) + (release ? -1u : 1u);
  uint64_t b = g_with(g.bits, G_ACTIVE_SHIFT, active);
  if (active > g_peak(b)) b = g_with(b, G_PEAK_SHIFT, active);
  b = g_with(b, G_REC_SHIFT, rec);
  b = release ? (b | G_KIND_REL) : (b & ~G_KIND_REL);
  return (dbp_gate){.seq = g.seq + 1, .bits = b};
}

#endif /* DBPOOL_INTERNAL_H */
