/*
** vfs_beneath.c -- the extension's VFS ("dbpool", ext/vfs_shim.c) over
** whatever VFS is the default when it is loaded. Each test runs in a forked
** child (the shim is installed once per process, over the default of the
** moment):
**   - over the unix VFS, every VFS method answers as the unix VFS does
**     (time, last error, dynamic loading, system calls), SQLite's own uses
**     of them (load_extension's errors) included, and a database that asks
**     for its sector size (psow=0) is written and read back;
**   - over a VFS of version 1, the shim offers nothing newer: no system
**     calls, no 64-bit clock, no dynamic loading if the VFS has none, and
**     databases work through it;
**   - when the VFS beneath fails the WAL write lock with an I/O error, the
**     writer's turn is given back and the next write commits;
**   - when it answers BUSY (a writer outside the queue holds the lock), the
**     queued writer keeps its turn, sleeps like SQLite and commits.
*/
#include <limits.h>
#include <math.h>

#include "poolutil.h"

static char ext_path[PATH_MAX];

/* Load the extension from a connection of the unix VFS (so that loading
** works whatever the default is); it stays open: the extension stays. */
static void load_ext(void)
{
  sqlite3 *boot;
  char *err = NULL;
  sqlite3_open_v2(":memory:", &boot, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix");
  sqlite3_enable_load_extension(boot, 1);
  if (sqlite3_load_extension(boot, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "load %s: %s\n", ext_path, err ? err : "?");
    _exit(90);
  }
}

static sqlite3 *open_db(const char *path, int flags)
{
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | flags, NULL) !=
      SQLITE_OK) {
    fprintf(stderr, "open %s: %s\n", path, db ? sqlite3_errmsg(db) : "?");
    _exit(91);
  }
  return db;
}

static int run_child(void (*body)(const char *), const char *path)
{
  pid_t pid = fork();
  if (pid == 0) {
    body(path);
    CHILD_EXIT();
  }
  return tu_wait_child(pid, 60000);
}

/* ------------------------------------------------------- over unix */

static void methods_body(const char *path)
{
  load_ext();
  sqlite3_vfs *shim = sqlite3_vfs_find(NULL), *root = sqlite3_vfs_find("unix");
  CCHECK(shim && root && shim != root && strcmp(shim->zName, "dbpool") == 0);
  CCHECK(shim->iVersion == root->iVersion);

  double a = 0, b = 0;
  CCHECK(shim->xCurrentTime(shim, &a) == SQLITE_OK);
  CCHECK(root->xCurrentTime(root, &b) == SQLITE_OK);
  CCHECK(fabs(a - b) < 60.0 / 86400); /* the same clock, read a moment apart */
  sqlite3_int64 ai = 0, bi = 0;
  CCHECK(shim->xCurrentTimeInt64(shim, &ai) == SQLITE_OK);
  CCHECK(root->xCurrentTimeInt64(root, &bi) == SQLITE_OK);
  CCHECK(ai > 0 && llabs(ai - bi) < 60000);
  errno = ENOENT;
  CCHECK(shim->xGetLastError(shim, 0, NULL) == root->xGetLastError(root, 0, NULL));

  /* dynamic loading */
  char msg[512] = "";
  CCHECK(shim->xDlOpen(shim, "/nonexistent/libnothing.so") == NULL);
  shim->xDlError(shim, sizeof msg, msg);
  CCHECK(strstr(msg, "/nonexistent/libnothing.so") != NULL);
  void *h = shim->xDlOpen(shim, "libsqlite3.so.0");
  CCHECK(h != NULL);
  if (h) {
    void (*sym)(void) = shim->xDlSym(shim, h, "sqlite3_libversion_number");
    CCHECK(sym != NULL && ((int (*)(void))sym)() == sqlite3_libversion_number());
    shim->xDlClose(shim, h);
  }

  /* system calls: the unix VFS's, through the shim */
  CCHECK(shim->xGetSystemCall(shim, "open") == root->xGetSystemCall(root, "open"));
  const char *first = shim->xNextSystemCall(shim, NULL);
  CCHECK(first && strcmp(first, root->xNextSystemCall(root, NULL)) == 0);
  CCHECK(shim->xSetSystemCall(shim, "no_such_call", NULL) == SQLITE_NOTFOUND);
  sqlite3_syscall_ptr close_call = root->xGetSystemCall(root, "close");
  CCHECK(shim->xSetSystemCall(shim, "close", close_call) == SQLITE_OK);
  CCHECK(root->xGetSystemCall(root, "close") == close_call);

  /* SQLite's own uses: load_extension's errors come from the shim's
  ** xDlError; a missing entry point closes the library again. */
  sqlite3 *db = open_db(path, 0);
  sqlite3_enable_load_extension(db, 1);
  char *err = NULL;
  CCHECK(sqlite3_load_extension(db, "/nonexistent/libnothing", NULL, &err) == SQLITE_ERROR);
  CCHECK(err && strstr(err, "/nonexistent/libnothing"));
  sqlite3_free(err);
  err = NULL;
  CCHECK(sqlite3_load_extension(db, "libsqlite3.so.0", "no_such_entry_point", &err) ==
         SQLITE_ERROR);
  CCHECK(err && strstr(err, "no_such_entry_point"));
  sqlite3_free(err);
  CCHECK(pu_exec(db, "CREATE TABLE IF NOT EXISTS t(x); INSERT INTO t VALUES (1)") == SQLITE_OK);
  sqlite3_close(db);

  /* psow=0: SQLite asks the file for its sector size */
  char uri[PATH_MAX + 32];
  snprintf(uri, sizeof uri, "file:%s?psow=0", path);
  db = open_db(uri, SQLITE_OPEN_URI);
  CCHECK(pu_exec(db, "INSERT INTO t VALUES (2)") == SQLITE_OK);
  CCHECK(pu_int(db, "SELECT sum(x) FROM t") == 3);
  CCHECK(pu_int(db, "PRAGMA dbpool_max_connections") == 10);
  sqlite3_close(db);
}

