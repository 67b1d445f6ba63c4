/*
** base.h -- the low-level primitives every layer of libdbpool shares: the
** coordinator (coordinator/), the in-process pool (pool/) and the SQLite
** extension (ext/, which links its own hidden copy). One definition each:
**
**   clocks      CLOCK_MONOTONIC for deadlines and measured waits, REALTIME
**               only for timestamps that people read (inline, below);
**   futexes     wait with an absolute monotonic deadline, wake; shared
**               (words in a pool segment) or private (words in this
**               process) (futex.c);
**   identity    this process's pid and each thread's tid, cached, and the
**               fork generation that tells a child to refresh them and not
**               use its parent's handles (identity.c);
**   messages    the thread-local detailed message of the last failure,
**               returned by both dbpool_last_error() and dbpool_errmsg()
**               (error.c);
**   sizes       the growable structs' size rule (sized.c).
**
** No SQLite here (sqlite_rc.h, for the SQLite-facing layers only, maps
** errno values to SQLite result codes). Not part of the public contract:
** every symbol is hidden.
*/
#ifndef DBPOOL_BASE_H
#define DBPOOL_BASE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define DBP_HIDDEN __attribute__((visibility("hidden")))

/* -------------------------------------------------------------- clocks */

/* Inline: the fast paths read the coarse clocks, and the extension's
** writer gate the monotonic one on every transaction; a call would cost
** more than the vDSO read itself. */
static inline int64_t dbp_clock_ns(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t dbp_mono_ns(void) { return dbp_clock_ns(CLOCK_MONOTONIC); }
/* ..._COARSE: a few ns, 4 ms steps */
static inline int64_t dbp_mono_coarse_ns(void) { return dbp_clock_ns(CLOCK_MONOTONIC_COARSE); }
static inline int64_t dbp_real_ns(void) { return dbp_clock_ns(CLOCK_REALTIME); }
static inline int64_t dbp_real_coarse_ns(void) { return dbp_clock_ns(CLOCK_REALTIME_COARSE); }

static inline struct timespec dbp_ts(int64_t ns)
{
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  return ts;
}

/* ------------------------------------------------------------ futex.c */

/* Where the futex word lives: in memory shared with other processes (a pool
** segment), or in this process only (cheaper for the kernel). */
typedef enum dbp_futex_scope { DBP_FUTEX_SHARED = 0, DBP_FUTEX_PRIVATE = 1 } dbp_futex_scope;

/*
** dbp_futex_wait_once: sleep while *word == expected, until woken or
** deadline_mono_ns (an absolute CLOCK_MONOTONIC time; < 0 = none: a signal
** never moves the deadline). Every outcome the kernel gives, exactly:
**   0           woken (FUTEX_WAKE), or *word != expected already (EAGAIN);
**   -ETIMEDOUT  the deadline passed;
**   -EINTR      a signal handler ran (with a deadline the kernel reports
**               this for every caught signal, SA_RESTART or not);
**   other       -EFAULT, -EINVAL, -ENOSYS...: a bug or an unusable word,
**               never "woken".
** dbp_futex_wait: the same, but an EINTR is waited out (unless the word
** changed meanwhile): never -EINTR.
*/
DBP_HIDDEN int dbp_futex_wait_once(_Atomic uint32_t *word, uint32_t expected,
                                   int64_t deadline_mono_ns, dbp_futex_scope scope);
DBP_HIDDEN int dbp_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                              int64_t deadline_mono_ns, dbp_futex_scope scope);
/* Wake at most n sleepers on word. */
DBP_HIDDEN void dbp_futex_wake(_Atomic uint32_t *word, int n, dbp_futex_scope scope);

/* --------------------------------------------------------- identity.c */

/* Bumped in the child at every fork (pthread_atfork, installed when the
** library is loaded): state stamped with an older generation belongs to
** the parent. */
DBP_HIDDEN extern _Atomic unsigned dbp_g_fork_gen;
DBP_HIDDEN extern __thread pid_t dbp_t_tid;
DBP_HIDDEN extern __thread unsigned dbp_t_tid_gen;
DBP_HIDDEN pid_t dbp_pid(void);         /* getpid(), cached */
DBP_HIDDEN pid_t dbp_tid_refresh(void); /* gettid() into the cache */

static inline unsigned dbp_fork_gen(void)
{
  return atomic_load_explicit(&dbp_g_fork_gen, memory_order_relaxed);
}

/* This thread's id (gettid), cached: no system call after the first. */
static inline pid_t dbp_tid(void)
{
  if (__builtin_expect(dbp_t_tid_gen != dbp_fork_gen() || dbp_t_tid == 0, 0))
    return dbp_tid_refresh();
  return dbp_t_tid;
}

/* ------------------------------------------------------------ error.c */

/*
** dbp_err: format this thread's message for the failure being returned and
** return err unchanged (a negative errno in the coordinator, a SQLite
** result code in the pool). A caller that passes on a failure whose message
** is already set returns the code alone: the message stays.
*/
DBP_HIDDEN int dbp_err(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
DBP_HIDDEN const char *dbp_errmsg(void); /* never NULL; "" if none */
DBP_HIDDEN void dbp_clear_error(void);

/* ------------------------------------------------------------ sized.c */

/*
** Growable structs (include/dbpool_coord.h): every struct the caller hands
** in starts with uint32_t size. A struct's first version ends at its last
** member of then, DBP_END_OF(type, member): those constants never change
** (members added later go after it), so a caller built against any later
** header passes a size at least that big.
*/
#define DBP_END_OF(type, member) (offsetof(type, member) + sizeof(((type *)0)->member))

/* -EINVAL with a message unless the size at the start of s is at least
** v1_size; type names the struct, init how to set it ("DBPOOL_INIT"). */
DBP_HIDDEN int dbp_sized_check(const void *s, size_t v1_size, const char *type,
                               const char *init);
/* Copy what fits of full (full_size bytes, the library's struct) into dst,
** whose size member says how big it is, and set that to the bytes filled. */
DBP_HIDDEN void dbp_sized_out(void *dst, const void *full, size_t full_size);
/* An array of elements of elem_size bytes: -EINVAL below v1_size. */
DBP_HIDDEN int dbp_elem_check(size_t elem_size, size_t v1_size, const char *type);
/* Element i of such an array: what fits of full, the rest zeroed. */
DBP_HIDDEN void dbp_elem_put(void *buf, size_t i, size_t elem_size, const void *full,
                             size_t full_size);

#endif /* DBPOOL_BASE_H */
