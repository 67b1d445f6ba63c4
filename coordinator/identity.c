/*
** identity.c -- what the coordinator knows of this process beyond its pid,
** tid and fork generation (base/identity.c): its name and pid namespace,
** and the registry lock, which a fork handler holds across fork() so that
** the child finds the list of attachments stable, and drops the descriptors
** that would keep its parent looking alive (liveness.c).
*/
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static pthread_mutex_t g_registry = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void before_fork(void) { pthread_mutex_lock(&g_registry); }
static void after_fork_parent(void) { pthread_mutex_unlock(&g_registry); }
static void after_fork_child(void)
{
  dbp_registry_forget_fds_in_child(); /* the lock is still ours: list stable */
  pthread_mutex_unlock(&g_registry); /* the forking thread, now ours */
}

static void install_fork_handlers(void)
{
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Installed when the library is loaded: a fork before the first registry
** call must still find the handlers in place. */
__attribute__((constructor)) static void install_at_load(void)
{
  pthread_once(&g_once, install_fork_handlers);
}

void dbp_registry_lock(void)
{
  pthread_once(&g_once, install_fork_handlers);
  pthread_mutex_lock(&g_registry);
}

void dbp_registry_unlock(void) { pthread_mutex_unlock(&g_registry); }

void dbp_self_comm(char out[DBPOOL_PROCESS_NAME_MAX])
{
  memset(out, 0, DBPOOL_PROCESS_NAME_MAX);
  int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ssize_t n;
    do n = read(fd, out, DBPOOL_PROCESS_NAME_MAX - 1); while (n < 0 && errno == EINTR);
    close(fd);
    if (n > 0 && out[n - 1] == '\n') out[n - 1] = 0;
  }
  if (!out[0]) {
    extern char *program_invocation_short_name;
    strncpy(out, program_invocation_short_name, DBPOOL_PROCESS_NAME_MAX - 1);
  }
}

/* The inode of our pid namespace (0 if unknown): process records of another
** namespace are never judged dead or alive by pid. */
uint64_t dbp_self_pidns(void)
{
  static _Atomic uint64_t cached;
  static _Atomic unsigned cached_gen;
  unsigned gen = dbp_fork_gen(); /* unshare(CLONE_NEWPID) moves children */
  uint64_t v = atomic_load(&cached);
  if (v && atomic_load(&cached_gen) == gen) return v;
  struct stat st;
  v = stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
  atomic_store(&cached, v);
  atomic_store(&cached_gen, gen);
  return v;
}