TEST(over_unix_every_vfs_method_answers_as_unix_does)
{
  const char *path = tu_db("methods.db");
  CHECK_CMP(run_child(methods_body, path), ==, 0);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

/* ------------------------------------------------ over a version-1 VFS */

static sqlite3_vfs v1_vfs;

static void version1_body(const char *path)
{
  sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
  v1_vfs = *unix_vfs;
  v1_vfs.iVersion = 1;
  v1_vfs.zName = "v1";
  v1_vfs.pNext = NULL;
  v1_vfs.xDlOpen = NULL;
  v1_vfs.xDlError = NULL;
  v1_vfs.xDlSym = NULL;
  v1_vfs.xDlClose = NULL;
  CCHECK(sqlite3_vfs_register(&v1_vfs, 1) == SQLITE_OK);
  load_ext();
  sqlite3_vfs *shim = sqlite3_vfs_find(NULL);
  CCHECK(shim != &v1_vfs && strcmp(shim->zName, "dbpool") == 0);
  CCHECK(shim->iVersion == 1);
  CCHECK(shim->xDlOpen == NULL && shim->xDlError == NULL && shim->xDlSym == NULL &&
         shim->xDlClose == NULL);
  CCHECK(shim->xCurrentTimeInt64 == NULL && shim->xSetSystemCall == NULL &&
         shim->xGetSystemCall == NULL && shim->xNextSystemCall == NULL);

  sqlite3 *db = open_db(path, 0);
  CCHECK(pu_int(db, "PRAGMA dbpool_max_connections") == 10); /* through the shim */
  CCHECK(pu_exec(db, "PRAGMA journal_mode = wal; CREATE TABLE t(x); "
                     "INSERT INTO t VALUES (1), (2)") == SQLITE_OK);
  CCHECK(pu_int(db, "SELECT sum(x) FROM t") == 3);
  /* a version-1 VFS's clock is xCurrentTime */
  CCHECK(pu_int(db, "SELECT julianday('now') > 2460000") == 1);
  sqlite3 *other = open_db(path, 0);
  CCHECK(pu_int(other, "SELECT count(*) FROM t") == 2);
  sqlite3_close(other);
  sqlite3_close(db);
}

TEST(over_a_version_1_vfs_nothing_newer_is_offered)
{
  const char *path = tu_db("version1.db");
  CHECK_CMP(run_child(version1_body, path), ==, 0);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

/* ------------------------------ a VFS whose WAL write lock fails or waits */

static sqlite3_vfs flaky_vfs;
static sqlite3_io_methods flaky_methods;
static const sqlite3_io_methods *flaky_real;
static int fail_write_lock; /* answer the next write locks with this code */
static int fail_count;      /* this many times */

static int flaky_shm_lock(sqlite3_file *f, int ofst, int n, int flags)
{
  if (ofst == 0 && n == 1 && flags == (SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE) &&
      fail_count > 0) {
    fail_count--;
    return fail_write_lock;
  }
  return flaky_real->xShmLock(f, ofst, n, flags);
}

static int flaky_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f, int flags, int *out)
{
  sqlite3_vfs *unix_vfs = vfs->pAppData;
  int rc = unix_vfs->xOpen(unix_vfs, name, f, flags, out);
  if (rc == SQLITE_OK && f->pMethods && (flags & SQLITE_OPEN_MAIN_DB)) {
    if (!flaky_real) {
      flaky_real = f->pMethods;
      flaky_methods = *f->pMethods;
      flaky_methods.xShmLock = flaky_shm_lock;
    }
    if (f->pMethods == flaky_real) f->pMethods = &flaky_methods;
  }
  return rc;
}

static void install_flaky(void)
{
  sqlite3_vfs *unix_vfs = sqlite3_vfs_find("unix");
  flaky_vfs = *unix_vfs;
  flaky_vfs.zName = "flaky";
  flaky_vfs.pNext = NULL;
  flaky_vfs.pAppData = unix_vfs;
  flaky_vfs.xOpen = flaky_open;
  CCHECK(sqlite3_vfs_register(&flaky_vfs, 1) == SQLITE_OK);
}

static dbpool_writer_stats writer_stats(const char *path)
{
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  dbpool_coord *c;
  if (dbpool_coord_open(path, DBPOOL_OPEN_READONLY, &c) == 0) {
    dbpool_coord_writer_stats(c, &ws);
    dbpool_coord_close(c);
  }
  return ws;
}

static void ioerr_body(const char *path)
{
  install_flaky();
  load_ext();
  sqlite3 *db = open_db(path, 0);
  CCHECK(pu_exec(db, "PRAGMA journal_mode = wal; CREATE TABLE t(x)") == SQLITE_OK);
  fail_write_lock = SQLITE_IOERR_LOCK;
  fail_count = 1;
  int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", 0, 0, 0);
  CCHECK((rc & 0xff) == SQLITE_IOERR);
  CCHECK(fail_count == 0);
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", 0, 0, 0);
  /* nobody holds the turn: a writer of another process commits at once */
  dbpool_writer_stats ws = writer_stats(path);
  CCHECK(ws.writing == 0);
  pid_t p = fork();
  if (p == 0) {
    sqlite3 *o = open_db(path, 0);
    sqlite3_busy_timeout(o, 10000);
    int orc = sqlite3_exec(o, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT", 0, 0, 0);
    sqlite3_close(o);
    _exit(orc == SQLITE_OK ? 0 : 3);
  }
  CCHECK(tu_wait_child(p, 30000) == 0);
  CCHECK(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT", 0, 0, 0) ==
         SQLITE_OK);
  CCHECK(pu_int(db, "SELECT sum(x) FROM t") == 3);
  sqlite3_close(db);
}

TEST(an_io_error_at_the_write_lock_gives_the_turn_back)
{
  const char *path = tu_db("ioerr.db");
  CHECK_CMP(run_child(ioerr_body, path), ==, 0);
  CHECK_CMP(writer_stats(path).writing, ==, 0);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

static int busy_calls;
static int count_busy(void *arg, int n)
{
  (void)arg;
  busy_calls++;
  sqlite3_sleep(1);
  return n < 1000;
}

static void ungated_body(const char *path)
{
  install_flaky();
  load_ext();
  sqlite3 *db = open_db(path, 0);
  CCHECK(pu_exec(db, "PRAGMA journal_mode = wal; CREATE TABLE t(x)") == SQLITE_OK);
  /* the lock is held outside the queue for three tries */
  fail_write_lock = SQLITE_BUSY;
  fail_count = 3;
  sqlite3_busy_timeout(db, 10000);
  CCHECK(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT", 0, 0, 0) ==
         SQLITE_OK);
  CCHECK(fail_count == 0);
  CCHECK(pu_int(db, "SELECT count(*) FROM t") == 1);
  /* with a handler of its own that counts: one call per refusal */
  fail_count = 2;
  sqlite3_busy_handler(db, count_busy, NULL);
  CCHECK(sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (2); COMMIT", 0, 0, 0) ==
         SQLITE_OK);
  CCHECK(busy_calls == 2);
  CCHECK(writer_stats(path).total_writes >= 2);
  sqlite3_close(db);
}

TEST(a_write_lock_held_outside_the_queue_keeps_the_turn_until_it_is_free)
{
  const char *path = tu_db("ungated.db");
  CHECK_CMP(run_child(ungated_body, path), ==, 0);
  CHECK_CMP(writer_stats(path).writing, ==, 0);
}

int main(void)
{
  tu_init("vfs-beneath");
  if (pu_ext_path(ext_path, sizeof ext_path) != 0) return 2;
  RUN(over_unix_every_vfs_method_answers_as_unix_does);
  RUN(over_a_version_1_vfs_nothing_newer_is_offered);
  RUN(an_io_error_at_the_write_lock_gives_the_turn_back);
  RUN(a_write_lock_held_outside_the_queue_keeps_the_turn_until_it_is_free);
  return tu_finish();
}
