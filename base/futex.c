/*
** futex.c -- futex wait and wake, for words in a pool segment (shared with
** other processes) and words in this process (private). Waits take an
** absolute CLOCK_MONOTONIC deadline (FUTEX_WAIT_BITSET), so a signal that
** interrupts a wait never moves the deadline. Each error the kernel can
** give is told apart (base.h): only EAGAIN means "the word had changed".
*/
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"

static int op(int base_op, dbp_futex_scope scope)
{
  return scope == DBP_FUTEX_PRIVATE ? base_op | FUTEX_PRIVATE_FLAG : base_op;
}

int dbp_futex_wait_once(_Atomic uint32_t *word, uint32_t expected,
                        int64_t deadline_mono_ns, dbp_futex_scope scope)
{
  struct timespec ts, *tsp = NULL;
  if (deadline_mono_ns >= 0) {
    ts = dbp_ts(deadline_mono_ns);
    tsp = &ts;
  }
  int saved = errno;
  long rc = syscall(SYS_futex, (uint32_t *)word, op(FUTEX_WAIT_BITSET, scope),
                    expected, tsp, NULL, FUTEX_BITSET_MATCH_ANY);
  int e = errno;
  errno = saved;
  if (rc == 0) return 0;
  switch (e) {
  case EAGAIN: return 0; /* the word no longer held expected: look again */
  case ETIMEDOUT: return -ETIMEDOUT;
  case EINTR: return -EINTR;
  default: return -e; /* EFAULT, EINVAL, ENOSYS: never taken for a wake-up */
  }
}

int dbp_futex_wait(_Atomic uint32_t *word, uint32_t expected,
                   int64_t deadline_mono_ns, dbp_futex_scope scope)
{
  for (;;) {
    int rc = dbp_futex_wait_once(word, expected, deadline_mono_ns, scope);
    if (rc != -EINTR) return rc;
    if (atomic_load_explicit(word, memory_order_acquire) != expected) return 0;
  }
}

void dbp_futex_wake(_Atomic uint32_t *word, int n, dbp_futex_scope scope)
{
  int saved = errno;
  syscall(SYS_futex, (uint32_t *)word, op(FUTEX_WAKE, scope), n, NULL, NULL, 0);
  errno = saved;
}
