/*
** liveness.c -- a process is dead only when it is dead.
**
** A registered process holds an exclusive OFD lock (fcntl F_OFD_SETLK) on
** one byte of the segment file, DBP_LIVENESS_BYTE(p) for its process record
** p, taken through its attachment's descriptor. The kernel drops the lock
** when the last descriptor of that open file description is closed, which
** exit does, however the process dies. Anyone with any descriptor of the
** segment asks the kernel (F_OFD_GETLK) whether the byte is still locked.
**
** Why a lock and not the pid: pids mean nothing across pid namespaces (a
** holder in a container sharing /dev/shm was judged dead from the host),
** are reused within milliseconds here, and a zombie's pid still answers
** kill(pid, 0). The lock is kept by the kernel for the open file, in any
** namespace, and is gone the moment the process has exited.
**
** The lock is taken through a descriptor of its own (lock_fd), opened for
** it and never mapped: a child inherits its parent's mappings, and a
** mapping keeps its open file -- and any lock on it -- alive.
**
** fork(): the child's copy of lock_fd shares the open file description, so
** it would keep the parent's lock alive after the parent died. The atfork
** child handler closes the inherited descriptors (identity.c, registry.c); a
** child that execs closes them too (O_CLOEXEC).
** A process that forks without fork handlers (a raw clone) keeps its
** parent's slots counted until that child exits or execs: safe for the cap.
**
** A process sees its own lock through its other descriptors (lock_fd is
** separate), but our own record is known to be alive anyway.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static struct flock byte_of(unsigned p, short type)
{
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = DBP_LIVENESS_BYTE(p);
  fl.l_len = 1;
  return fl;
}

/* Take record p's lock (registration, under the pool lock). -EAGAIN if
** someone holds it: a process that inherited a dead registrant's
** descriptor without fork handlers; use another record. */
int dbp_liveness_take(dbpool_coord *c, unsigned p)
{
  if (c->lock_fd < 0) {
    char path[PATH_MAX];
    struct stat st;
    dbp_shm_path(c->name, path, sizeof path);
    int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
      return dbp_err(-errno, "dbpool: cannot open pool segment %s: %s", c->name,
                     strerror(errno));
    if (fstat(fd, &st) != 0) {
      int e = errno;
      close(fd);
      return dbp_err(-e, "dbpool: cannot stat pool segment %s: %s", c->name, strerror(e));
    }
    if ((uint64_t)st.st_ino != c->seg_ino || (uint64_t)st.st_dev != c->seg_dev) {
      close(fd);
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it",
                     c->name, c->path);
    }
    c->lock_fd = fd;
  }
  struct flock fl = byte_of(p, F_WRLCK);
  if (fcntl(c->lock_fd, F_OFD_SETLK, &fl) == 0) return 0;
  if (errno == EAGAIN || errno == EACCES) return -EAGAIN;
  return dbp_err(-errno, "dbpool: cannot lock process record %u of pool %s: %s",
                 p, c->name, strerror(errno));
}

/* Leave record p (under the pool lock): unlock, and close lock_fd. */
void dbp_liveness_drop(dbpool_coord *c, unsigned p)
{
  struct flock fl = byte_of(p, F_UNLCK);
  if (c->lock_fd < 0) return;
  fcntl(c->lock_fd, F_OFD_SETLK, &fl);
  close(c->lock_fd);
  c->lock_fd = -1;
}

/* Is the process registered in record p alive? Anything uncertain (the
** kernel refusing to answer) counts as alive: reclaiming a live process's
** slot would break the cap. */
bool dbp_process_alive(dbpool_coord *c, unsigned p)
{
  if (c->fd < 0) return true;
  if (dbp_is_own_record(c, p)) return true; /* ourselves */
  struct flock fl = byte_of(p, F_WRLCK);
  if (fcntl(c->fd, F_OFD_GETLK, &fl) != 0) return true;
  return fl.l_type != F_UNLCK;
}

/* For display: is the live process of record p stopped (SIGSTOP, a
** debugger)? Only a process of our pid namespace can be looked up. */
dbpool_process_state dbp_process_state(dbpool_coord *c, unsigned p)
{
  dbp_process *pr = &c->procs[p];
  uint64_t ns = atomic_load_explicit(&pr->pidns, memory_order_relaxed);
  pid_t pid = atomic_load_explicit(&pr->pid, memory_order_relaxed);
  if (ns == 0 || ns != dbp_self_pidns() || pid <= 0)
    return DBPOOL_PROCESS_ELSEWHERE;
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return DBPOOL_PROCESS_RUNNING;
  ssize_t n;
  do n = read(fd, buf, sizeof buf - 1); while (n < 0 && errno == EINTR);
  close(fd);
  if (n <= 0) return DBPOOL_PROCESS_RUNNING;
  buf[n] = 0;
  const char *s = strrchr(buf, ')'); /* the name may hold spaces and ')' */
  if (s && s[1] == ' ' && (s[2] == 'T' || s[2] == 't')) return DBPOOL_PROCESS_STOPPED;
  return DBPOOL_PROCESS_RUNNING;
}
