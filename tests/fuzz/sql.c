/*
** sql.c -- libFuzzer target: dbpool's SQL surface (make fuzz;
** docs/testing.md).
**
**   build-fuzz/fuzz-sql tests/fuzz/corpus/sql     by hand
**
** Set-up loads the instrumented extension (build-fuzz/dbpool.so) into an
** in-memory connection, so that every connection opened afterwards goes
** through its VFS shim and holds a slot of its database's pool; two
** databases, and an "admin" connection to each (one slot each, for the
** whole run). An input is a program over four connection handles, one
** operation per step (a byte chooses it; the bytes after it are its
** arguments, text up to a NUL):
**
**   open with URI parameters (dbpool_timeout=..., any other text), close;
**   PRAGMA dbpool_<setting> = <text>, PRAGMA dbpool_<setting>, PRAGMA
**   dbpool_stats, PRAGMA dbpool_<text>; SELECT dbpool_label(<value of any
**   type>); UPDATE pool_settings SET value = <value> WHERE name = <text>, in
**   a transaction or not; SELECT from pool_stats, pool_connections and
**   pool_settings, with WHERE database = <text> or not; a write, a switch of
**   journal mode (WAL, rollback journal), a checkpoint; dbpool_version().
**
** Errors are fine; a crash or a sanitizer report is not, and after the
** input every connection it opened is closed and then its slot must be
** free: each pool has exactly one slot held (the admin connection's).
** No operation can wait: before each open the admin connection resumes the
** pool and raises its limit above what four connections need, and writes
** are single autocommit statements.
*/
#include <glob.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#define NCONN 4

static char g_db[2][256];
static sqlite3 *g_boot;     /* in-memory: loaded the extension, holds no slot */
static sqlite3 *g_admin[2]; /* one slot each */
static sqlite3 *g_conn[NCONN];

static void fatal(sqlite3 *db, const char *what)
{
  fprintf(stderr, "fuzz-sql: %s: %s\n", what, db ? sqlite3_errmsg(db) : "");
  _exit(2);
}

static void exec_or_die(sqlite3 *db, const char *sql)
{
  char *err = NULL;
  if (sqlite3_exec(db, sql, 0, 0, &err) != SQLITE_OK) {
    fprintf(stderr, "fuzz-sql: %s: %s\n", sql, err ? err : "");
    _exit(2);
  }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  char ns[64], dir[128], self[PATH_MAX], ext[PATH_MAX + 16];
  snprintf(ns, sizeof ns, "fq%d", (int)getpid());
  setenv("DBPOOL_NAMESPACE", ns, 1);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  unsetenv("DBPOOL_ACQUIRE_TIMEOUT_MS");
  /* In memory (tmpfs): a write's fsync costs nothing, so inputs run fast. */
  snprintf(dir, sizeof dir, "/dev/shm/dbpool-fuzz-%d", (int)getpid());
  mkdir(dir, 0700);
  for (int i = 0; i < 2; i++) {
    sqlite3 *db;
    snprintf(g_db[i], sizeof g_db[i], "%s/%c.db", dir, 'a' + i);
    if (sqlite3_open(g_db[i], &db) != SQLITE_OK) fatal(db, "creating a database");
    exec_or_die(db, "CREATE TABLE IF NOT EXISTS t(x)");
    sqlite3_close(db);
  }
  ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
  if (k <= 0) fatal(NULL, "readlink /proc/self/exe");
  self[k] = 0;
  *strrchr(self, '/') = 0;
  snprintf(ext, sizeof ext, "%s/dbpool", self);
  char *err = NULL;
  if (sqlite3_open(":memory:", &g_boot) != SQLITE_OK) fatal(g_boot, "opening :memory:");
  sqlite3_enable_load_extension(g_boot, 1);
  if (sqlite3_load_extension(g_boot, ext, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "fuzz-sql: loading %s: %s\n", ext, err ? err : "");
    _exit(2);
  }
  for (int i = 0; i < 2; i++)
    if (sqlite3_open(g_db[i], &g_admin[i]) != SQLITE_OK) fatal(g_admin[i], "admin open");
  return 0;
}

