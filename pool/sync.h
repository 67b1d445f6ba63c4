/*
** sync.h -- the pool's own lock and wait primitives, on private futexes.
**
** The lock is the classic three-state futex mutex (0 free, 1 locked, 2
** locked with sleepers; Drepper, "Futexes Are Tricky"): an uncontended lock
** or unlock is one atomic instruction, against glibc's pthread_mutex with
** its type dispatch (this is the pool's fast path, measured against a naive
** pthread pool in make bench). It spins briefly before sleeping, since
** critical sections are tens of nanoseconds. Waits take absolute
** CLOCK_MONOTONIC deadlines and wait out EINTR (base/futex.c).
*/
#ifndef DBPOOL_POOL_SYNC_H
#define DBPOOL_POOL_SYNC_H

#include <stdatomic.h>
#include <stdint.h>

#include "base/base.h"

static inline void pool_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

/* Private futexes (base/futex.c): the words live in this process. */
static inline int pool_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                                  int64_t deadline_ns)
{
  return dbp_futex_wait(word, expected, deadline_ns, DBP_FUTEX_PRIVATE);
}

static inline void pool_futex_wake(_Atomic uint32_t *word, int n)
{
  dbp_futex_wake(word, n, DBP_FUTEX_PRIVATE);
}

typedef struct pool_lock {
  _Atomic uint32_t state; /* 0 free, 1 locked, 2 locked and contended */
} pool_lock;

static inline void pool_lock_slow(pool_lock *l)
{
  for (int i = 0; i < 100; i++) {
    uint32_t c = 0;
    if (atomic_load_explicit(&l->state, memory_order_relaxed) == 0 &&
        atomic_compare_exchange_weak_explicit(&l->state, &c, 1, memory_order_acquire,
                                              memory_order_relaxed))
      return;
    pool_cpu_relax();
  }
  while (atomic_exchange_explicit(&l->state, 2, memory_order_acquire) != 0)
    pool_futex_wait(&l->state, 2, -1);
}

static inline void pool_lock_acquire(pool_lock *l)
{
  uint32_t c = 0;
  if (!atomic_compare_exchange_strong_explicit(&l->state, &c, 1, memory_order_acquire,
                                               memory_order_relaxed))
    pool_lock_slow(l);
}

static inline void pool_lock_release(pool_lock *l)
{
  if (atomic_exchange_explicit(&l->state, 0, memory_order_release) == 2)
    pool_futex_wake(&l->state, 1);
}

#endif
