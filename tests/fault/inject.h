/*
** inject.h -- fault injection for dbpool's tests (libdbpool-fault.so).
**
** In a fault build (make FAULT=1; docs/testing.md), every allocation and
** system call that dbpool's own code makes (libdbpool, dbpool.so,
** dbpoolctl) goes through this library: the objects are rewritten at build
** time (objcopy --redefine-syms=tests/fault/wrap.syms) so that malloc
** becomes fault_malloc, open fault_open, and so on. Nothing else in the
** process is touched: the test program's own calls, SQLite's and libc's are
** the real ones. The extension's own requests for SQLite memory
** (sqlite3_malloc64, sqlite3_realloc64, sqlite3_mprintf) count as its
** allocations too (ext/ext.h). A test host can add all of SQLite's
** allocations, as class sqlite, through SQLITE_CONFIG_MALLOC
** (fault_point("sqlite3_malloc", FAULT_SQLITE)).
**
** Armed, the layer counts the calls of the chosen class and fails the Nth
** (once), or the Nth and every later one (persist), the way the real call
** fails: NULL/-1 with a realistic errno (ENOMEM for allocations, EMFILE for
** open, ENOSPC for fallocate and linkat, ...; see inject.c), or a spurious
** wake-up (EAGAIN) of a futex wait.
**
** From a test program: fault_arm("alloc", 3, 0) ... fault_disarm().
** From the environment (any program of a fault build, dbpoolctl say):
**   DBPOOL_FAULT=CLASS:N[:persist]   armed when the library loads
**   DBPOOL_FAULT_REPORT=FILE         "calls=C fired=F site=NAME" at exit
** CLASS is alloc (dbpool's allocations), sys (its system calls), sqlite
** (SQLite's allocations), all, or the name of one call (open, mmap, ...).
** N = 0 counts without failing anything (how many calls an operation makes).
*/
#ifndef DBPOOL_FAULT_INJECT_H
#define DBPOOL_FAULT_INJECT_H

enum { FAULT_ALLOC = 1, FAULT_SYS = 2, FAULT_SQLITE = 4 };

/* Arm: fail call number n (from 1) of class what; persist: and every
** later one. Counting starts over. Returns 0, or -1 for an unknown class. */
int fault_arm(const char *what, long n, int persist);
void fault_disarm(void);
/* Hold (1) or resume (0) counting without disarming: calls made meanwhile
** neither count nor fail (a test's own set-up in the middle of a run). */
void fault_hold(int on);
/* Calls of the armed class counted since fault_arm, and how many failed. */
long fault_calls(void);
long fault_fired(void);
/* The first call that failed ("malloc", "open", ...), or "". */
const char *fault_site(void);
/* The errno the first failure reported (0 if none), and whether errno e
** was reported by any failure since fault_arm. */
int fault_errno(void);
int fault_injected(int e);
/* Should this call (named name, of class cls) fail now? Counts it. */
int fault_point(const char *name, int cls);

#endif