__attribute__((destructor)) static void cleanup(void)
{
  for (int i = 0; i < NCONN; i++) sqlite3_close(g_conn[i]);
  for (int i = 0; i < 2; i++) sqlite3_close(g_admin[i]);
  sqlite3_close(g_boot);
  char dir[256];
  for (int i = 0; i < 2 && g_db[i][0]; i++) {
    char p[300];
    unlink(g_db[i]);
    snprintf(p, sizeof p, "%s-wal", g_db[i]);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", g_db[i]);
    unlink(p);
    snprintf(dir, sizeof dir, "%s", g_db[i]);
  }
  if (g_db[0][0]) {
    *strrchr(dir, '/') = 0;
    rmdir(dir);
  }
  /* The pools of this run's namespace (fq<pid>, nobody else's): pools
  ** outlive their connections by design, so they go here. */
  glob_t g;
  char pattern[128];
  snprintf(pattern, sizeof pattern, "/dev/shm/dbpool.fq%d.*", (int)getpid());
  if (glob(pattern, 0, NULL, &g) == 0) {
    for (size_t i = 0; i < g.gl_pathc; i++) unlink(g.gl_pathv[i]);
    globfree(&g);
  }
}

/* ------------------------------------------------------ reading input */

typedef struct in {
  const uint8_t *d;
  size_t n;
} in;

static unsigned byte(in *p)
{
  if (!p->n) return 0;
  p->n--;
  return *p->d++;
}

/* Text up to a NUL or the end (at most cap - 1 bytes). */
static const char *text(in *p, char *buf, size_t cap)
{
  size_t k = 0;
  while (p->n && *p->d && k + 1 < cap) buf[k++] = (char)byte(p);
  if (p->n && !*p->d) byte(p);
  buf[k] = 0;
  return buf;
}

static const char *const g_settings[] = {"acquire_timeout_ms", "max_connections", "paused",
                                         "writer_queue", "writer_starvation_ms"};
#define NSETTINGS (sizeof g_settings / sizeof *g_settings)

/* A value of any type for ?idx, from the input. */
static void bind_value(sqlite3_stmt *st, int idx, in *p)
{
  char buf[128];
  switch (byte(p) % 6) {
  case 0: sqlite3_bind_null(st, idx); break;
  case 1: sqlite3_bind_int64(st, idx, (int64_t)((uint64_t)byte(p) << 56 | byte(p) << 8 | byte(p))); break;
  case 2: sqlite3_bind_int64(st, idx, (int64_t)byte(p) - 8); break;
  case 3: sqlite3_bind_double(st, idx, (double)(int)(byte(p) | byte(p) << 8) / 7.0); break;
  case 4: sqlite3_bind_blob(st, idx, text(p, buf, sizeof buf), (int)strlen(buf), SQLITE_TRANSIENT); break;
  default: sqlite3_bind_text(st, idx, text(p, buf, sizeof buf), -1, SQLITE_TRANSIENT); break;
  }
}

