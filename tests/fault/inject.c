/*
** inject.c -- the fault layer of fault builds (inject.h): a stand-in for
** each allocation and system call dbpool makes, which either fails it the
** way the real call fails or calls the real one.
**
** One counter per process, shared by every thread and by every copy of
** dbpool in the process (libdbpool and dbpool.so link this one shared
** library), so that "the Nth call" means the same thing wherever it is made.
** DBPOOL_FAULT_TRACE=1 prints a stack trace at each failure (which code made
** the call: the driver names it when a check fails).
*/
#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "inject.h"

#define EXPORT __attribute__((visibility("default")))

static _Atomic int g_class;   /* FAULT_* bits, 0 disarmed */
static _Atomic int g_hold;
static char g_only[32];       /* one call's name, or "" */
static _Atomic long g_target; /* fail call number g_target (0: never) */
static _Atomic int g_persist;
static _Atomic long g_calls, g_fired;
static _Atomic int g_errno;
static _Atomic unsigned long long g_errnos; /* bit e: errno e was injected */
static char g_site[32];
static int g_trace;

EXPORT int fault_arm(const char *what, long n, int persist)
{
  int cls = 0;
  g_only[0] = 0;
  if (strcmp(what, "alloc") == 0) cls = FAULT_ALLOC;
  else if (strcmp(what, "sys") == 0) cls = FAULT_SYS;
  else if (strcmp(what, "sqlite") == 0) cls = FAULT_SQLITE;
  else if (strcmp(what, "all") == 0) cls = FAULT_ALLOC | FAULT_SYS | FAULT_SQLITE;
  else if (strlen(what) < sizeof g_only) {
    snprintf(g_only, sizeof g_only, "%s", what);
    cls = FAULT_ALLOC | FAULT_SYS | FAULT_SQLITE;
  } else {
    return -1;
  }
  atomic_store(&g_class, 0);
  atomic_store(&g_calls, 0);
  atomic_store(&g_fired, 0);
  atomic_store(&g_errno, 0);
  atomic_store(&g_errnos, 0);
  g_site[0] = 0;
  atomic_store(&g_target, n);
  atomic_store(&g_persist, persist);
  atomic_store(&g_class, cls);
  return 0;
}

EXPORT void fault_disarm(void) { atomic_store(&g_class, 0); }
EXPORT void fault_hold(int on) { atomic_store(&g_hold, on); }
EXPORT long fault_calls(void) { return atomic_load(&g_calls); }
EXPORT long fault_fired(void) { return atomic_load(&g_fired); }
EXPORT const char *fault_site(void) { return g_site; }
EXPORT int fault_errno(void) { return atomic_load(&g_errno); }
EXPORT int fault_injected(int e)
{
  return e > 0 && e < 64 && (atomic_load(&g_errnos) >> e & 1);
}

extern void __sanitizer_print_stack_trace(void) __attribute__((weak));

static void trace(const char *name)
{
  fprintf(stderr, "fault: %s fails (call %ld)\n", name, atomic_load(&g_calls));
  if (__sanitizer_print_stack_trace) {
    __sanitizer_print_stack_trace();
  } else {
    void *frames[32];
    backtrace_symbols_fd(frames, backtrace(frames, 32), 2);
  }
}

EXPORT int fault_point(const char *name, int cls)
{
  if (!(atomic_load_explicit(&g_class, memory_order_relaxed) & cls)) return 0;
  if (atomic_load_explicit(&g_hold, memory_order_relaxed)) return 0;
  if (g_only[0] && strcmp(g_only, name) != 0) return 0;
  long n = atomic_fetch_add(&g_calls, 1) + 1;
  long target = atomic_load(&g_target);
  if (target <= 0 || n < target || (n > target && !atomic_load(&g_persist))) return 0;
  if (atomic_fetch_add(&g_fired, 1) == 0) snprintf(g_site, sizeof g_site, "%s", name);
  if (g_trace) trace(name);
  return 1;
}

/* A failed call: errno e, returned as r. */
static int fail_with(int e)
{
  int zero = 0;
  atomic_compare_exchange_strong(&g_errno, &zero, e);
  if (e > 0 && e < 64) atomic_fetch_or(&g_errnos, 1ull << e);
  errno = e;
  return -1;
}

static const char *g_report;

