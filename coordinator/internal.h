/*
** internal.h -- process-private structures and the functions the
** coordinator's files share. Nothing here is part of the public contract.
*/
#ifndef DBPOOL_INTERNAL_H
#define DBPOOL_INTERNAL_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/types.h>
#include <time.h>

#include "base/base.h"
#include "coordinator/private.h"
#include "layout.h"

#define DBP_SEGMENT_NAME_MAX 128
#define DBP_SHM_DIR "/dev/shm"
#define DBP_POLL_MS 25   /* waiters look for dead processes this often */
#define DBP_REAP_MIN_MS 10 /* at most one reap scan per this, pool-wide */
#define DBP_REAP_IDLE_MS 1000 /* others look at least this often (reap.c) */
#define DBP_CANDIDATES 8 /* names a pool may live under (naming.c) */
#define DBP_CACHED_UNUSED 8 /* attachments kept mapped with no user (registry.c) */

/* A database file's identity: a pool belongs to exactly one file. birth is
** the file's creation time (statx), so that a new file reusing a deleted
** file's inode number gets a new pool; 0 where the file system has none. */
typedef struct dbp_key {
  uint64_t dev, ino, birth;
} dbp_key;

/* What the coordinator needs to know of a database file (dbfile.c). */
typedef struct dbp_dbfile {
  dbp_key key;
  uid_t uid;
  gid_t gid;
  mode_t mode;
  char abs[DBPOOL_PATH_MAX]; /* resolved absolute path ("" if too long) */
} dbp_dbfile;

/* This process's attachment to one pool: one mapping of one segment file,
** read-write or read-only (a read-only attachment maps PROT_READ from an
** O_RDONLY descriptor, so the kernel enforces it). Refcounted: every open
** handle and every holder holds a reference; unused attachments stay cached
** (at most DBP_CACHED_UNUSED of them, registry.c). */
struct dbpool_coord {
  dbp_header *hdr;
  dbp_process *procs;
  dbp_record *recs;
  size_t map_size;
  int fd;            /* the segment file: mapped, reserved, asked about locks */
  int lock_fd;       /* ours while registered: holds our liveness lock. A
                        separate open file, never mapped: a mapping that a
                        forked child inherits keeps its file open, and so
                        would keep a lock on it held after we died */
  int db_fd;         /* O_PATH on the database while registered, or -1 */
  bool readonly;
  bool steer_ok;     /* may change settings / remove (dbfile.c) */
  char name[DBP_SEGMENT_NAME_MAX]; /* "/dbpool.[ns.]<dev>.<ino>.<birth>[~k]" */
  char ns[33];       /* its namespace ("" default) */
  char path[DBPOOL_PATH_MAX];      /* database path, as recorded at attach */
  dbp_key key;       /* the database file's */
  uint64_t seg_dev, seg_ino; /* the segment file mapped */
  int refs;          /* handles + holders; guarded by the registry lock */
  int holders;       /* holders alive; guarded by the registry lock */
  unsigned fork_gen; /* fork generation of the process that mapped it */
  int proc_idx;      /* our process record, -1 until the first holder */
  uint32_t proc_gen; /* its generation */
  unsigned proc_fork_gen; /* fork generation that registered proc_idx */
  uint64_t unused_tick;   /* when refs last fell to 0 (LRU order) */
  int64_t linked_checked_ns; /* coarse monotonic: when its name was last
                                found still ours (registry lock) */
  _Atomic uint32_t recs_seen; /* records below this are known to be in use
                                 (reserved pages): see dbp_gate_help */
  pthread_mutex_t reg_lock; /* registration: proc_*, holders, db_fd, lock_fd */
  bool reg_lock_init;
  bool by_path;      /* chosen among the database's candidate names */
  unsigned cand;     /* which candidate (naming.c) */
  uid_t db_uid;      /* the database's owner, group and mode when its */
  gid_t db_gid;      /* segment was last found trusted (perms.c) */
  mode_t db_mode;
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
  _Atomic int cancel; /* dbpool_holder_cancel: not used up by an acquire yet */
  bool interruptible; /* during dbp_holder_acquire_interruptible */
};