/* Prepare, bind ?1 and ?2 from the input if asked, step to the end. */
static void run(sqlite3 *db, const char *sql, int nbind, in *p)
{
  sqlite3_stmt *st = NULL;
  if (!db || sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return;
  for (int i = 1; i <= nbind; i++) bind_value(st, i, p);
  while (sqlite3_step(st) == SQLITE_ROW)
    for (int c = 0; c < sqlite3_column_count(st); c++) sqlite3_column_text(st, c);
  sqlite3_finalize(st);
}

static void run_fmt(sqlite3 *db, in *p, const char *fmt, const char *arg)
{
  char *sql = sqlite3_mprintf(fmt, arg);
  if (sql) run(db, sql, 0, p);
  sqlite3_free(sql);
}

/* ------------------------------------------------------- operations */

/* Nothing may wait for a slot: resume the pool and make room. */
static void make_room(int which)
{
  exec_or_die(g_admin[which], "PRAGMA dbpool_paused = 0");
  exec_or_die(g_admin[which], "PRAGMA dbpool_max_connections = 16");
}

static void op_open(int slot, in *p)
{
  char params[96], *uri;
  int which = byte(p) & 1;
  unsigned how = byte(p) % 4;
  text(p, params, sizeof params);
  if (g_conn[slot]) return;
  make_room(which);
  if (how == 0) uri = sqlite3_mprintf("file:%s", g_db[which]);
  else if (how == 1) uri = sqlite3_mprintf("file:%s?dbpool_timeout=%s", g_db[which], params);
  else if (how == 2) uri = sqlite3_mprintf("file:%s?%s", g_db[which], params);
  else uri = sqlite3_mprintf("file:%s?mode=ro&dbpool_timeout=%s", g_db[which], params);
  if (!uri) return;
  if (sqlite3_open_v2(uri, &g_conn[slot], SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) !=
      SQLITE_OK) {
    sqlite3_close(g_conn[slot]);
    g_conn[slot] = NULL;
  }
  sqlite3_free(uri);
}

static void step(in *p)
{
  unsigned op = byte(p);
  int slot = (int)(op >> 4) % NCONN;
  sqlite3 *db = g_conn[slot];
  char buf[128];
  switch (op % 16) {
  case 0: op_open(slot, p); break;
  case 1:
    sqlite3_close(db);
    g_conn[slot] = NULL;
    break;
  case 2: { /* PRAGMA dbpool_<setting> = a small integer */
    const char *name = g_settings[byte(p) % NSETTINGS];
    char *sql = sqlite3_mprintf("PRAGMA dbpool_%s = %d", name, (int)byte(p) - 2);
    if (sql) run(db, sql, 0, p);
    sqlite3_free(sql);
    break;
  }
  case 3: { /* ... = any text */
    const char *name = g_settings[byte(p) % NSETTINGS];
    char *sql = sqlite3_mprintf("PRAGMA dbpool_%s = %Q", name, text(p, buf, sizeof buf));
    if (sql) run(db, sql, 0, p);
    sqlite3_free(sql);
    break;
  }
  case 4: run_fmt(db, p, "PRAGMA dbpool_%s", g_settings[byte(p) % NSETTINGS]); break;
  case 5: /* stats, with or without a value; an unknown dbpool_ pragma */
    if (byte(p) & 1) run(db, "PRAGMA dbpool_stats", 0, p);
    else run_fmt(db, p, "PRAGMA dbpool_%s", text(p, buf, sizeof buf));
    break;
  case 6: run(db, "SELECT dbpool_label(?1)", 1, p); break;
  case 7: run(db, "UPDATE pool_settings SET value = ?1 WHERE name = ?2", 2, p); break;
  case 8: /* several changes in one transaction, committed or not */
    run(db, "BEGIN", 0, p);
    run(db, "UPDATE pool_settings SET value = ?1 WHERE name = ?2", 2, p);
    run(db, "UPDATE pool_settings SET value = ?1 WHERE name = ?2", 2, p);
    run(db, byte(p) & 1 ? "COMMIT" : "ROLLBACK", 0, p);
    break;
  case 9:
    if (byte(p) & 1) run(db, "SELECT * FROM pool_stats WHERE database = ?1", 1, p);
    else run(db ? db : g_boot, "SELECT * FROM pool_stats", 0, p);
    break;
  case 10:
    if (byte(p) & 1) run(db, "SELECT * FROM pool_connections WHERE database = ?1", 1, p);
    else run(db ? db : g_boot, "SELECT * FROM pool_connections", 0, p);
    break;
  case 11: run(db, "SELECT * FROM pool_settings", 0, p); break;
  case 12: run(db, "INSERT INTO t VALUES (?1)", 1, p); break;
  case 13:
    run(db, byte(p) & 1 ? "PRAGMA journal_mode = WAL" : "PRAGMA journal_mode = DELETE", 0, p);
    break;
  case 14: run(db, "PRAGMA wal_checkpoint(TRUNCATE)", 0, p); break;
  default: run(db, "SELECT dbpool_version()", 0, p); break;
  }
}

/* Each pool holds exactly the admin connection's slot. */
static void check_no_slot_held(void)
{
  sqlite3_stmt *st;
  if (sqlite3_prepare_v2(g_boot, "SELECT database, active FROM pool_stats", -1, &st, NULL) !=
      SQLITE_OK)
    fatal(g_boot, "SELECT FROM pool_stats");
  int rows = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    rows++;
    if (sqlite3_column_int(st, 1) != 1) {
      fprintf(stderr, "fuzz-sql: every connection closed, but the pool of %s has %d "
              "slots held (want 1: the admin connection's)\n", sqlite3_column_text(st, 0),
              sqlite3_column_int(st, 1));
      abort();
    }
  }
  if (sqlite3_finalize(st) != SQLITE_OK || rows != 2) {
    fprintf(stderr, "fuzz-sql: pool_stats: %d rows (%s)\n", rows, sqlite3_errmsg(g_boot));
    abort();
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  in p = {data, size};
  for (int steps = 0; p.n && steps < 64; steps++) step(&p);
  for (int i = 0; i < NCONN; i++) {
    sqlite3_close(g_conn[i]);
    g_conn[i] = NULL;
  }
  check_no_slot_held();
  return 0;
}
