/*
** dbpool.c -- entry point of the dbpool SQLite extension.
**
** After loading, the loading connection and every connection this process
** opens afterwards to a database file holds one slot of that database's
** host-wide pool until it closes: when all max_connections slots are held by
** any processes on the host, opening waits (FIFO) up to the acquire timeout,
** then fails with SQLITE_BUSY; Ctrl-C (a caught SIGINT or SIGQUIT) ends
** the wait with SQLITE_INTERRUPT. SQL shows and steers the pools.
**
**   $ sqlite3 app.db
**   sqlite> .load ./build/dbpool
**   sqlite> SELECT database, active, max_connections, waiting FROM pool_stats;
**   sqlite> SELECT pid, process, state, duration_ms FROM pool_connections;
**   sqlite> UPDATE pool_settings SET value = 20 WHERE name = 'max_connections';
**   sqlite> .open app.db
**   sqlite> PRAGMA dbpool_max_connections;
**
** What it adds: the VFS shim "dbpool" (made the default, so that connections
** opened afterwards answer PRAGMA dbpool_*; vfs_shim.c), an automatic
** extension that counts each new connection (connection.c), the eponymous
** tables pool_stats, pool_connections and pool_settings, and the functions
** dbpool_version(), dbpool_label(text) (functions.c), dbpool_setting() and
** dbpool_wait() (operator.c).
**
** A second entry point, sqlite3_dbpool_preload_init, is for
** libdbpool-preload.so (preload/preload.c, `dbpoolctl run`): registered by
** it as the automatic extension of a program that never loads dbpool, it
** counts every connection (pool_connections shows them as joined 'preload').
**
** LIMITATIONS
**   - The cap is cooperative: connections of processes that did not load
**     dbpool are not counted.
**   - In-memory databases (no file name, or the memdb VFS), temporary ones
**     and names that are not regular files (/dev/null) are not counted.
**   - The loading connection does not go through the VFS shim (it was opened
**     before), so PRAGMA dbpool_* works on it only after .open again.
**   - A process must be able to write the pool segment (that is, the
**     database file) to open connections once dbpool is loaded.
*/
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>

#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "ext.h"

static pthread_mutex_t g_install_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_installed;

#ifdef DBPOOL_COVERAGE
/* GCOVR_EXCL_START: coverage builds only, the measurement itself. This
** library carries its own copy of gcov, which writes its counters from an
** exit() handler: a test program's forked child that leaves with _exit()
** would write none of them. The test programs (tests/lib/cov_exit.c)
** export dbpool_test_cov_register: give them our dump to run first. */
extern void __gcov_dump(void);
__attribute__((constructor)) static void coverage_register(void)
{
  void (*reg)(void (*)(void));
  *(void **)&reg = dlsym(RTLD_DEFAULT, "dbpool_test_cov_register");
  if (reg) reg(__gcov_dump);
}
/* GCOVR_EXCL_STOP */
#endif

/* Runs for every connection opened after the first successful load. */
static int dbx_auto_init(sqlite3 *db, char **pzErrMsg,
                            const sqlite3_api_routines *pApi)
{
  (void)pApi;
  return dbx_conn_attach(db, pzErrMsg, DBPOOL_JOINED_AUTO);
}

/* Never unload: connections opened through our VFS and holding our
** functions outlive the connection that loaded us. SQLite itself dlcloses
** the library when an initialisation fails. */
static void pin_library(void)
{
  Dl_info info;
  if (dladdr((void *)pin_library, &info) && info.dli_fname)
    dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

/* Once per process: the VFS shim, and (auto_init) our automatic extension.
** When another copy of dbpool (another file) got there first, it counts the
** process's connections already: install nothing, or each would count twice. */
static int install_once(int (*auto_init)(sqlite3 *, char **,
                                         const sqlite3_api_routines *))
{
  int rc = SQLITE_OK;
  pthread_mutex_lock(&g_install_lock);
  if (!g_installed && !dbx_vfs_other_copy()) {
    rc = dbx_vfs_install();
    if (rc == SQLITE_OK && auto_init) {
      rc = sqlite3_auto_extension((void (*)(void))auto_init);
      if (rc != SQLITE_OK) dbx_vfs_uninstall();
    }
  }
  if (rc == SQLITE_OK) g_installed = 1;
  pthread_mutex_unlock(&g_install_lock);
  return rc;
}

static int install_failed(int rc, char **pzErrMsg)
{
  *pzErrMsg = sqlite3_mprintf("dbpool: cannot install the VFS shim and "
                              "automatic extension (%s)", sqlite3_errstr(rc));
  return rc;
}

__attribute__((visibility("default")))
int sqlite3_dbpool_init(sqlite3 *db, char **pzErrMsg,
                        const sqlite3_api_routines *pApi)
{
  int rc;
  SQLITE_EXTENSION_INIT2(pApi);
  pin_library();
  /* The loading connection first: if its pool is full, nothing is
  ** installed and the load fails with the pool's message. A connection
  ** attached already (loaded into before, or opened after a load and so
  ** attached by the automatic extension) is not counted again: loading
  ** twice is a no-op. */
  int attached_now = 0;
  if (!dbx_conn_attached(db)) {
    rc = dbx_conn_attach(db, pzErrMsg, DBPOOL_JOINED_LOAD);
    if (rc != SQLITE_OK) return rc;
    attached_now = 1;
  }
  rc = install_once(dbx_auto_init);
  if (rc != SQLITE_OK) {
    if (attached_now) dbx_conn_detach(db); /* a failed load changes nothing */
    return install_failed(rc, pzErrMsg);
  }
  return SQLITE_OK_LOAD_PERMANENTLY;
}

/* The automatic extension of libdbpool-preload.so, which registered it
** itself: runs for every connection of the process, the first one (an
** in-memory database the preload opens) included, which installs the VFS
** shim before any real connection. Returns an automatic extension's codes
** (never SQLITE_OK_LOAD_PERMANENTLY: the preload keeps us loaded). */
__attribute__((visibility("default")))
int sqlite3_dbpool_preload_init(sqlite3 *db, char **pzErrMsg,
                                const sqlite3_api_routines *pApi)
{
  SQLITE_EXTENSION_INIT2(pApi);
  int rc = install_once(NULL);
  if (rc != SQLITE_OK) return install_failed(rc, pzErrMsg);
  return dbx_conn_attach(db, pzErrMsg, DBPOOL_JOINED_PRELOAD);
}
