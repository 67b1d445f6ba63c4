/*
** identity.c -- who this process and thread are.
**
** The pid and tid are cached (getpid() is a real system call on this
** glibc); a fork handler, installed when the library is loaded (before
** anything caches a pid), bumps the fork generation so that the child
** refreshes them and every layer can tell its parent's handles from its own.
*/
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/base.h"

_Atomic unsigned dbp_g_fork_gen = 1;
__thread pid_t dbp_t_tid;
__thread unsigned dbp_t_tid_gen;
static _Atomic pid_t g_pid;

static void after_fork_child(void)
{
  atomic_store(&g_pid, 0);
  atomic_fetch_add(&dbp_g_fork_gen, 1);
}

__attribute__((constructor)) static void install_at_load(void)
{
  pthread_atfork(NULL, NULL, after_fork_child);
}

pid_t dbp_pid(void)
{
  pid_t p = atomic_load_explicit(&g_pid, memory_order_relaxed);
  if (p == 0) {
    p = getpid();
    atomic_store_explicit(&g_pid, p, memory_order_relaxed);
  }
  return p;
}

pid_t dbp_tid_refresh(void)
{
  dbp_t_tid = (pid_t)syscall(SYS_gettid);
  dbp_t_tid_gen = dbp_fork_gen();
  return dbp_t_tid;
}