static void report_at_exit(void)
{
  FILE *f = fopen(g_report, "w");
  if (!f) return;
  fprintf(f, "calls=%ld fired=%ld site=%s errno=%d errnos=%llu\n", fault_calls(),
          fault_fired(), g_site[0] ? g_site : "-", fault_errno(), atomic_load(&g_errnos));
  fclose(f);
}

/* DBPOOL_FAULT=CLASS:N[:persist], for programs that cannot call fault_arm. */
__attribute__((constructor)) static void arm_from_environment(void)
{
  const char *t = getenv("DBPOOL_FAULT_TRACE");
  g_trace = t && *t == '1';
  g_report = getenv("DBPOOL_FAULT_REPORT");
  if (g_report && *g_report) atexit(report_at_exit);
  const char *spec = getenv("DBPOOL_FAULT");
  if (!spec || !*spec) return;
  char what[32];
  long n = 0;
  char mode[16] = "";
  if (sscanf(spec, "%31[^:]:%ld:%15s", what, &n, mode) < 2 ||
      fault_arm(what, n, strcmp(mode, "persist") == 0) != 0) {
    fprintf(stderr, "fault: bad DBPOOL_FAULT='%s' (CLASS:N[:persist])\n", spec);
    _exit(2);
  }
}

/* ----------------------------------------------------------- allocations */

#define ALLOC(name) fault_point(name, FAULT_ALLOC)
#define SYS(name) fault_point(name, FAULT_SYS)

EXPORT void *fault_malloc(size_t n)
{
  if (ALLOC("malloc")) return fail_with(ENOMEM), NULL;
  return malloc(n);
}

EXPORT void *fault_calloc(size_t n, size_t size)
{
  if (ALLOC("calloc")) return fail_with(ENOMEM), NULL;
  return calloc(n, size);
}

EXPORT void *fault_realloc(void *p, size_t n)
{
  if (ALLOC("realloc")) return fail_with(ENOMEM), NULL;
  return realloc(p, n);
}

EXPORT char *fault_strdup(const char *s)
{
  if (ALLOC("strdup")) return fail_with(ENOMEM), NULL;
  return strdup(s);
}

/* realpath(p, NULL) allocates its answer; it also looks at the file system,
** but the failure that matters is the allocation's. */
EXPORT char *fault_realpath(const char *path, char *resolved)
{
  if (!resolved && ALLOC("realpath")) return fail_with(ENOMEM), NULL;
  return realpath(path, resolved);
}

/* (Not failed: readdir -- dbpool reads /dev/shm, whose length, every
** user's segments, would make the count of calls vary from run to run; a
** directory that cannot be read fully is an error, checked where it is
** read. unlink -- on tmpfs it fails only for want of permission, which the
** permission tests cover with real users. close -- nothing to do about it.) */
EXPORT DIR *fault_opendir(const char *name)
{
  if (ALLOC("opendir")) return fail_with(ENOMEM), NULL;
  return opendir(name);
}

/* ---------------------------------------------------------- system calls */

EXPORT int fault_open(const char *path, int flags, ...)
{
  mode_t mode = 0;
  if (flags & (O_CREAT | __O_TMPFILE)) {
    va_list ap;
    va_start(ap, flags);
    mode = va_arg(ap, mode_t);
    va_end(ap);
  }
  if ((flags & __O_TMPFILE) == __O_TMPFILE) {
    if (SYS("open_tmpfile")) return fail_with(ENOSPC); /* /dev/shm full */
  } else if (SYS("open")) {
    return fail_with(EMFILE);
  }
  return open(path, flags, mode);
}

EXPORT ssize_t fault_read(int fd, void *buf, size_t n)
{
  if (SYS("read")) return fail_with(EIO);
  return read(fd, buf, n);
}

EXPORT int fault_fstat(int fd, struct stat *st)
{
  if (SYS("fstat")) return fail_with(EIO);
  return fstat(fd, st);
}

EXPORT int fault_stat(const char *path, struct stat *st)
{
  if (SYS("stat")) return fail_with(EIO);
  return stat(path, st);
}

EXPORT int fault_lstat(const char *path, struct stat *st)
{
  if (SYS("lstat")) return fail_with(EIO);
  return lstat(path, st);
}

EXPORT int fault_statx(int dirfd, const char *path, int flags, unsigned mask,
                       struct statx *sx)
{
  if (SYS("statx")) return fail_with(EIO);
  return statx(dirfd, path, flags, mask, sx);
}