/* Crash points, for the test of owner-died recovery (tests/crash): in a
** build with DBPOOL_CRASH_POINTS (only that test's copy of the library),
** DBP_CRASH_POINT(name) calls the test's dbp_crash_point, which may kill the
** process there, in the middle of a critical section with the pool's lock
** held. In every other build it is nothing. */
#ifdef DBPOOL_CRASH_POINTS
DBP_HIDDEN void dbp_crash_point(const char *where);
#define DBP_CRASH_POINT(where) dbp_crash_point(where)
#else
#define DBP_CRASH_POINT(where) ((void)0)
#endif

/* sigwait.c: the signal masks of an interruptible wait (private.h). */
typedef struct dbp_sigwait {
  sigset_t app;   /* the thread's mask before the wait: restored after */
  sigset_t work;  /* between sleeps: app + the ending signals (held pending) */
  sigset_t sleep; /* while asleep: everything but the ending signals */
  sigset_t ends;  /* SIGINT, SIGQUIT when not blocked by the app */
} dbp_sigwait;
DBP_HIDDEN void dbp_sigwait_begin(dbp_sigwait *s);
DBP_HIDDEN int dbp_sigwait_sleep(dbp_sigwait *s, _Atomic uint32_t *word,
                                 uint32_t expected, int64_t deadline_mono_ns);
DBP_HIDDEN void dbp_sigwait_end(dbp_sigwait *s);

/* identity.c: what else we are (base.h has the pid, tid and fork
** generation). */
DBP_HIDDEN void dbp_self_comm(char out[DBPOOL_PROCESS_NAME_MAX]);
DBP_HIDDEN uint64_t dbp_self_pidns(void);
DBP_HIDDEN void dbp_registry_lock(void);
DBP_HIDDEN void dbp_registry_unlock(void);
DBP_HIDDEN void dbp_registry_forget_fds_in_child(void); /* registry.c */

/* liveness.c: a process record lives while its OFD lock is held. */
DBP_HIDDEN int dbp_liveness_take(dbpool_coord *c, unsigned p);
DBP_HIDDEN void dbp_liveness_drop(dbpool_coord *c, unsigned p);
DBP_HIDDEN bool dbp_process_alive(dbpool_coord *c, unsigned p);
DBP_HIDDEN dbpool_process_state dbp_process_state(dbpool_coord *c, unsigned p);

/* naming.c */
DBP_HIDDEN int dbp_namespace(const char **out);
DBP_HIDDEN void dbp_segment_name(const char *ns, const dbp_key *k, unsigned cand,
                                 char out[DBP_SEGMENT_NAME_MAX]);
DBP_HIDDEN bool dbp_parse_segment_name(const char *name, char ns_out[33],
                                       dbp_key *k, unsigned *cand);
DBP_HIDDEN void dbp_shm_path(const char *name, char *out, size_t cap);

/* dbfile.c */
DBP_HIDDEN int dbp_dbfile_stat(const char *db_path, dbp_dbfile *out);
DBP_HIDDEN int dbp_dbfile_stat_quiet(const char *db_path, dbp_dbfile *out);
/* The same from what a statx already made said (private.h). */
DBP_HIDDEN int dbp_dbfile_from_id(const dbp_file_id *id, dbp_dbfile *out);
DBP_HIDDEN bool dbp_key_equal(const dbp_key *a, const dbp_key *b);
DBP_HIDDEN int dbp_check_can_read(const char *db_path);
DBP_HIDDEN bool dbp_can_write(const char *db_path);

/* perms.c: who may own, open and steer a segment. */
DBP_HIDDEN int dbp_perms_apply(int fd, const char *db_path, const dbp_dbfile *db,
                               bool creating);
DBP_HIDDEN bool dbp_perms_owner_trusted(const char *db_path, const dbp_dbfile *db,
                                        uid_t seg_uid, gid_t seg_gid);

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
DBP_HIDDEN void dbp_reap_if_idle(dbpool_coord *c);
DBP_HIDDEN int dbp_reap(dbpool_coord *c);
DBP_HIDDEN unsigned dbp_reap_process_locked(dbpool_coord *c, unsigned p,
                                            bool count_reclaimed);
DBP_HIDDEN void dbp_reclaim_record_locked(dbpool_coord *c, uint32_t i,
                                          bool count_reclaimed);

