/*
** preload.c -- libdbpool-preload.so: every SQLite connection of an
** unmodified, dynamically linked program is counted by dbpool, without
** `.load`, through LD_PRELOAD (which `dbpoolctl run` sets up).
**
**   $ dbpoolctl run -- python3 app.py
**   $ LD_PRELOAD=/usr/lib/x86_64-linux-gnu/dbpool/libdbpool-preload.so php app.php
**   $ dbpoolctl run -- sqlite3 app.db "SELECT joined FROM pool_connections WHERE current"
**   preload
**
** It makes the system's SQLite (libsqlite3.so.0) run the extension's entry
** point sqlite3_dbpool_preload_init as an automatic extension, so SQLite
** itself runs it for every connection the program opens; each one to a
** database file is counted (pool_connections: joined = 'preload'). Before
** that, it opens and closes an in-memory database so that the extension
** installs its VFS shim before the first real connection. Child processes
** inherit LD_PRELOAD, so they are counted too. When:
**
**   - A program linked with libsqlite3 (the sqlite3 shell, Go's mattn
**     driver on Debian, C programs): at its first sqlite3_open,
**     sqlite3_open16 or sqlite3_open_v2, which this library defines and
**     passes on. Not before: registering initialises SQLite, and the program
**     may first call sqlite3_config(), which only works before that (the
**     shell does).
**   - A program that loads SQLite later with a module (Python's _sqlite3,
**     PHP's sqlite3 and pdo_sqlite): when the process starts. Waiting for an
**     open does not work there: PHP loads its modules with RTLD_DEEPBIND, so
**     their calls go straight to libsqlite3 and never reach a preloaded
**     definition. So this library loads libsqlite3.so.0 itself, privately
**     (RTLD_LOCAL), and registers then; the modules, when they come, are
**     linked to that same copy, whose automatic extension every caller
**     shares however it is bound.
**
** The extension is $DBPOOL_EXTENSION if set, else dbpool.so beside this
** library (make install and the Debian package put a link there).
**
** LIMITATIONS
**   - Only the system's libsqlite3.so.0 is reached. A program with its own
**     SQLite compiled in (better-sqlite3's bundled copy, most single-binary
**     tools, Go programs built without Debian's system-library patch) is
**     not counted; neither are statically linked or setuid programs (the
**     loader ignores LD_PRELOAD for them).
**   - A process that does not link libsqlite3 loads it and the extension
**     when it starts (about a millisecond, a few pages), SQLite user or not,
**     and finds SQLite initialised: its own sqlite3_config() calls, if it
**     makes any after loading SQLite, fail with SQLITE_MISUSE.
**   - If the extension cannot be loaded, every open (in-memory ones
**     included) fails with "dbpool: preload: cannot load ...": the operator
**     asked for the cap, so the program must not run silently without it.
**   - A program that calls sqlite3_reset_auto_extension() or
**     sqlite3_shutdown() removes the automatic extension: connections it
**     opens afterwards are not counted.
**   - A program that also loads dbpool itself must load the same file (as
**     `.load dbpool` does when the package is installed); another copy of
**     the extension installs nothing (see ext/dbpool.c).
**   - This library never prints and never exits; its failures are SQLite
**     errors of the opens.
*/
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Types only (SQLITE_CORE: no redirection of sqlite3_* names through an API
** table); the SQLite used is the one found at run time. */
#define SQLITE_CORE 1
#include <sqlite3ext.h>

typedef int (*open_v2_fn)(const char *, sqlite3 **, int, const char *);
typedef int (*open_fn)(const char *, sqlite3 **);
typedef int (*open16_fn)(const void *, sqlite3 **);
typedef int (*auto_ext_fn)(void (*)(void));
typedef int (*close_fn)(sqlite3 *);
typedef int (*entry_fn)(sqlite3 *, char **, const sqlite3_api_routines *);

#define EXPORT __attribute__((visibility("default")))

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_ready;           /* set up (or given up); atomic acquire/release */
static void *g_sqlite;        /* libsqlite3.so.0, as loaded when we started */
static open_v2_fn real_open_v2;
static open_fn real_open;
static open16_fn real_open16;
static char g_error[PATH_MAX + 256]; /* why the extension is not in effect */

/* The automatic extension registered when the extension could not be
** loaded: every open fails, saying why. */
static int refuse(sqlite3 *db, char **pzErrMsg, const sqlite3_api_routines *pApi)
{
  (void)db;
  *pzErrMsg = pApi->mprintf("%s", g_error);
  return SQLITE_ERROR;
}