EXPORT int fault_statvfs(const char *path, struct statvfs *sv)
{
  if (SYS("statvfs")) return fail_with(EIO);
  return statvfs(path, sv);
}

EXPORT int fault_faccessat(int dirfd, const char *path, int mode, int flags)
{
  if (SYS("faccessat")) return fail_with(EIO);
  return faccessat(dirfd, path, mode, flags);
}

EXPORT int fault_access(const char *path, int mode)
{
  if (SYS("access")) return fail_with(EIO);
  return access(path, mode);
}

EXPORT int fault_ftruncate(int fd, off_t len)
{
  if (SYS("ftruncate")) return fail_with(EIO);
  return ftruncate(fd, len);
}

EXPORT int fault_fallocate(int fd, int mode, off_t off, off_t len)
{
  if (SYS("fallocate")) return fail_with(ENOSPC);
  return fallocate(fd, mode, off, len);
}

EXPORT int fault_fchmod(int fd, mode_t mode)
{
  if (SYS("fchmod")) return fail_with(EPERM);
  return fchmod(fd, mode);
}

EXPORT int fault_fchown(int fd, uid_t uid, gid_t gid)
{
  if (SYS("fchown")) return fail_with(EPERM);
  return fchown(fd, uid, gid);
}

EXPORT int fault_fsetxattr(int fd, const char *name, const void *v, size_t n, int flags)
{
  if (SYS("fsetxattr")) return fail_with(ENOSPC);
  return fsetxattr(fd, name, v, n, flags);
}

EXPORT ssize_t fault_fgetxattr(int fd, const char *name, void *v, size_t n)
{
  if (SYS("fgetxattr")) return fail_with(EIO);
  return fgetxattr(fd, name, v, n);
}

EXPORT ssize_t fault_getxattr(const char *path, const char *name, void *v, size_t n)
{
  if (SYS("getxattr")) return fail_with(EIO);
  return getxattr(path, name, v, n);
}

EXPORT int fault_fremovexattr(int fd, const char *name)
{
  if (SYS("fremovexattr")) return fail_with(EPERM);
  return fremovexattr(fd, name);
}

EXPORT void *fault_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
  if (SYS("mmap")) return fail_with(ENOMEM), MAP_FAILED;
  return mmap(addr, len, prot, flags, fd, off);
}

EXPORT int fault_linkat(int olddir, const char *old, int newdir, const char *new,
                        int flags)
{
  if (SYS("linkat")) return fail_with(ENOSPC);
  return linkat(olddir, old, newdir, new, flags);
}

EXPORT int fault_fcntl(int fd, int cmd, ...)
{
  va_list ap;
  va_start(ap, cmd);
  void *arg = va_arg(ap, void *);
  va_end(ap);
  if ((cmd == F_OFD_SETLK || cmd == F_OFD_GETLK) && SYS("fcntl")) return fail_with(ENOLCK);
  return fcntl(fd, cmd, arg);
}

EXPORT int fault_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                                void *(*fn)(void *), void *arg)
{
  if (SYS("pthread_create")) {
    fail_with(EAGAIN);
    return EAGAIN;
  }
  return pthread_create(t, attr, fn, arg);
}

/* Only a mutex with attributes (the pool's robust, process-shared lock):
** glibc never fails a default one, and dbpool relies on that. */
EXPORT int fault_pthread_mutex_init(pthread_mutex_t *m, const pthread_mutexattr_t *a)
{
  if (a && SYS("pthread_mutex_init")) {
    fail_with(ENOMEM);
    return ENOMEM;
  }
  return pthread_mutex_init(m, a);
}

/* The futex waits: a spurious wake-up (EAGAIN, as when the word changed
** before the sleep), which every waiter must survive by looking again. The
** kernel never fails a wake, nor the other calls made here (gettid). */
EXPORT long fault_syscall(long nr, ...)
{
  if (nr != SYS_futex) return syscall(nr); /* gettid: dbpool's only other one */
  va_list ap;
  long a[6];
  va_start(ap, nr);
  for (int i = 0; i < 6; i++) a[i] = va_arg(ap, long); /* a futex call has six */
  va_end(ap);
  int op = (int)a[1] & FUTEX_CMD_MASK;
  if ((op == FUTEX_WAIT || op == FUTEX_WAIT_BITSET) && SYS("futex_wait"))
    return fail_with(EAGAIN);
  return syscall(nr, a[0], a[1], a[2], a[3], a[4], a[5]);
}