/* create.c and attach.c */
DBP_HIDDEN int dbp_segment_create(const char *name, const char *ns, const char *db_path,
                                  const dbp_dbfile *db, const int64_t *explicit);
DBP_HIDDEN int dbp_segment_attach(const char *db_path, const char *seg_name,
                                  unsigned flags, const int64_t *explicit,
                                  dbpool_coord **out);
DBP_HIDDEN void dbp_segment_unmap(dbpool_coord *c);
DBP_HIDDEN bool dbp_segment_still_linked(const dbpool_coord *c);
DBP_HIDDEN void dbp_follow_rename(dbpool_coord *c, const char *db_path);
DBP_HIDDEN bool dbp_segment_trusted(dbpool_coord *c, const char *db_path,
                                    const dbp_dbfile *db);
DBP_HIDDEN bool dbp_lower_candidate_usable(dbpool_coord *c, const char *db_path,
                                           const dbp_dbfile *db);
DBP_HIDDEN void dbp_mark_removed(dbpool_coord *c);
DBP_HIDDEN int dbp_reserve_locked(dbpool_coord *c, size_t off, size_t len);
DBP_HIDDEN int dbp_shm_full_error(int err, const char *what, const char *db_path);

/* admin.c */
DBP_HIDDEN void dbp_remove_locked(dbpool_coord *c);
DBP_HIDDEN bool dbp_unlink_allowed(const dbpool_coord *c);
DBP_HIDDEN void dbp_remove_if_deleted(dbpool_coord *c);

/* settings.c */
DBP_HIDDEN int dbp_setting_initial(int s, int64_t *value);
DBP_HIDDEN int64_t dbp_setting_read(const dbp_header *h, int s);
DBP_HIDDEN void dbp_setting_init(dbp_header *h, int s, int64_t value);
DBP_HIDDEN int dbp_steer_check(dbpool_coord *c, const char *what);

/* stats.c */
DBP_HIDDEN unsigned dbp_hist_bucket(uint64_t wait_ns);
DBP_HIDDEN void dbp_record_users(dbpool_coord *c, char *buf, size_t cap);
DBP_HIDDEN void dbp_record_wait(dbp_header *h, uint64_t wait_ns);
DBP_HIDDEN uint64_t dbp_percentile(const uint64_t *counts, uint64_t total,
                                   double q, uint64_t max_ns);
/* An acquire that failed for lack of a slot after waiting waited_ns: counted
** in total_timeouts and in the wait figures. */
DBP_HIDDEN void dbp_record_timeout(dbp_header *h, uint64_t waited_ns);

/* registry.c */
DBP_HIDDEN int dbp_register_process(dbpool_coord *c);
DBP_HIDDEN void dbp_label_store(_Atomic uint64_t *dst, unsigned words,
                                const char *src);
DBP_HIDDEN void dbp_label_load(_Atomic uint64_t *src, unsigned words,
                               char *dst);

/* Is process record p this process's own registration in c? Read without
** the registry lock (reapers run in any thread): relaxed atomics, and a
** wrong "no" is harmless (our liveness lock is visible to us too). */
static inline bool dbp_is_own_record(const dbpool_coord *c, unsigned p)
{
  return (unsigned)__atomic_load_n(&c->proc_idx, __ATOMIC_RELAXED) == p &&
         __atomic_load_n(&c->proc_fork_gen, __ATOMIC_RELAXED) == dbp_fork_gen();
}

/* A record index that may be touched: below the high-water mark, so on a
** page that was reserved (bytes in the segment are untrusted; a page never
** reserved would fault when /dev/shm is full). */
static inline bool dbp_rec_in(const dbp_header *h, uint32_t i)
{
  return i < (uint32_t)atomic_load_explicit(&((dbp_header *)h)->record_hwm,
                                            memory_order_acquire) &&
         i < DBP_RECORDS;
}

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
  if (__builtin_expect(i >= atomic_load_explicit(&c->recs_seen, memory_order_relaxed), 0)) {
    if (!dbp_rec_in(c->hdr, i)) return; /* DBP_REC_NONE, or garbage */
    atomic_store_explicit(&c->recs_seen, i + 1, memory_order_relaxed);
  }
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
