/*
** futex.c -- process-shared futex wait and wake on words in the segment.
** Waits take an absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET), so a
** signal that interrupts a wait never moves the deadline: EINTR is looped
** (dbp_futex_wait), or reported to a caller that asked for it
** (dbp_futex_wait_once). With a deadline the kernel returns EINTR for every
** signal caught by a handler, SA_RESTART or not.
*/
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

/* Returns 0 when woken (or the word no longer holds expected), -ETIMEDOUT
** at the deadline. deadline < 0 waits without one. */
int dbp_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   int64_t deadline_mono_ns)
{
  for (;;) {
    int rc = dbp_futex_wait_once(word, expected, deadline_mono_ns);
    if (rc != -EINTR) return rc;
    if (atomic_load_explicit(word, memory_order_acquire) != expected) return 0;
  }
}

/* One wait: the same returns, or -EINTR when a signal handler ran. */
int dbp_futex_wait_once(_Atomic uint32_t *word, uint32_t expected,
                        int64_t deadline_mono_ns)
{
  struct timespec ts, *tsp = NULL;
  if (deadline_mono_ns >= 0) {
    ts = dbp_ts(deadline_mono_ns);
    tsp = &ts;
  }
  long rc = syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_BITSET, expected,
                    tsp, NULL, FUTEX_BITSET_MATCH_ANY);
  if (rc == 0) return 0;
  if (errno == EINTR) return -EINTR;
  if (errno == ETIMEDOUT) return -ETIMEDOUT;
  return 0; /* EAGAIN: the word changed before we slept */
}

void dbp_futex_wake(_Atomic uint32_t *word, int n)
{
  syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE, n, NULL, NULL, 0);
}
