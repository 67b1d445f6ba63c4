/*
** identity.c -- who this process and thread are, and whether another
** process is still the one that attached.
**
** PIDs wrap within seconds here, so a pid alone proves nothing: kill(pid, 0)
** succeeds for a zombie and for an unrelated process that reused the pid.
** A process is identified by its pid plus its pidfd inode number (unique per
** process on kernels with pidfs, 6.9+), or, on older kernels, its /proc
** start time. poll() on a pidfd reports exit even while the process is a
** zombie.
**
** The pid and tid are cached (getpid() is a real system call on this glibc);
** a fork handler bumps the fork generation so that the child refreshes them
** and never uses its parent's holders.
*/
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "internal.h"

#ifndef PIDFS_MAGIC
#define PIDFS_MAGIC 0x50494446
#endif

static pthread_mutex_t g_registry = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
_Atomic unsigned dbp_g_fork_gen = 1;
__thread pid_t dbp_t_tid;
__thread unsigned dbp_t_tid_gen;
static _Atomic pid_t g_pid;

static void before_fork(void) { pthread_mutex_lock(&g_registry); }
static void after_fork_parent(void) { pthread_mutex_unlock(&g_registry); }
static void after_fork_child(void)
{
  pthread_mutex_unlock(&g_registry); /* the forking thread, now ours */
  atomic_store(&g_pid, 0);
  atomic_fetch_add(&dbp_g_fork_gen, 1);
}

static void install_fork_handlers(void)
{
  pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

/* Installed when the library is loaded, before anything caches a pid: a
** fork before the first registry call must still refresh the child's. */
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

pid_t dbp_pid(void)
{
  pthread_once(&g_once, install_fork_handlers);
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

static int pidfd_open_(pid_t pid)
{
  return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* The pidfd inode of pid, if pidfs gives per-process inodes; 0 otherwise.
** *fd_out receives the open pidfd (or -1) for further checks. */
static uint64_t pidfs_inode(pid_t pid, int *fd_out, int *err_out)
{
  struct stat st;
  struct statfs sf;
  int fd = pidfd_open_(pid);
  *fd_out = fd;
  *err_out = fd < 0 ? errno : 0;
  if (fd < 0) return 0;
  if (fstatfs(fd, &sf) != 0 || sf.f_type != PIDFS_MAGIC) return 0;
  if (fstat(fd, &st) != 0) return 0;
  return (uint64_t)st.st_ino;
}

/* Field 22 of /proc/PID/stat (start time in clock ticks) and the state
** letter; 0 if unreadable. */
static uint64_t proc_starttime(pid_t pid, char *state)
{
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return 0;
  buf[n] = 0;
  char *p = strrchr(buf, ')'); /* the name may contain spaces and ')' */
  if (!p || p[1] != ' ') return 0;
  p += 2;
  if (state) *state = *p;
  for (int field = 3; field < 22; field++) {
    p = strchr(p, ' ');
    if (!p) return 0;
    p++;
  }
  return strtoull(p, NULL, 10);
}

void dbp_self_identity(uint32_t *kind, uint64_t *ident)
{
  int fd, err;
  uint64_t ino = pidfs_inode(dbp_pid(), &fd, &err);
  if (fd >= 0) close(fd);
  if (ino) {
    *kind = IDENT_PIDFS;
    *ident = ino;
    return;
  }
  uint64_t st = proc_starttime(dbp_pid(), NULL);
  *kind = st ? IDENT_STARTTIME : IDENT_NONE;
  *ident = st;
}

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

/* True only when the process that registered as (pid, kind, ident) has
** certainly exited. Anything uncertain (no pidfd support, fd exhaustion)
** counts as alive: reclaiming a live process's slot would break the cap. */
bool dbp_process_dead(pid_t pid, uint32_t kind, uint64_t ident)
{
  if (pid <= 0) return false;
  if (kind == IDENT_PIDFS) {
    int fd, err;
    uint64_t ino = pidfs_inode(pid, &fd, &err);
    /* No process has that pid now (ENOENT: it is some thread's id, not a
    ** process's; EINVAL on kernels before 6.9 for the same). */
    if (fd < 0) return err == ESRCH || err == ENOENT || err == EINVAL;
    bool dead;
    if (ino && ino != ident) {
      dead = true; /* the pid was reused by another process */
    } else {
      struct pollfd p = {.fd = fd, .events = POLLIN};
      int rc;
      do rc = poll(&p, 1, 0); while (rc < 0 && errno == EINTR);
      dead = rc == 1; /* readable: exited, zombie or not */
    }
    close(fd);
    return dead;
  }
  if (kind == IDENT_STARTTIME) {
    char state = 0;
    uint64_t st = proc_starttime(pid, &state);
    if (st == 0) return kill(pid, 0) != 0 && errno == ESRCH;
    return st != ident || state == 'Z' || state == 'X';
  }
  return kill(pid, 0) != 0 && errno == ESRCH;
}

/* The inode of our pid namespace (0 if unknown): process records of another
** namespace are never judged dead or alive by pid. */
uint64_t dbp_self_pidns(void)
{
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? (uint64_t)st.st_ino : 0;
}
