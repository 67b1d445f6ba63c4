/*
** sigwait.c -- the signal masks that let a user interrupt a wait for a slot
** (private.h) without failing on the signals processes use for other work.
**
** A wait sleeps in slices (at most DBP_POLL_MS). With an absolute deadline
** the kernel ends a futex sleep with EINTR for ANY signal caught by a
** handler, SA_RESTART or not, so the mask decides what may end it:
**
**   asleep   every signal is blocked except SIGINT and SIGQUIT (the
**            "ending" signals, the terminal's Ctrl-C and Ctrl-\; those the
**            application blocks stay blocked), so an EINTR can only come
**            from one of them;
**   between  the ending signals are blocked (a Ctrl-C then stays pending
**            instead of running its handler where nobody would notice) and
**            every other signal is as the application had it: held-back
**            signals are delivered here, once per slice.
**
** Before each sleep a pending ending signal counts as an interrupt. What is
** left are the instants when a sleep begins or ends by itself (the slice's
** end, a wake-up): an ending signal arriving exactly then runs its handler
** and the wait goes on, and a second Ctrl-C ends it. On an idle machine
** that is microseconds in 25 ms; on a loaded one, the time the waiter waits
** for a CPU. (No system call sleeps on a futex with an atomic signal mask,
** as ppoll does on file descriptors. Keeping the ending signals blocked
** while asleep too would close the gap but send a process-directed Ctrl-C
** to any other thread that does not block it, so that the waiter would
** never see it.) Blocking the fault signals (SIGSEGV, SIGBUS, ...) while
** asleep is safe: the kernel kills a thread that faults with them blocked,
** but between the two mask switches this thread runs only the system call
** wrappers, which touch no shared memory.
*/
#include <errno.h>
#include <pthread.h>

#include "internal.h"

/* Only the terminal's interrupt keys. A process that catches SIGTERM or
** SIGHUP does so to stop or reload gracefully, finishing the work in hand
** (gunicorn's workers on SIGTERM, daemons on SIGHUP): failing the open that
** such work is waiting for would turn a graceful stop into failed requests.
** Those signals are held like any other and delivered between sleeps; the
** wait still ends by its timeout. Uncaught, they kill the process anyway. */
static const int g_ending[] = {SIGINT, SIGQUIT};
#define COUNT(a) (sizeof a / sizeof *a)

void dbp_sigwait_begin(dbp_sigwait *s)
{
  pthread_sigmask(SIG_SETMASK, NULL, &s->app);
  sigemptyset(&s->ends);
  for (size_t i = 0; i < COUNT(g_ending); i++)
    if (!sigismember(&s->app, g_ending[i])) sigaddset(&s->ends, g_ending[i]);
  s->work = s->app;
  sigfillset(&s->sleep);
  for (size_t i = 0; i < COUNT(g_ending); i++) {
    sigaddset(&s->work, g_ending[i]);
    if (sigismember(&s->ends, g_ending[i])) sigdelset(&s->sleep, g_ending[i]);
  }
  pthread_sigmask(SIG_SETMASK, &s->work, NULL);
}

/* An ending signal is pending for this thread (or its process). */
static bool ending_pending(const dbp_sigwait *s)
{
  sigset_t pending;
  if (sigpending(&pending) != 0) return false;
  for (size_t i = 0; i < COUNT(g_ending); i++)
    if (sigismember(&s->ends, g_ending[i]) && sigismember(&pending, g_ending[i]))
      return true;
  return false;
}

/* Sleep one slice on word: dbp_futex_wait_once's returns, -EINTR for an
** ending signal (pending before the sleep, or caught during it). */
int dbp_sigwait_sleep(dbp_sigwait *s, _Atomic uint32_t *word,
                      uint32_t expected, int64_t deadline_mono_ns)
{
  if (ending_pending(s)) return -EINTR;
  pthread_sigmask(SIG_SETMASK, &s->sleep, NULL);
  int rc = dbp_futex_wait_once(word, expected, deadline_mono_ns, DBP_FUTEX_SHARED);
  pthread_sigmask(SIG_SETMASK, &s->work, NULL);
  return rc;
}

/* Back to the application's mask: a pending ending signal runs now. */
void dbp_sigwait_end(dbp_sigwait *s)
{
  pthread_sigmask(SIG_SETMASK, &s->app, NULL);
}