/* Where the extension is: $DBPOOL_EXTENSION, else beside this library. */
static int extension_path(char *out, size_t cap)
{
  const char *env = getenv("DBPOOL_EXTENSION");
  if (env && env[0]) return snprintf(out, cap, "%s", env) < (int)cap;
  Dl_info self;
  if (!dladdr((void *)extension_path, &self) || !self.dli_fname) return 0;
  const char *slash = strrchr(self.dli_fname, '/');
  int dir = slash ? (int)(slash - self.dli_fname) + 1 : 0;
  return snprintf(out, cap, "%.*sdbpool.so", dir, self.dli_fname) < (int)cap;
}

static entry_fn load_extension(void)
{
  char path[PATH_MAX];
  if (!extension_path(path, sizeof path)) {
    snprintf(g_error, sizeof g_error, "dbpool: preload: cannot find the dbpool "
             "extension (set DBPOOL_EXTENSION to the path of dbpool.so)");
    return NULL;
  }
  void *ext = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  entry_fn entry = ext ? (entry_fn)dlsym(ext, "sqlite3_dbpool_preload_init") : NULL;
  if (!entry)
    snprintf(g_error, sizeof g_error, "dbpool: preload: cannot load the dbpool "
             "extension %s: %s", path, ext ? "it has no sqlite3_dbpool_preload_init"
                                           : dlerror());
  return entry;
}

/* The definition the caller would have reached without us: the next one
** in its lookup order (the program's own SQLite, whatever its file name),
** else the copy of libsqlite3.so.0 loaded privately for a module. */
static void *real(const char *name)
{
  void *sym = dlsym(RTLD_NEXT, name);
  return sym || !g_sqlite ? sym : dlsym(g_sqlite, name);
}

/* Once (under g_lock): find SQLite, register the extension, prime. */
static void set_up(void)
{
  real_open_v2 = (open_v2_fn)real("sqlite3_open_v2");
  real_open = (open_fn)real("sqlite3_open");
  real_open16 = (open16_fn)real("sqlite3_open16");
  auto_ext_fn auto_ext = (auto_ext_fn)real("sqlite3_auto_extension");
  close_fn close = (close_fn)real("sqlite3_close");
  if (!real_open_v2 || !auto_ext || !close) return;
  entry_fn entry = load_extension();
  if (auto_ext(entry ? (void (*)(void))entry : (void (*)(void))refuse) != SQLITE_OK ||
      !entry)
    return;
  sqlite3 *prime = NULL;
  real_open_v2(":memory:", &prime, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  close(prime);
}

static __thread int t_setting_up; /* an open from within set_up: pass it on */

static void set_up_once(void)
{
  if (__atomic_load_n(&g_ready, __ATOMIC_ACQUIRE) || t_setting_up) return;
  pthread_mutex_lock(&g_lock);
  if (!g_ready) {
    t_setting_up = 1;
    set_up();
    t_setting_up = 0;
    __atomic_store_n(&g_ready, 1, __ATOMIC_RELEASE);
  }
  pthread_mutex_unlock(&g_lock);
}

__attribute__((constructor)) static void dbpool_preload(void)
{
  if ((g_sqlite = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_NOLOAD)))
    return; /* linked with it: set up at its first open (see above) */
  g_sqlite = dlopen("libsqlite3.so.0", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
  if (g_sqlite) set_up_once();
}

/* The opens of a program linked with SQLite (and of Python's module, which
** binds to the first definition): set up, then pass on. */
EXPORT int sqlite3_open_v2(const char *filename, sqlite3 **ppDb, int flags,
                           const char *zVfs)
{
  set_up_once();
  if (!real_open_v2) {
    *ppDb = NULL;
    return SQLITE_NOMEM; /* no SQLite found: the code SQLite gives without a handle */
  }
  return real_open_v2(filename, ppDb, flags, zVfs);
}

EXPORT int sqlite3_open(const char *filename, sqlite3 **ppDb)
{
  set_up_once();
  if (!real_open) {
    *ppDb = NULL;
    return SQLITE_NOMEM;
  }
  return real_open(filename, ppDb);
}

EXPORT int sqlite3_open16(const void *filename, sqlite3 **ppDb)
{
  set_up_once();
  if (!real_open16) {
    *ppDb = NULL;
    return SQLITE_NOMEM;
  }
  return real_open16(filename, ppDb);
}
