/*
** driver.c -- every operation of dbpool, with its Nth allocation or system
** call failing, for N = 1 ... until it completes (make test runs it; built
** by make FAULT=1, docs/testing.md).
**
**   build-fault/tests/faults              every operation (make test)
**   build-fault/tests/faults OP...        only these (names: --list)
**   FAULT_FULL=1 build-fault/tests/faults every call of every class (slow)
**   build-fault/tests/faults --child OP CLASS N MODE   one run, reported
**
** Each run is a fresh process (forked by the driver, which never uses dbpool
** itself) with its own pool namespace and directory. It sets its pools up, arms the fault layer
** (inject.h: CLASS alloc or sys; MODE once or persist, the Nth call and every
** later one), runs the operation, disarms, and reports. The driver checks,
** against a reference run without faults:
**
**   - an operation that fails says why: a non-empty message that is not
**     SQLite's bare text for the code, and the code of what failed (an
**     allocation: SQLITE_NOMEM / -ENOMEM; a system call: not those, and the
**     message names the system's reason, strerror of the errno injected);
**   - one that succeeds gives the answer the reference run gave and leaves
**     what the reference run left: settings, labels, segments in /dev/shm,
**     slots, holder records and process records of every pool;
**   - one that fails changes none of that, holds no slot, record or
**     process entry afterwards; the same operation without faults then
**     succeeds, with the reference answer;
**   - no leak and no memory error (the fault build runs under ASan/LSan:
**     the run's exit status says so).
**
** SQLite's own allocations count too in the runs of SQLite operations (the
** child installs SQLITE_CONFIG_MALLOC): a failure inside SQLite must come
** back through dbpool's code cleanly. make test runs the quick mode (every
** one of dbpool's own allocations once, a spread of its other calls: see
** drive()); FAULT_FULL=1 (make test-faults FAULT_FULL=1) fails every one.
*/
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "dbpool.h"
#include "dbpool_admin.h"
#include "dbpool_coord.h"
#include "coordinator/private.h"
#include "inject.h"

/* ------------------------------------------------------------ strings */

typedef struct sb {
  char *s;
  size_t n, cap;
} sb;

static void sb_add(sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sb *b, const char *fmt, ...)
{
  va_list ap;
  for (;;) {
    size_t room = b->cap - b->n;
    va_start(ap, fmt);
    int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? room : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->s && (size_t)k < room) {
      b->n += (size_t)k;
      return;
    }
    size_t cap = (b->cap + (size_t)k + 64) * 2;
    char *p = realloc(b->s, cap);
    if (!p) abort(); /* the test program itself: not the code under test */
    b->s = p;
    b->cap = cap;
  }
}

static const char *sb_str(sb *b) { return b->s ? b->s : ""; }
static void sb_reset(sb *b) { b->n = 0; if (b->s) b->s[0] = 0; }
static void sb_free(sb *b) { free(b->s); b->s = NULL; b->n = b->cap = 0; }

/* ------------------------------------------------------------ context */

typedef enum kind { K_COORD, K_SQL, K_POOL, K_CTL } kind;

typedef struct ctx {
  kind kind;
  char dir[256];
  char ns[40];
  char db[3][300];
  char ext[PATH_MAX + 16]; /* the fault build's dbpool.so, without ".so" */
  char ctl[PATH_MAX + 16]; /* the fault build's dbpoolctl */
  sqlite3 *boot;       /* :memory:, loaded the extension */
  sqlite3 *conn;       /* db[0], opened after loading: holds a slot */
  sqlite3 *conn2;      /* db[1], labelled */
  sqlite3 *opened;     /* what an operation opened (closed by its cleanup) */
  dbpool *pool;
  sqlite3 *pooled;     /* checked out of pool */
  dbpool_coord *coord;
  dbpool_holder *holder;
  pid_t helper;
  int helper_pipe;     /* write end: closing it ends the helper */
  /* the run */
  int rc;
  sb msg, answer;
  /* for operations run in another process (dbpoolctl) */
  const char *fault_class;
  long fault_n;
  int fault_persist;
  long ext_calls, ext_fired;
  int ext_errno;
  unsigned long long ext_errnos;
  char ext_site[32];
} ctx;

/* What SQLite makes of an operation's failures, beyond dbpool's control. */
enum {
  /* sqlite3_load_extension reports every failure of an extension's entry
  ** point as SQLITE_ERROR: the message says what failed. */
  F_LOAD = 1,
  /* A PRAGMA dbpool_X = V takes effect when SQLite prepares it (inside
  ** xFileControl); SQLite then allocates the statement's one-row answer,
  ** and if that fails the prepare fails with the change made. Only
  ** SQLite's own allocations can do that (docs/sql.md, LIMITATIONS). */
  F_PRAGMA_SET = 2,
  /* A pool that an open created stays when the open then fails (an empty
  ** pool with the settings it would have had: the next open uses it;
  ** others may be attached to it already). */
  F_CREATES = 4,
};

struct result;

typedef struct op {
  const char *name;
  kind kind;
  unsigned flags;
  /* Another outcome of a run that succeeded, documented as acceptable (its
  ** comment says why), or NULL. */
  bool (*alt_ok)(const struct result *r, const struct result *ref);
  void (*setup)(ctx *);
  void (*run)(ctx *);      /* armed: sets x->rc, x->msg, x->answer */
  void (*probe)(ctx *, sb *); /* disarmed, before cleanup: what it holds */
  void (*cleanup)(ctx *);  /* disarmed: undo what run made */
} op;

static char g_self[PATH_MAX];
static pid_t g_driver; /* names runs: the driver's pid */

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "faults: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(3);
}

/* A path in the answer without this run's directory. */
static void add_path(sb *b, ctx *x, const char *p)
{
  size_t n = strlen(x->dir);
  if (p && strncmp(p, x->dir, n) == 0) sb_add(b, "$DIR%s", p + n);
  else sb_add(b, "%s", p ? p : "(null)");
}

static void make_db(const char *path)
{
  sqlite3 *db;
  char *err = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "unix") ||
      sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);", 0, 0, &err))
    die("cannot create %s: %s", path, err ? err : sqlite3_errmsg(db));
  sqlite3_close(db);
}

/* ------------------------------------------------------ SQLite's malloc */

static sqlite3_mem_methods g_real_mem;

static void *fx_malloc(int n)
{
  return fault_point("sqlite3_malloc", FAULT_SQLITE) ? NULL : g_real_mem.xMalloc(n);
}

static void *fx_realloc(void *p, int n)
{
  return fault_point("sqlite3_realloc", FAULT_SQLITE) ? NULL : g_real_mem.xRealloc(p, n);
}

static void sqlite_with_faults(void)
{
  sqlite3_mem_methods m;
  if (sqlite3_config(SQLITE_CONFIG_GETMALLOC, &g_real_mem) != SQLITE_OK)
    die("SQLITE_CONFIG_GETMALLOC failed");
  m = g_real_mem;
  m.xMalloc = fx_malloc;
  m.xRealloc = fx_realloc;
  if (sqlite3_config(SQLITE_CONFIG_MALLOC, &m) != SQLITE_OK)
    die("SQLITE_CONFIG_MALLOC failed");
  sqlite3_initialize();
}

/* ------------------------------------------------------- observation */

static int list_cb(const char *name, void *arg)
{
  sb *names = arg;
  sb_add(names, "%s\n", name);
  return 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Everything an operation may change in every pool of the namespace, as
** read without taking part (read-only attachments, no holders). */
static void common_state(ctx *x, sb *out)
{
  char prefix[64];
  snprintf(prefix, sizeof prefix, "dbpool.%s.", x->ns);
  DIR *d = opendir("/dev/shm");
  char *names[64], *lines[64];
  int n = 0;
  struct dirent *e;
  while (d && (e = readdir(d)) && n < 64)
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) names[n++] = strdup(e->d_name);
  if (d) closedir(d);
  for (int i = 0; i < n; i++) {
    sb line = {0};
    dbpool_coord *c;
    const char *cand = strchr(names[i], '~'); /* device and inode vary: not shown */
    if (dbpool_coord_open_segment(names[i], DBPOOL_OPEN_READONLY, &c) != 0) {
      sb_add(&line, "unreadable pool: %s\n", dbpool_last_error());
      lines[i] = line.s;
      continue;
    }
    char path[DBPOOL_PATH_MAX];
    dbpool_coord_database(c, path, sizeof path);
    add_path(&line, x, path);
    sb_add(&line, "%s:", cand ? cand : "");
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    /* An entry of the C pool keeps its holder record (and so the process
    ** its registration) across connections, by design: not compared. */
    if (dbpool_coord_stats(c, &st) == 0 && x->kind == K_POOL)
      sb_add(&line, " active=%u waiting=%u", st.active, st.waiting);
    else if (dbpool_coord_stats(c, &st) == 0)
      sb_add(&line, " active=%u waiting=%u records=%u processes=%u", st.active, st.waiting,
             st.records_in_use, st.processes);
    for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) {
      int64_t v;
      if (dbpool_coord_get(c, s, &v) == 0)
        sb_add(&line, " %s=%lld", dbpool_setting_describe(s)->name, (long long)v);
    }
    dbpool_holder_info info[16];
    int k = dbpool_coord_holders(c, info, 16, sizeof *info);
    for (int j = 0; j < k && j < 16; j++)
      sb_add(&line, " holder(%d,%s)", (int)info[j].state, info[j].label);
    sb_add(&line, " file=%s\n", dbpool_file_state_name(dbpool_coord_file_state(c)));
    dbpool_coord_close(c);
    lines[i] = line.s;
  }
  qsort(lines, (size_t)n, sizeof *lines, cmp_str);
  for (int i = 0; i < n; i++) {
    sb_add(out, "%s", lines[i]);
    free(lines[i]);
    free(names[i]);
  }
}

/* ------------------------------------------------ setting pools up */

/* Create the pools of db[0..n) with distinct limits, in a child process
** (this process keeps no attachment: the operation attaches afresh). */
static void make_pools(ctx *x, int n)
{
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    for (int i = 0; i < n; i++) {
      dbpool_coord *c;
      if (dbpool_coord_open(x->db[i], 0, &c) != 0 ||
          dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 3 + i) != 0) {
        fprintf(stderr, "faults: making the pool of %s: %s\n", x->db[i], dbpool_last_error());
        _exit(1);
      }
      dbpool_coord_close(c);
    }
    _exit(0);
  }
  int status;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("could not make the pools");
}

/* A helper process that holds a slot of db[i] (labelled) until told, or
** (release_when_waited) until someone queues behind it. */
static void start_helper(ctx *x, int i, const char *label, bool release_when_waited)
{
  int p[2], ready[2];
  if (pipe(p) != 0 || pipe(ready) != 0) die("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    close(p[1]);
    close(ready[0]);
    dbpool_coord *c;
    dbpool_holder *h;
    if (dbpool_coord_open(x->db[i], 0, &c) != 0 || dbpool_holder_new(c, &h) != 0 ||
        dbpool_holder_acquire(h, 5000) != 0)
      _exit(1);
    dbpool_holder_set_label(h, label);
    if (write(ready[1], "r", 1) != 1) _exit(1);
    if (release_when_waited) {
      while (dbp_coord_waiting(c) == 0) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 1) > 0) break;
      }
      dbpool_holder_release(h);
    }
    char b;
    while (read(p[0], &b, 1) < 0 && errno == EINTR) {
    }
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    _exit(0);
  }
  close(p[0]);
  close(ready[1]);
  char b;
  if (read(ready[0], &b, 1) != 1) die("helper did not start");
  close(ready[0]);
  x->helper = pid;
  x->helper_pipe = p[1];
}

static void stop_helper(ctx *x)
{
  if (!x->helper) return;
  close(x->helper_pipe);
  waitpid(x->helper, NULL, 0);
  x->helper = 0;
}

/* ------------------------------------------------------------ SQL ops */

static sqlite3 *open_db(const char *path)
{
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL);
  if (rc != SQLITE_OK) die("cannot open %s: %s", path, db ? sqlite3_errmsg(db) : "");
  return db;
}

static void load_into(sqlite3 *db, ctx *x)
{
  char *err = NULL;
  sqlite3_enable_load_extension(db, 1);
  if (sqlite3_load_extension(db, x->ext, NULL, &err) != SQLITE_OK)
    die("cannot load %s: %s", x->ext, err ? err : "");
}

/* The extension loaded (into an in-memory connection) and three pools. */
static void sql_setup(ctx *x)
{
  make_pools(x, 3);
  x->boot = open_db(":memory:");
  load_into(x->boot, x);
  x->conn = open_db(x->db[0]);
}

/* ... and a connection to db[1] with a label. */
static void sql_setup_two(ctx *x)
{
  sql_setup(x);
  x->conn2 = open_db(x->db[1]);
  sqlite3_exec(x->conn2, "SELECT dbpool_label('two')", 0, 0, 0);
}

/* Run sql on db: every row into the answer, or the error. A query is
** prepared with faults held (SQLite's parser is not what is tested; a
** PRAGMA dbpool_* runs at prepare time, so statements are prepared armed). */
static void run_stmt(ctx *x, sqlite3 *db, const char *sql, bool query)
{
  sqlite3_stmt *st = NULL;
  if (query) fault_hold(1);
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (query) fault_hold(0);
  while (rc == SQLITE_OK) {
    int s = sqlite3_step(st);
    if (s == SQLITE_DONE) break;
    if (s != SQLITE_ROW) {
      rc = s;
      break;
    }
    for (int i = 0; i < sqlite3_column_count(st); i++) {
      const char *v = (const char *)sqlite3_column_text(st, i);
      if (!v && sqlite3_column_type(st, i) != SQLITE_NULL) {
        rc = SQLITE_NOMEM; /* the value could not be converted */
        break;
      }
      sb_add(&x->answer, i ? "|" : "");
      add_path(&x->answer, x, v ? v : "NULL");
    }
    sb_add(&x->answer, "\n");
  }
  if (rc != SQLITE_OK) {
    x->rc = sqlite3_extended_errcode(db) ? sqlite3_errcode(db) : rc;
    sb_add(&x->msg, "%s", sqlite3_errmsg(db));
  }
  sqlite3_finalize(st);
}

static void run_sql(ctx *x, sqlite3 *db, const char *sql) { run_stmt(x, db, sql, false); }
static void run_query(ctx *x, sqlite3 *db, const char *sql) { run_stmt(x, db, sql, true); }

static void sql_cleanup(ctx *x) { (void)x; }

/* What this process holds: from outside (read-only), per pool. */
static void probe_holders(ctx *x, sb *out)
{
  for (int i = 0; i < 3; i++) {
    dbpool_coord *c;
    if (dbpool_coord_open(x->db[i], DBPOOL_OPEN_READONLY | DBPOOL_OPEN_NOCREATE, &c) != 0) {
      sb_add(out, "db%d: no pool\n", i);
      continue;
    }
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    dbpool_coord_stats(c, &st);
    if (x->kind == K_POOL) /* entries keep their holder record: see common_state */
      sb_add(out, "db%d: active=%u", i, st.active);
    else
      sb_add(out, "db%d: active=%u records=%u", i, st.active, st.records_in_use);
    dbpool_holder_info info[8];
    int k = dbpool_coord_holders(c, info, 8, sizeof *info);
    for (int j = 0; j < k && j < 8; j++) sb_add(out, " label=%s", info[j].label);
    sb_add(out, "\n");
    dbpool_coord_close(c);
  }
}

static void run_load(ctx *x)
{
  char *err = NULL;
  x->opened = NULL;
  int rc = sqlite3_open_v2(x->db[0], &x->opened, SQLITE_OPEN_READWRITE, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_enable_load_extension(x->opened, 1);
  bool loading = rc == SQLITE_OK;
  if (loading) rc = sqlite3_load_extension(x->opened, x->ext, NULL, &err);
  if (rc != SQLITE_OK) {
    x->rc = rc;
    /* sqlite3_load_extension says why through err only; the connection's
    ** message stays "not an error". Without err (SQLite could not allocate
    ** it, or its own allocation failed), what a client can say is the
    ** code's text: "out of memory" for SQLITE_NOMEM, and nothing for an
    ** initialization whose message was lost, which the check allows only
    ** when every later allocation fails. */
    const char *why = err ? err
                      : !loading && x->opened ? sqlite3_errmsg(x->opened)
                      : !loading || (rc & 0xff) == SQLITE_NOMEM ? sqlite3_errstr(rc)
                                                                : "";
    sb_add(&x->msg, "%s", why);
  } else {
    sb_add(&x->answer, "loaded");
  }
  sqlite3_free(err);
}

static void load_setup(ctx *x) { make_pools(x, 1); }

static void close_opened(ctx *x)
{
  sqlite3_close(x->opened);
  x->opened = NULL;
}

/* Open name into x->opened; a failure's code and message go to x. */
static void open_into(ctx *x, const char *name, int flags)
{
  x->opened = NULL;
  int rc = sqlite3_open_v2(name, &x->opened, flags, NULL);
  if (rc != SQLITE_OK) {
    x->rc = rc;
    sb_add(&x->msg, "%s", x->opened ? sqlite3_errmsg(x->opened) : sqlite3_errstr(rc));
    sqlite3_close(x->opened);
    x->opened = NULL;
    return;
  }
  sb_add(&x->answer, "opened");
}

static void run_open(ctx *x) { open_into(x, x->db[0], SQLITE_OPEN_READWRITE); }

static void run_open_uri(ctx *x)
{
  char uri[400];
  snprintf(uri, sizeof uri, "file:%s?dbpool_timeout=250", x->db[1]);
  open_into(x, uri, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI);
}

static void run_close(ctx *x)
{
  int rc = sqlite3_close(x->conn);
  if (rc != SQLITE_OK) {
    x->rc = rc;
    sb_add(&x->msg, "%s", sqlite3_errmsg(x->conn));
    return;
  }
  x->conn = NULL;
  sb_add(&x->answer, "closed");
}

static void reopen_conn(ctx *x)
{
  if (!x->conn) x->conn = open_db(x->db[0]);
}

#define SQL_RUNNER(fn, conn_field, text) \
  static void fn(ctx *x) { run_sql(x, x->conn_field, text); }
#define QUERY_RUNNER(fn, conn_field, text) \
  static void fn(ctx *x) { run_query(x, x->conn_field, text); }

QUERY_RUNNER(run_stats, conn, "SELECT database, max_connections, active, paused, "
           "acquire_timeout_ms FROM pool_stats ORDER BY database")
QUERY_RUNNER(run_connections, conn, "SELECT database, state, label, current, joined "
           "FROM pool_connections ORDER BY database, label")
QUERY_RUNNER(run_settings, conn, "SELECT name, value, default_value FROM pool_settings "
           "ORDER BY name")
QUERY_RUNNER(run_update, conn, "UPDATE pool_settings SET value = 7 WHERE name = "
           "'max_connections'")
QUERY_RUNNER(run_label, conn, "SELECT dbpool_label('nightly')")
QUERY_RUNNER(run_label_clear, conn2, "SELECT dbpool_label(NULL)")
QUERY_RUNNER(run_version, conn, "SELECT dbpool_version() IS NOT NULL")
SQL_RUNNER(run_pragma_get, conn, "PRAGMA dbpool_max_connections")
SQL_RUNNER(run_pragma_timeout, conn, "PRAGMA dbpool_acquire_timeout_ms = 1234")
SQL_RUNNER(run_pragma_max, conn, "PRAGMA dbpool_max_connections = 6")
SQL_RUNNER(run_pragma_paused, conn, "PRAGMA dbpool_paused = on")
SQL_RUNNER(run_pragma_queue, conn, "PRAGMA dbpool_writer_queue = off")
SQL_RUNNER(run_pragma_starve, conn, "PRAGMA dbpool_writer_starvation_ms = 77")

static void run_stats_where(ctx *x)
{
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT database, max_connections, active FROM pool_stats "
           "WHERE database = '%s'", x->db[1]);
  run_query(x, x->conn, sql);
}

static void run_connections_where(ctx *x)
{
  char sql[512];
  snprintf(sql, sizeof sql, "SELECT state, label FROM pool_connections WHERE "
           "database = '%s'", x->db[1]);
  run_query(x, x->conn, sql);
}

/* Two settings in one transaction: both or neither. */
static void run_update_txn(ctx *x)
{
  run_query(x, x->conn, "BEGIN");
  if (!x->rc)
    run_query(x, x->conn, "UPDATE pool_settings SET value = 9 WHERE name = 'max_connections'");
  if (!x->rc)
    run_query(x, x->conn, "UPDATE pool_settings SET value = 4321 WHERE name = "
              "'acquire_timeout_ms'");
  if (!x->rc) run_query(x, x->conn, "COMMIT");
  if (x->rc) sqlite3_exec(x->conn, "ROLLBACK", 0, 0, 0);
}

/* PRAGMA dbpool_stats: its summary, of which the fields that do not depend
** on what earlier attempts did. */
static void run_pragma_stats(ctx *x)
{
  run_sql(x, x->conn, "PRAGMA dbpool_stats");
  if (x->rc) return;
  char keep[256] = "";
  for (const char *k = sb_str(&x->answer); *k; k++) {
    if (k != sb_str(&x->answer) && k[-1] != ' ') continue;
    static const char *fields[] = {"max_connections=", "active=", "paused=",
                                   "writer_queue="};
    for (int i = 0; i < 4; i++)
      if (strncmp(k, fields[i], strlen(fields[i])) == 0) {
        size_t len = strcspn(k, " \n");
        strncat(keep, k, len < 60 ? len : 60);
        strcat(keep, " ");
      }
  }
  sb_reset(&x->answer);
  sb_add(&x->answer, "%s", keep);
}

/* A write transaction in WAL mode through the VFS shim's writer gate. */
static void sql_setup_wal(ctx *x)
{
  sql_setup(x);
  if (sqlite3_exec(x->conn, "PRAGMA journal_mode = WAL", 0, 0, 0) != SQLITE_OK)
    die("WAL: %s", sqlite3_errmsg(x->conn));
}

static void rollback_unarmed(ctx *x)
{
  fault_hold(1);
  sqlite3_exec(x->conn, "ROLLBACK", 0, 0, 0);
  fault_hold(0);
}

static void run_write(ctx *x)
{
  run_query(x, x->conn, "BEGIN IMMEDIATE");
  if (!x->rc) run_query(x, x->conn, "INSERT INTO t VALUES (2)");
  if (!x->rc) run_query(x, x->conn, "COMMIT");
  if (x->rc) rollback_unarmed(x);
  if (!x->rc) sb_add(&x->answer, "committed");
}

/* A checkpoint of a WAL with a transaction in it. */
static void sql_setup_ckpt(ctx *x)
{
  sql_setup_wal(x);
  if (sqlite3_exec(x->conn, "INSERT INTO t VALUES (5)", 0, 0, 0) != SQLITE_OK)
    die("insert: %s", sqlite3_errmsg(x->conn));
}

static void run_checkpoint(ctx *x)
{
  run_query(x, x->conn, "PRAGMA wal_checkpoint(TRUNCATE)");
  sb_reset(&x->answer);
  if (!x->rc) sb_add(&x->answer, "checkpointed");
}

static void probe_rows(ctx *x, sb *out)
{
  sqlite3_stmt *st;
  sqlite3 *db = open_db(x->db[0]); /* counted: closed at once */
  if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW)
    sb_add(out, "rows=%d\n", sqlite3_column_int(st, 0));
  sqlite3_finalize(st);
  sqlite3_close(db);
  probe_holders(x, out);
}

static void write_cleanup(ctx *x)
{
  sqlite3_exec(x->conn, "DELETE FROM t WHERE x = 2", 0, 0, 0);
}

/* ------------------------------------------------------- C pool ops */

static void pool_config(dbpool_config *cfg)
{
  dbpool_config_init(cfg);
  cfg->max_size = 2;
  cfg->acquire_timeout_ms = 2000;
  cfg->init_sql = "PRAGMA busy_timeout = 1000";
}

static void pool_fail(ctx *x, int rc)
{
  x->rc = rc;
  sb_add(&x->msg, "%s", dbpool_errmsg(x->pool));
}

static void run_pool_open(ctx *x)
{
  dbpool_config cfg;
  pool_config(&cfg);
  int rc = dbpool_open(x->db[0], &cfg, &x->pool);
  if (rc) pool_fail(x, rc);
  else sb_add(&x->answer, "open");
}

static void close_pool(ctx *x)
{
  if (x->pooled) dbpool_release(x->pool, x->pooled);
  x->pooled = NULL;
  if (x->pool && dbpool_close(x->pool) != SQLITE_OK)
    die("dbpool_close: %s", dbpool_errmsg(x->pool));
  x->pool = NULL;
}

static void pool_setup(ctx *x)
{
  make_pools(x, 1);
  dbpool_config cfg;
  pool_config(&cfg);
  if (dbpool_open(x->db[0], &cfg, &x->pool) != SQLITE_OK)
    die("dbpool_open: %s", dbpool_errmsg(x->pool));
}

static void run_pool_acquire(ctx *x)
{
  int rc = dbpool_acquire(x->pool, &x->pooled);
  if (rc) {
    pool_fail(x, rc);
    x->pooled = NULL;
    return;
  }
  sb_add(&x->answer, "acquired");
}

static void release_pooled(ctx *x)
{
  if (x->pooled && dbpool_release(x->pool, x->pooled) != SQLITE_OK)
    die("dbpool_release: %s", dbpool_errmsg(x->pool));
  x->pooled = NULL;
}

/* A connection in a transaction goes back: rolled back on release. */
static void pool_setup_dirty(ctx *x)
{
  pool_setup(x);
}

static void run_pool_dirty_release(ctx *x)
{
  int rc = dbpool_acquire(x->pool, &x->pooled);
  if (rc) {
    pool_fail(x, rc);
    x->pooled = NULL;
    return;
  }
  sqlite3_exec(x->pooled, "BEGIN; INSERT INTO t VALUES (3);", 0, 0, 0);
  rc = dbpool_release(x->pool, x->pooled);
  x->pooled = NULL;
  if (rc) pool_fail(x, rc);
  else sb_add(&x->answer, "released");
}

static void run_pool_close(ctx *x)
{
  int rc = dbpool_close(x->pool);
  if (rc) {
    pool_fail(x, rc);
    return;
  }
  x->pool = NULL;
  sb_add(&x->answer, "closed");
}

static void pool_reopen(ctx *x)
{
  if (x->pool) return;
  dbpool_config cfg;
  pool_config(&cfg);
  if (dbpool_open(x->db[0], &cfg, &x->pool) != SQLITE_OK)
    die("dbpool_open: %s", dbpool_errmsg(x->pool));
}

static void pool_setup_idle(ctx *x)
{
  pool_setup(x);
  sqlite3 *db;
  if (dbpool_acquire(x->pool, &db) != SQLITE_OK || dbpool_release(x->pool, db) != SQLITE_OK)
    die("acquire: %s", dbpool_errmsg(x->pool));
}

static void probe_pool(ctx *x, sb *out)
{
  dbpool_stats st;
  DBPOOL_INIT(&st);
  if (x->pool && dbpool_get_stats(x->pool, &st) == SQLITE_OK)
    sb_add(out, "pool: active=%d idle=%d total=%d waiting=%d\n", st.active, st.idle,
           st.total, st.waiting);
  probe_holders(x, out);
}

/* ------------------------------------------------- coordinator ops */

static void coord_fail(ctx *x, int rc)
{
  x->rc = rc;
  sb_add(&x->msg, "%s", dbpool_last_error());
}

static void coord_setup(ctx *x) { make_pools(x, 3); }

static void coord_setup_open(ctx *x)
{
  make_pools(x, 3);
  if (dbpool_coord_open(x->db[0], 0, &x->coord) != 0) die("open: %s", dbpool_last_error());
}

static void coord_setup_holder(ctx *x)
{
  coord_setup_open(x);
  if (dbpool_holder_new(x->coord, &x->holder) != 0) die("holder: %s", dbpool_last_error());
}

static dbpool_coord *g_opened;

static void run_coord_open(ctx *x)
{
  g_opened = NULL;
  int rc = dbpool_coord_open(x->db[0], 0, &g_opened);
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "open %s", dbpool_coord_segment_name(g_opened) ? "named" : "?");
}

/* A database that has no pool yet: created now. */
static void run_coord_create(ctx *x)
{
  g_opened = NULL;
  int rc = dbpool_coord_open(x->db[2], 0, &g_opened);
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "created");
}

static void coord_setup_two(ctx *x) { make_pools(x, 2); }

static void close_g_opened(ctx *x)
{
  (void)x;
  dbpool_coord_close(g_opened);
  g_opened = NULL;
}

static dbpool_holder *g_holder;

static void run_holder_new(ctx *x)
{
  g_holder = NULL;
  int rc = dbpool_holder_new(x->coord, &g_holder);
  if (rc == 0) rc = dbp_holder_set_joined(g_holder, DBPOOL_JOINED_API);
  if (rc == 0) rc = dbpool_holder_set_label(g_holder, "new");
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "holder");
}

static void free_g_holder(ctx *x)
{
  (void)x;
  dbpool_holder_free(g_holder);
  g_holder = NULL;
}

static void run_acquire(ctx *x)
{
  int rc = dbpool_holder_acquire(x->holder, 0);
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "held=%d", dbpool_holder_held(x->holder));
}

static void release_holder(ctx *x)
{
  if (dbpool_holder_held(x->holder)) dbpool_holder_release(x->holder);
}

/* The only slot is held by a helper that gives it up once we queue. */
static void coord_setup_wait(ctx *x)
{
  make_pools(x, 1);
  if (dbpool_coord_open(x->db[0], 0, &x->coord) != 0 ||
      dbpool_coord_set(x->coord, DBPOOL_SETTING_MAX_CONNECTIONS, 1) != 0 ||
      dbpool_holder_new(x->coord, &x->holder) != 0)
    die("setup: %s", dbpool_last_error());
  start_helper(x, 0, "helper", true);
}

static void run_acquire_wait(ctx *x)
{
  int rc = dbpool_holder_acquire(x->holder, 10000);
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "granted");
}

static void release_and_rearm_helper(ctx *x)
{
  release_holder(x);
  /* The retry needs the slot taken again. */
  stop_helper(x);
  start_helper(x, 0, "helper", true);
}

static void run_stats_op(ctx *x)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  int rc = dbpool_coord_stats(x->coord, &st);
  if (rc) {
    coord_fail(x, rc);
    return;
  }
  sb_add(&x->answer, "max=%u active=%u waiting=%u processes=%u paused=%d", st.max_connections,
         st.active, st.waiting, st.processes, st.paused);
}

static void coord_setup_held(ctx *x)
{
  coord_setup_holder(x);
  if (dbpool_holder_acquire(x->holder, 0) != 0) die("acquire: %s", dbpool_last_error());
  dbpool_holder_set_label(x->holder, "held");
  start_helper(x, 0, "helper", false);
}

static void run_holders(ctx *x)
{
  dbpool_holder_info info[8];
  int n = dbpool_coord_holders(x->coord, info, 8, sizeof *info);
  if (n < 0) {
    coord_fail(x, n);
    return;
  }
  /* In record order: the label says whose. */
  const char *labels[8];
  for (int i = 0; i < n && i < 8; i++) labels[i] = info[i].label;
  qsort(labels, (size_t)(n < 8 ? n : 8), sizeof *labels, cmp_str);
  sb_add(&x->answer, "%d:", n);
  for (int i = 0; i < n && i < 8; i++) sb_add(&x->answer, " %s", labels[i]);
}

static void run_list(ctx *x)
{
  sb names = {0};
  int rc = dbpool_coord_list(list_cb, &names);
  if (rc) coord_fail(x, rc);
  else {
    /* Names carry device and inode numbers: count them. */
    int n = 0;
    for (const char *p = sb_str(&names); *p; p++) n += *p == '\n';
    sb_add(&x->answer, "%d pools", n);
  }
  sb_free(&names);
}

static int gc_cb_count;
static int gc_cb(const dbpool_gc_entry *e, void *arg)
{
  sb *out = arg;
  gc_cb_count++;
  /* A pool gc could not look at is reported kept, the reason saying why. */
  if (e->action == DBPOOL_GC_KEPT && e->reason && strcmp(e->reason, "in use by its database"))
    sb_add(out, "kept: %s\n", e->reason);
  return 0;
}

/* db[1]'s file is deleted: gc collects its pool, keeps the others. */
static void gc_setup(ctx *x)
{
  make_pools(x, 3);
  unlink(x->db[1]);
}

static void run_gc(ctx *x)
{
  sb acts = {0};
  gc_cb_count = 0;
  int rc = dbpool_coord_gc(0, gc_cb, &acts);
  if (rc < 0) coord_fail(x, rc);
  else sb_add(&x->answer, "removed=%d\n%s", rc, sb_str(&acts));
  sb_free(&acts);
}

static void run_remove(ctx *x)
{
  int rc = dbpool_coord_remove(x->db[2], NULL, 0);
  if (rc < 0) coord_fail(x, rc);
  else sb_add(&x->answer, "removed=%d", rc);
}

static void run_set(ctx *x)
{
  int rc = dbpool_coord_set(x->coord, DBPOOL_SETTING_MAX_CONNECTIONS, 5);
  if (rc == 0) rc = dbpool_coord_set(x->coord, DBPOOL_SETTING_PAUSED, 1);
  if (rc == 0) rc = dbpool_coord_set(x->coord, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 777);
  if (rc) coord_fail(x, rc);
  else sb_add(&x->answer, "set");
}

static void undo_set(ctx *x)
{
  dbpool_coord_set(x->coord, DBPOOL_SETTING_MAX_CONNECTIONS, 3);
  dbpool_coord_set(x->coord, DBPOOL_SETTING_PAUSED, 0);
  dbpool_coord_set(x->coord, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 5000);
}

/* A helper died holding a slot: reap takes it back. */
static void reap_setup(ctx *x)
{
  coord_setup_open(x);
  start_helper(x, 0, "dead", false);
  kill(x->helper, SIGKILL);
  waitpid(x->helper, NULL, 0);
  close(x->helper_pipe);
  x->helper = 0;
}

static void run_reap(ctx *x)
{
  int rc = dbpool_coord_reap(x->coord);
  if (rc < 0) coord_fail(x, rc);
  else sb_add(&x->answer, "reaped");
}

/* ------------------------------------------------------- dbpoolctl ops */

/* Sort the lines of b. */
static void sort_lines(sb *b)
{
  char *copy = strdup(sb_str(b)), *lines[512];
  int n = 0;
  for (char *l = strtok(copy, "\n"); l && n < 512; l = strtok(NULL, "\n")) lines[n++] = l;
  qsort(lines, (size_t)n, sizeof *lines, cmp_str);
  sb out = {0};
  for (int i = 0; i < n; i++) sb_add(&out, "%s\n", lines[i]);
  free(copy);
  sb_free(b);
  *b = out;
}

/* Run the fault build's dbpoolctl, armed through the environment. */
/* Every run of blanks as one space, none at the end of a line, in place. */
static void squeeze_blanks(sb *b)
{
  char *o = b->s, *t = b->s;
  if (!t) return;
  while (*t) {
    if (*t == ' ') {
      while (*t == ' ') t++;
      if (*t != '\n' && *t && o != b->s && o[-1] != '\n') *o++ = ' ';
    } else {
      *o++ = *t++;
    }
  }
  *o = 0;
  b->n = (size_t)(o - b->s);
}

/* Segment names (their inode varies from run to run) as $SEG, in place. */
static void hide_segment_names(char *line)
{
  for (char *p = line; (p = strstr(p, "dbpool."));) {
    size_t n = strcspn(p, " \t),\"");
    memcpy(p, "$SEG", 4);
    memmove(p + 4, p + n, strlen(p + n) + 1);
    p += 4;
  }
}

static char *read_all(int fd);

/* A file's whole text ("" if it cannot be read). */
static char *read_path(const char *path)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return strdup("");
  char *s = read_all(fd);
  close(fd);
  return s;
}

static void run_ctl(ctx *x, const char *const *args)
{
  char report[400], out_path[400], err_path[400];
  snprintf(report, sizeof report, "%s/fault-report", x->dir);
  snprintf(out_path, sizeof out_path, "%s/ctl-out", x->dir);
  snprintf(err_path, sizeof err_path, "%s/ctl-err", x->dir);
  unlink(report);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) {
    char spec[64];
    if (x->fault_class) {
      snprintf(spec, sizeof spec, "%s:%ld:%s", x->fault_class, x->fault_n,
               x->fault_persist ? "persist" : "once");
      setenv("DBPOOL_FAULT", spec, 1);
      setenv("DBPOOL_FAULT_REPORT", report, 1);
    }
    int o = open(out_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    int e = open(err_path, O_CREAT | O_TRUNC | O_WRONLY, 0600);
    dup2(o, 1);
    dup2(e, 2);
    char *argv[16];
    int n = 0;
    argv[n++] = x->ctl;
    for (int i = 0; args[i] && n < 15; i++) argv[n++] = (char *)args[i];
    argv[n] = NULL;
    execv(x->ctl, argv);
    _exit(127);
  }
  int status;
  waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  /* Whole outputs: metrics of three pools pass 8 KiB, and a cut made at a
  ** fixed size falls elsewhere when the run's directory name is longer. */
  char *buf = read_path(out_path), *ebuf = read_path(err_path);
  size_t ek = strlen(ebuf);
  while (ek > 0 && ebuf[ek - 1] == '\n') ebuf[--ek] = 0;
  if (code) {
    x->rc = code;
    sb_add(&x->msg, "%s", ebuf);
  } else {
    if (ek) sb_add(&x->msg, "%s", ebuf); /* should be nothing */
    /* Keep the lines that do not depend on time, process ids or earlier
    ** attempts, the run's directory named $DIR. */
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
      if (strstr(line, "wait") || strstr(line, "total") || strstr(line, "since") ||
          strstr(line, "created") || strstr(line, "_ms") || strstr(line, "pid") ||
          strstr(line, "Z ") || strstr(line, "peak") || strstr(line, "utilization") ||
          strstr(line, "helper"))
        continue;
      hide_segment_names(line);
      for (char *p = line; *p;) {
        char *hit = strstr(p, x->dir);
        if (!hit) {
          sb_add(&x->answer, "%s", p);
          break;
        }
        sb_add(&x->answer, "%.*s$DIR", (int)(hit - p), p);
        p = hit + strlen(x->dir);
      }
      sb_add(&x->answer, "\n");
    }
    squeeze_blanks(&x->answer); /* columns are as wide as the run's path */
    sort_lines(&x->answer);     /* pools are listed in segment-name order: inodes */
  }
  free(buf);
  free(ebuf);
  x->ext_calls = x->ext_fired = 0;
  x->ext_errno = 0;
  x->ext_site[0] = 0;
  FILE *f = fopen(report, "r");
  if (f) {
    char site[32] = "";
    if (fscanf(f, "calls=%ld fired=%ld site=%31s errno=%d errnos=%llu", &x->ext_calls,
               &x->ext_fired, site, &x->ext_errno, &x->ext_errnos) >= 2)
      snprintf(x->ext_site, sizeof x->ext_site, "%s", site);
    fclose(f);
  }
}

#define CTL_RUNNER(fn, ...)                                  \
  static void fn(ctx *x)                                      \
  {                                                           \
    const char *args[] = {__VA_ARGS__, NULL};                 \
    run_ctl(x, args);                                         \
  }

CTL_RUNNER(run_ctl_list, "list")
CTL_RUNNER(run_ctl_list_json, "list", "--json")
CTL_RUNNER(run_ctl_status, "status", x->db[0])
CTL_RUNNER(run_ctl_status_json, "status", x->db[0], "--json")
CTL_RUNNER(run_ctl_set, "set", x->db[0], "max_connections=7", "acquire_timeout_ms=999")
CTL_RUNNER(run_ctl_pause, "pause", x->db[0])
CTL_RUNNER(run_ctl_reap, "reap", x->db[0])
CTL_RUNNER(run_ctl_rm, "rm", x->db[2])
CTL_RUNNER(run_ctl_gc, "gc")
CTL_RUNNER(run_ctl_metrics, "metrics")

static void ctl_setup(ctx *x)
{
  make_pools(x, 3);
  start_helper(x, 0, "helper", false);
}

static void ctl_setup_gc(ctx *x)
{
  gc_setup(x);
}

static void ctl_undo(ctx *x)
{
  const char *args[] = {"set", x->db[0], "max_connections=3", "acquire_timeout_ms=5000",
                        "paused=0", NULL};
  const char *cls = x->fault_class;
  x->fault_class = NULL;
  sb m = x->msg, a = x->answer;
  int rc = x->rc;
  memset(&x->msg, 0, sizeof x->msg);
  memset(&x->answer, 0, sizeof x->answer);
  run_ctl(x, args);
  sb_free(&x->msg);
  sb_free(&x->answer);
  x->msg = m;
  x->answer = a;
  x->rc = rc;
  x->fault_class = cls;
}

/* ------------------------------------------- documented other outcomes */

typedef struct result result;
static bool fault_named(const result *r, const char *text);

/* reap: a liveness check the kernel does not answer counts the process as
** alive (liveness.c: reclaiming a live process's slot would break the
** cap); its slots come back at the next reap. */
static bool alt_reap(const result *r, const result *ref);
/* A release whose rollback ran out of memory closes the connection (a
** connection that cannot be reset is never reused): the pool is left with
** one connection fewer, its slot given back. */
static bool alt_closed(const result *r, const result *ref);
/* A removal that cannot check or delete the segment's name leaves it
** marked removed (dbpool_coord_remove returns 1; dbpoolctl gc deletes it
** later): every opener skips it already. */
static bool alt_name_left(const result *r, const result *ref);
/* gc reports a pool it could not look at as kept, with the error as the
** reason: the caller sees why. */
static bool alt_gc(const result *r, const result *ref);
/* Where a database file is cannot be told when a stat of it fails: shown
** as "unknown" (dbpool_coord_file_state), not guessed. */
static bool alt_file_unknown(const result *r, const result *ref);

/* ------------------------------------------------------------ the table */

static void nothing(ctx *x) { (void)x; }
static void no_probe(ctx *x, sb *out) { (void)x; (void)out; }

static const op g_ops[] = {
    /* the extension */
    {"load", K_SQL, F_LOAD, NULL, load_setup, run_load, probe_holders, close_opened},
    {"open", K_SQL, 0, NULL, sql_setup, run_open, probe_holders, close_opened},
    {"open_uri", K_SQL, 0, NULL, sql_setup, run_open_uri, probe_holders, close_opened},
    {"close", K_SQL, 0, NULL, sql_setup, run_close, probe_holders, reopen_conn},
    {"pool_stats", K_SQL, 0, NULL, sql_setup_two, run_stats, probe_holders, sql_cleanup},
    {"pool_stats_where", K_SQL, 0, NULL, sql_setup_two, run_stats_where, probe_holders, sql_cleanup},
    {"pool_connections", K_SQL, 0, NULL, sql_setup_two, run_connections, probe_holders, sql_cleanup},
    {"pool_connections_where", K_SQL, 0, NULL, sql_setup_two, run_connections_where, probe_holders,
     sql_cleanup},
    {"pool_settings", K_SQL, 0, NULL, sql_setup, run_settings, probe_holders, sql_cleanup},
    {"settings_update", K_SQL, 0, NULL, sql_setup, run_update, probe_holders, sql_cleanup},
    {"settings_update_txn", K_SQL, 0, NULL, sql_setup, run_update_txn, probe_holders, sql_cleanup},
    {"label", K_SQL, 0, NULL, sql_setup, run_label, probe_holders, sql_cleanup},
    {"label_clear", K_SQL, 0, NULL, sql_setup_two, run_label_clear, probe_holders, sql_cleanup},
    {"version", K_SQL, 0, NULL, sql_setup, run_version, probe_holders, sql_cleanup},
    {"pragma_get", K_SQL, 0, NULL, sql_setup, run_pragma_get, probe_holders, sql_cleanup},
    {"pragma_acquire_timeout", K_SQL, F_PRAGMA_SET, NULL, sql_setup, run_pragma_timeout, probe_holders,
     sql_cleanup},
    {"pragma_max_connections", K_SQL, F_PRAGMA_SET, NULL, sql_setup, run_pragma_max, probe_holders, sql_cleanup},
    {"pragma_paused", K_SQL, F_PRAGMA_SET, NULL, sql_setup, run_pragma_paused, probe_holders, sql_cleanup},
    {"pragma_writer_queue", K_SQL, F_PRAGMA_SET, NULL, sql_setup, run_pragma_queue, probe_holders, sql_cleanup},
    {"pragma_writer_starvation", K_SQL, F_PRAGMA_SET, NULL, sql_setup, run_pragma_starve, probe_holders,
     sql_cleanup},
    {"pragma_stats", K_SQL, 0, NULL, sql_setup, run_pragma_stats, probe_holders, sql_cleanup},
    {"write_wal", K_SQL, 0, NULL, sql_setup_wal, run_write, probe_rows, write_cleanup},
    {"checkpoint", K_SQL, 0, NULL, sql_setup_ckpt, run_checkpoint, probe_rows, sql_cleanup},
    /* the C pool */
    {"pool_open", K_POOL, 0, NULL, coord_setup, run_pool_open, probe_pool, close_pool},
    {"pool_acquire", K_POOL, 0, NULL, pool_setup, run_pool_acquire, probe_pool, release_pooled},
    {"pool_acquire_idle", K_POOL, 0, NULL, pool_setup_idle, run_pool_acquire, probe_pool,
     release_pooled},
    {"pool_release_dirty", K_POOL, 0, alt_closed, pool_setup_dirty, run_pool_dirty_release, probe_pool,
     nothing},
    {"pool_close", K_POOL, 0, NULL, pool_setup_idle, run_pool_close, probe_pool, pool_reopen},
    /* the coordinator */
    {"coord_open", K_COORD, 0, NULL, coord_setup, run_coord_open, no_probe, close_g_opened},
    {"coord_create", K_COORD, F_CREATES, NULL, coord_setup_two, run_coord_create, no_probe, close_g_opened},
    {"holder_new", K_COORD, 0, NULL, coord_setup_open, run_holder_new, probe_holders, free_g_holder},
    {"acquire", K_COORD, 0, NULL, coord_setup_holder, run_acquire, probe_holders, release_holder},
    {"acquire_wait", K_COORD, 0, NULL, coord_setup_wait, run_acquire_wait, probe_holders,
     release_and_rearm_helper},
    {"stats", K_COORD, 0, NULL, coord_setup_held, run_stats_op, no_probe, nothing},
    {"holders", K_COORD, 0, NULL, coord_setup_held, run_holders, no_probe, nothing},
    {"list", K_COORD, 0, NULL, coord_setup, run_list, no_probe, nothing},
    {"gc", K_COORD, 0, alt_gc, gc_setup, run_gc, no_probe, nothing},
    {"remove", K_COORD, 0, alt_name_left, coord_setup, run_remove, no_probe, nothing},
    {"set", K_COORD, 0, NULL, coord_setup_open, run_set, no_probe, undo_set},
    {"reap", K_COORD, 0, alt_reap, reap_setup, run_reap, probe_holders, nothing},
    /* dbpoolctl */
    {"ctl_list", K_CTL, 0, alt_file_unknown, ctl_setup, run_ctl_list, no_probe, nothing},
    {"ctl_list_json", K_CTL, 0, alt_file_unknown, ctl_setup, run_ctl_list_json, no_probe, nothing},
    {"ctl_status", K_CTL, 0, alt_file_unknown, ctl_setup, run_ctl_status, no_probe, nothing},
    {"ctl_status_json", K_CTL, 0, alt_file_unknown, ctl_setup, run_ctl_status_json, no_probe, nothing},
    {"ctl_set", K_CTL, 0, NULL, ctl_setup, run_ctl_set, no_probe, ctl_undo},
    {"ctl_pause", K_CTL, 0, NULL, ctl_setup, run_ctl_pause, no_probe, ctl_undo},
    {"ctl_reap", K_CTL, 0, NULL, ctl_setup, run_ctl_reap, no_probe, nothing},
    {"ctl_rm", K_CTL, 0, alt_name_left, ctl_setup, run_ctl_rm, no_probe, nothing},
    {"ctl_gc", K_CTL, 0, alt_gc, ctl_setup_gc, run_ctl_gc, no_probe, nothing},
    {"ctl_metrics", K_CTL, 0, alt_file_unknown, ctl_setup, run_ctl_metrics, no_probe, nothing},
};
#define N_OPS (int)(sizeof g_ops / sizeof *g_ops)

/* Teardown shared by every operation: whatever setup left. */
static void teardown(ctx *x)
{
  fault_disarm();
  stop_helper(x);
  if (x->pooled && x->pool) dbpool_release(x->pool, x->pooled);
  if (x->pool) dbpool_close(x->pool);
  dbpool_holder_free(x->holder);
  dbpool_coord_close(x->coord);
  sqlite3_close(x->opened);
  sqlite3_close(x->conn2);
  sqlite3_close(x->conn);
  sqlite3_close(x->boot);
}

/* ------------------------------------------------------ one run (child) */

static void emit(const char *key, const char *value)
{
  printf("%s=", key);
  for (const char *p = value; *p; p++) {
    if (*p == '\n') fputs("\\n", stdout);
    else if (*p == '\\') fputs("\\\\", stdout);
    else putchar(*p);
  }
  putchar('\n');
}

static int rm_cb(const char *name, void *arg)
{
  (void)arg;
  dbpool_coord_remove(NULL, name, 1);
  return 0;
}

static const op *find_op(const char *name)
{
  for (int i = 0; i < N_OPS; i++)
    if (strcmp(g_ops[i].name, name) == 0) return &g_ops[i];
  return NULL;
}

static void build_paths(ctx *x)
{
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", g_self);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  slash = strrchr(dir, '/'); /* .../tests -> the build directory */
  if (slash) *slash = 0;
  snprintf(x->ext, sizeof x->ext, "%s/dbpool", dir);
  snprintf(x->ctl, sizeof x->ctl, "%s/dbpoolctl", dir);
}

/* The run's directory: files only (databases, journals, reports). */
static void remove_dir(const char *dir)
{
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[PATH_MAX];
  while (d && (e = readdir(d)))
    if (e->d_name[0] != '.' || (e->d_name[1] && strcmp(e->d_name, ".."))) {
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      unlink(path);
    }
  if (d) closedir(d);
  if (rmdir(dir) != 0) fprintf(stderr, "cannot remove %s: %s\n", dir, strerror(errno));
}

/* Each run's namespace and directory, named by the driver (which removes
** what a run that crashed left): never one of an earlier run. */
static void run_names(long serial, char *ns, size_t ns_cap, char *dir, size_t dir_cap)
{
  const char *run = getenv("DBPOOL_TEST_RUN");
  snprintf(ns, ns_cap, "%sf%dn%ld", run ? run : "", (int)g_driver, serial);
  /* On tmpfs: SQLite's fsyncs cost nothing, so a run is mostly its own
  ** work (on disk, waiting for them doubled the suite's time here). */
  snprintf(dir, dir_cap, "/dev/shm/dbpool-fault-%s", ns);
}

static void remove_leftovers(const char *ns, const char *dir)
{
  char prefix[64], path[PATH_MAX];
  snprintf(prefix, sizeof prefix, "dbpool.%s.", ns);
  DIR *d = opendir("/dev/shm");
  struct dirent *e;
  while (d && (e = readdir(d)))
    if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) {
      snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
      unlink(path);
    }
  if (d) closedir(d);
  if (access(dir, F_OK) == 0) remove_dir(dir);
}

static int child_main(const char *opname, const char *cls, long n, const char *mode,
                      long serial)
{
  const op *o = find_op(opname);
  if (!o) die("no operation %s", opname);
  ctx x;
  memset(&x, 0, sizeof x);
  x.kind = o->kind;
  build_paths(&x);
  run_names(serial, x.ns, sizeof x.ns, x.dir, sizeof x.dir);
  setenv("DBPOOL_NAMESPACE", x.ns, 1);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  unsetenv("DBPOOL_ACQUIRE_TIMEOUT_MS");
  remove_leftovers(x.ns, x.dir);
  if (mkdir(x.dir, 0755) != 0) die("mkdir %s: %s", x.dir, strerror(errno));
  sqlite_with_faults(); /* before SQLite initializes */
  for (int i = 0; i < 3; i++) {
    snprintf(x.db[i], sizeof x.db[i], "%s/%c.db", x.dir, 'a' + i);
    make_db(x.db[i]);
  }
  bool persist = strcmp(mode, "persist") == 0;

  o->setup(&x);
  sb base = {0}, after = {0}, retry = {0};
  o->probe(&x, &base);
  common_state(&x, &base);

  if (o->kind == K_CTL) {
    x.fault_class = cls;
    x.fault_n = n;
    x.fault_persist = persist;
    o->run(&x);
    x.fault_class = NULL;
  } else {
    fault_arm(cls, n, persist);
    o->run(&x);
    fault_disarm();
    x.ext_calls = fault_calls();
    x.ext_fired = fault_fired();
    x.ext_errno = fault_errno();
    for (int e = 1; e < 64; e++)
      if (fault_injected(e)) x.ext_errnos |= 1ull << e;
    snprintf(x.ext_site, sizeof x.ext_site, "%s", fault_site());
  }
  o->probe(&x, &after);
  o->cleanup(&x);
  common_state(&x, &after);

  printf("rc=%d\n", x.rc);
  emit("msg", sb_str(&x.msg));
  emit("answer", sb_str(&x.answer));
  emit("baseline", sb_str(&base));
  emit("after", sb_str(&after));
  printf("calls=%ld\nfired=%ld\nsite=%s\nerrno=%d\nerrnos=%llu\n", x.ext_calls,
         x.ext_fired, x.ext_site[0] ? x.ext_site : "-", x.ext_errno, x.ext_errnos);
  if (x.rc) { /* the same without faults */
    x.rc = 0;
    sb_reset(&x.msg);
    sb_reset(&x.answer);
    o->run(&x);
    o->probe(&x, &retry);
    o->cleanup(&x);
    common_state(&x, &retry);
    printf("retry_rc=%d\n", x.rc);
    emit("retry_msg", sb_str(&x.msg));
    emit("retry_answer", sb_str(&x.answer));
    emit("retry_after", sb_str(&retry));
  }
  fflush(stdout);
  teardown(&x);
  dbpool_coord_list(rm_cb, NULL);
  remove_dir(x.dir);
  sb_free(&base);
  sb_free(&after);
  sb_free(&retry);
  sb_free(&x.msg);
  sb_free(&x.answer);
  sqlite3_shutdown();
  return 0;
}

/* ------------------------------------------------------- the driver */

typedef struct result {
  int status;  /* the child's exit status, or 128 + signal, -1 hung */
  int rc;
  char *msg, *answer, *baseline, *after;
  long calls, fired;
  char site[32];
  int err;
  unsigned long long errnos; /* every errno injected */
  bool retried;
  int retry_rc;
  char *retry_msg, *retry_answer, *retry_after;
  char *stderr_text;
} result;

static char *unescape(const char *v)
{
  char *out = malloc(strlen(v) + 1), *o = out;
  for (; *v; v++) {
    if (*v == '\\' && v[1] == 'n') *o++ = '\n', v++;
    else if (*v == '\\' && v[1] == '\\') *o++ = '\\', v++;
    else *o++ = *v;
  }
  *o = 0;
  return out;
}

static void free_result(result *r)
{
  free(r->msg);
  free(r->answer);
  free(r->baseline);
  free(r->after);
  free(r->retry_msg);
  free(r->retry_answer);
  free(r->retry_after);
  free(r->stderr_text);
  memset(r, 0, sizeof *r);
}

static char *read_all(int fd)
{
  sb b = {0};
  char buf[4096];
  ssize_t k;
  sb_add(&b, "%s", "");
  while ((k = read(fd, buf, sizeof buf)) > 0 || (k < 0 && errno == EINTR))
    if (k > 0) sb_add(&b, "%.*s", (int)k, buf);
  return b.s;
}

static double now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A child run in flight. */
typedef struct job {
  long serial;
  pid_t pid;
  int out, err;
  double started;
  const op *o;
  const char *cls;
  long n;
  bool persist;
} job;

static long g_serial;

static void start_job(job *j, const op *o, const char *cls, long n, bool persist)
{
  long serial = ++g_serial;
  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) die("pipe: %s", strerror(errno));
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) die("fork: %s", strerror(errno));
  if (pid == 0) { /* a fresh process: the driver itself never uses dbpool */
    dup2(out[1], 1);
    dup2(err[1], 2);
    close(out[0]);
    close(err[0]);
    close(out[1]);
    close(err[1]);
    exit(child_main(o->name, cls, n, persist ? "persist" : "once", serial));
  }
  close(out[1]);
  close(err[1]);
  *j = (job){serial, pid, out[0], err[0], now_ms(), o, cls, n, persist};
}

/* Collect a finished (or hung) job's result. Output is small: read after
** the exit (pipes hold 64 KiB). */
static void finish_job(job *j, result *r)
{
  memset(r, 0, sizeof *r);
  int status;
  double limit = 120000; /* a hung run is a failure, not a hung suite */
  for (;;) {
    pid_t w = waitpid(j->pid, &status, WNOHANG);
    if (w == j->pid) break;
    if (now_ms() - j->started > limit) {
      kill(j->pid, SIGKILL);
      waitpid(j->pid, &status, 0);
      status = -1;
      break;
    }
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
  }
  char *out = read_all(j->out), *err = read_all(j->err);
  close(j->out);
  close(j->err);
  char ns[40], dir[256];
  run_names(j->serial, ns, sizeof ns, dir, sizeof dir);
  remove_leftovers(ns, dir); /* a run that crashed cleaned nothing */
  r->status = status == -1 ? -1 : WIFEXITED(status) ? WEXITSTATUS(status)
                                                    : 128 + WTERMSIG(status);
  r->stderr_text = err;
  for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
    char *eq = strchr(line, '=');
    if (!eq) continue;
    *eq = 0;
    const char *k = line, *v = eq + 1;
    if (!strcmp(k, "rc")) r->rc = atoi(v);
    else if (!strcmp(k, "msg")) r->msg = unescape(v);
    else if (!strcmp(k, "answer")) r->answer = unescape(v);
    else if (!strcmp(k, "baseline")) r->baseline = unescape(v);
    else if (!strcmp(k, "after")) r->after = unescape(v);
    else if (!strcmp(k, "calls")) r->calls = atol(v);
    else if (!strcmp(k, "fired")) r->fired = atol(v);
    else if (!strcmp(k, "site")) snprintf(r->site, sizeof r->site, "%s", v);
    else if (!strcmp(k, "errno")) r->err = atoi(v);
    else if (!strcmp(k, "errnos")) r->errnos = strtoull(v, NULL, 10);
    else if (!strcmp(k, "retry_rc")) r->retried = true, r->retry_rc = atoi(v);
    else if (!strcmp(k, "retry_msg")) r->retry_msg = unescape(v);
    else if (!strcmp(k, "retry_answer")) r->retry_answer = unescape(v);
    else if (!strcmp(k, "retry_after")) r->retry_after = unescape(v);
  }
  free(out);
  if (!r->msg) r->msg = strdup("");
  if (!r->answer) r->answer = strdup("");
  if (!r->baseline) r->baseline = strdup("");
  if (!r->after) r->after = strdup("");
}

static int g_failures;

static void report_failure(const job *j, const result *r, const char *what,
                           const char *detail)
{
  g_failures++;
  fprintf(stderr,
          "FAIL %s: %s fault %s call %ld (%s, %s): %s\n"
          "  rc=%d msg='%s'\n%s%s"
          "  again: DBPOOL_FAULT_TRACE=1 %s --child %s %s %ld %s\n",
          j->o->name, j->cls, j->persist ? "from" : "at", j->n, r->site,
          strerror(r->err), what, r->rc, r->msg, detail ? detail : "",
          detail ? "\n" : "", g_self, j->o->name, j->cls, j->n,
          j->persist ? "persist" : "once");
  if (r->stderr_text && *r->stderr_text)
    fprintf(stderr, "  stderr:\n%.4000s\n", r->stderr_text);
}

/* The lines that differ (both texts are lists of lines). */
static char *diff_text(const char *want, const char *got)
{
  sb b = {0};
  const char *w = want, *g = got;
  while (*w || *g) {
    size_t wl = strcspn(w, "\n"), gl = strcspn(g, "\n");
    if (wl != gl || strncmp(w, g, wl) != 0)
      sb_add(&b, "  want: %.*s\n  got:  %.*s\n", (int)wl, w, (int)gl, g);
    w += wl + (w[wl] == '\n');
    g += gl + (g[gl] == '\n');
  }
  if (b.n && b.s[b.n - 1] == '\n') b.s[--b.n] = 0;
  return b.s ? b.s : strdup("  (same lines)");
}

/* Is rc the "out of memory" code of this kind of operation? */
static bool is_nomem(const op *o, int rc, const char *msg)
{
  if ((o->flags & F_LOAD) && rc == SQLITE_ERROR)
    return strstr(msg, "out of memory") || strstr(msg, strerror(ENOMEM));
  switch (o->kind) {
  case K_COORD: return rc == -ENOMEM;
  case K_SQL:
  case K_POOL: return (rc & 0xff) == SQLITE_NOMEM;
  case K_CTL: return strstr(msg, "out of memory") || strstr(msg, strerror(ENOMEM));
  }
  return false;
}

/* SQLite's own text for the code: no word about what failed. */
static bool bare_message(const op *o, int rc, const char *msg)
{
  if (!*msg) return true;
  if ((o->flags & F_LOAD) && strcmp(msg, "error during initialization: ") == 0) return true;
  if (o->kind == K_SQL || o->kind == K_POOL)
    return strcmp(msg, sqlite3_errstr(rc)) == 0 && (rc & 0xff) != SQLITE_NOMEM;
  return false;
}

/* Does a message name the system's reason for errno e? A full /dev/shm is
** named as such, with the room left (segment.c). */
static bool says_why_one(const char *msg, int e)
{
  return strstr(msg, strerror(e)) || (e == ENOSPC && strstr(msg, "is full")) ||
         (e == ENOMEM && strstr(msg, "out of memory"));
}

/* ... for any of the errnos injected (persistently, later calls fail too,
** and the error may be theirs). */
static bool says_why(const char *msg, unsigned long long errnos)
{
  for (int e = 1; e < 64; e++)
    if ((errnos >> e & 1) && says_why_one(msg, e)) return true;
  return false;
}

static bool fault_named(const result *r, const char *text)
{
  return says_why(text, r->errnos) || strstr(text, "out of memory");
}

static bool alt_reap(const result *r, const result *ref)
{
  return !strcmp(r->answer, ref->answer) && (r->errnos >> ENOLCK & 1) &&
         !strcmp(r->after, r->baseline);
}

static bool alt_closed(const result *r, const result *ref)
{
  return !strcmp(r->answer, ref->answer) && !strcmp(r->after, r->baseline);
}

/* The pool was marked removed but its name could not be deleted (a stat or
** the unlink failed): documented (dbpool_coord_remove returns 1), and
** dbpoolctl says why. */
static bool alt_name_left(const result *r, const result *ref)
{
  (void)ref;
  const char *marked = strstr(r->answer, "marked the pool");
  return (strstr(r->answer, "removed=1") || (marked && fault_named(r, marked))) &&
         strstr(r->after, "file=removed");
}

static bool alt_gc(const result *r, const result *ref)
{
  (void)ref;
  const char *k = strstr(r->answer, "kept");
  return (k && fault_named(r, k)) || alt_name_left(r, ref);
}

/* text with "unknown" read as "ok" and every run of blanks as one space
** (the columns of a table are as wide as their widest value). */
static char *as_known(const char *text)
{
  char *out = malloc(strlen(text) + 1), *o = out;
  for (const char *t = text; *t;) {
    if (strncmp(t, "unknown", 7) == 0) {
      memcpy(o, "ok", 2), o += 2, t += 7;
    } else if (*t == ' ') {
      *o++ = ' ';
      while (*t == ' ') t++;
    } else {
      *o++ = *t++;
    }
  }
  *o = 0;
  return out;
}

/* A system call failed while looking at the database file: the answer
** says its state is unknown (dbpool_coord_file_state), and is otherwise the
** reference answer. Only system calls: a failed allocation must not. */
static bool alt_file_unknown(const result *r, const result *ref)
{
  char *a = as_known(r->answer), *b = as_known(ref->answer);
  bool same = !strcmp(a, b) && strstr(r->answer, "unknown") && r->errnos != 0 &&
              !(r->errnos >> ENOMEM & 1);
  free(a);
  free(b);
  return same;
}

/* Check one run; true if the fault fired (so that a later N may fire too). */
static bool check(const job *j, result *r, const result *ref)
{
  char *d = NULL;
  if (r->status != 0) {
    report_failure(j, r, r->status == 23 ? "leak (LSan)" : r->status == -1
                   ? "hung" : "the run crashed or failed", NULL);
    return r->fired > 0 || r->status != 0;
  }
  if (j->o->kind == K_CTL && (r->rc == 23 || strstr(r->msg, "Sanitizer"))) {
    report_failure(j, r, r->rc == 23 ? "dbpoolctl leaks (LSan)" : "dbpoolctl: memory error",
                   NULL);
    return true;
  }
  if (!r->fired) return false;
  if (r->rc == 0 && j->o->alt_ok && j->o->alt_ok(r, ref)) return true;
  if (r->rc == 0) {
    if (strcmp(r->answer, ref->answer) != 0)
      report_failure(j, r, "succeeded with another answer",
                     d = diff_text(ref->answer, r->answer));
    else if (strcmp(r->after, ref->after) != 0)
      report_failure(j, r, "succeeded but left another state",
                     d = diff_text(ref->after, r->after));
    free(d);
    return true;
  }
  bool sys = !strcmp(j->cls, "sys");
  /* When every later allocation fails, so does the one for the message. */
  bool no_room = !sys && j->persist &&
                 (!*r->msg || ((j->o->flags & F_LOAD) &&
                               !strcmp(r->msg, "error during initialization: ")));
  if (bare_message(j->o, r->rc, r->msg) && !no_room)
    report_failure(j, r, "failed without saying why", NULL);
  else if (!sys && !no_room && !is_nomem(j->o, r->rc, r->msg))
    report_failure(j, r, "an allocation failed, but the error is not out-of-memory", NULL);
  else if (sys && !(r->errnos >> ENOMEM & 1) && is_nomem(j->o, r->rc, r->msg))
    report_failure(j, r, "a system call failed, but the error says out of memory", NULL);
  else if (sys && !says_why(r->msg, r->errnos))
    report_failure(j, r, "a system call failed, but the message does not say why", NULL);
  else if (strcmp(r->after, r->baseline) != 0 &&
           !((j->o->flags & F_PRAGMA_SET) && !strcmp(j->cls, "sqlite") &&
             !strcmp(r->after, ref->after)) &&
           !((j->o->flags & F_CREATES) && !strcmp(r->after, ref->after)))
    report_failure(j, r, "failed but changed something",
                   d = diff_text(r->baseline, r->after));
  else if (!r->retried || r->retry_rc != 0)
    report_failure(j, r, "failed, and failed again without faults",
                   d = diff_text("success", r->retry_msg ? r->retry_msg : "(no retry)"));
  else if (strcmp(r->retry_answer, ref->answer) != 0)
    report_failure(j, r, "the retry gave another answer",
                   d = diff_text(ref->answer, r->retry_answer));
  else if (strcmp(r->retry_after, ref->after) != 0)
    report_failure(j, r, "the retry left another state",
                   d = diff_text(ref->after, r->retry_after));
  free(d);
  return true;
}

/* Run jobs two at a time (this machine has two CPUs; each run is mostly
** process start-up and ASan's leak check at exit). */
#define PARALLEL 2

typedef struct plan {
  const op *o;
  const char *cls;
  bool persist;
  long stride; /* every stride-th N */
  long next, limit;
  bool done;
  bool pinned; /* one run, N = next, whatever the others find */
} plan;

static long g_runs;

static void run_plans(plan *plans, int np, const result *ref)
{
  job jobs[PARALLEL];
  bool pinned[PARALLEL];
  int pi = 0;
  for (;;) {
    int started = 0;
    for (int k = 0; k < PARALLEL; k++) {
      while (pi < np && (plans[pi].done || plans[pi].next > plans[pi].limit)) pi++;
      if (pi >= np) break;
      plan *p = &plans[pi];
      start_job(&jobs[k], p->o, p->cls, p->next, p->persist);
      pinned[k] = p->pinned;
      if (p->pinned) p->done = true;
      else p->next += p->stride;
      started++;
    }
    if (!started) break;
    for (int k = 0; k < started; k++) {
      result r;
      finish_job(&jobs[k], &r);
      g_runs++;
      bool fired = check(&jobs[k], &r, ref);
      if (!fired && !pinned[k])
        for (int q = 0; q < np; q++)
          if (!plans[q].pinned && plans[q].o == jobs[k].o && plans[q].cls == jobs[k].cls &&
              plans[q].persist == jobs[k].persist)
            plans[q].done = true;
      free_result(&r);
    }
  }
}

/* Runs that a FAULT_FULL=1 run found failing, kept in the quick mode. */
static const struct regression {
  const char *op, *cls;
  long n;
  bool persist;
} g_regressions[] = {
    /* SQLite's parser fails inside PRAGMA dbpool_X = V and still asks the
    ** VFS (value lost): the extension's deferred tables were registered
    ** in SQLite's failed-allocation state, whose create_module_v2 both
    ** keeps the module and calls its destructor (a use after free at
    ** close; ext/connection.c dbx_register_module). */
    {"pragma_acquire_timeout", "sqlite", 5, false},
    {"pragma_max_connections", "sqlite", 5, false},
    {"pragma_paused", "sqlite", 5, false},
    {"pragma_writer_queue", "sqlite", 5, false},
    {"pragma_writer_starvation", "sqlite", 5, false},
    /* SQLite's own allocations in sqlite3_load_extension: what it tells a
    ** client is the code's text, or nothing when its message is lost. */
    {"load", "sqlite", 108, false},
    {"load", "sqlite", 110, true},
};
#define N_REGRESSIONS ((int)(sizeof g_regressions / sizeof g_regressions[0]))

static void drive(const op *o, bool full)
{
  double t0 = now_ms();
  /* SQLite's allocations only where SQLite runs. */
  static const char *all_classes[] = {"alloc", "sys", "sqlite"};
  int nc = o->kind == K_SQL || o->kind == K_POOL ? 3 : 2;
  result ref[3];
  long calls[3];
  long before = g_runs;
  int failures = g_failures;
  for (int c = 0; c < nc; c++) {
    job j;
    start_job(&j, o, all_classes[c], 0, false);
    finish_job(&j, &ref[c]);
    g_runs++;
    calls[c] = ref[c].calls;
    if (ref[c].status != 0 || ref[c].rc != 0) {
      report_failure(&j, &ref[c], "fails without faults", NULL);
      for (int k = 0; k <= c; k++) free_result(&ref[k]);
      return;
    }
  }
  for (int c = 1; c < nc; c++)
    if (strcmp(ref[0].answer, ref[c].answer) != 0 || strcmp(ref[0].after, ref[c].after) != 0) {
      fprintf(stderr, "FAIL %s: two runs without faults disagree:\n  %s  %s\n  %s  %s\n",
              o->name, ref[0].answer, ref[0].after, ref[c].answer, ref[c].after);
      g_failures++;
    }
  /* FAULT_FULL=1: every call of every class, once and persistently. make
  ** test's quick mode (about two minutes of CPU on two CPUs) fails up to
  ** 16 of dbpool's own allocations once -- where the wrong behaviours of
  ** issue 11 were found: all of them in every operation but three
  ** dbpoolctl ones and pool_connections -- and a spread of the rest: the
  ** Nth calls at an even stride from the first, at most
  ** quick_cap[class][once, persist] of them. */
  static const long quick_cap[3][2] = {{16, 3}, {6, 2}, {3, 2}};
  /* dbpoolctl's runs each start a program under ASan (several times the
  ** cost of a forked run), and its five listings share one code path. */
  static const long quick_cap_ctl[2][2] = {{8, 2}, {4, 2}};
  plan plans[6 + N_REGRESSIONS];
  int np = 0;
  /* Runs a FAULT_FULL run once failed, first and whatever the spread
  ** covers (their call numbers hold while the operation's setup does). */
  for (int i = 0; !full && i < N_REGRESSIONS; i++)
    for (int c = 0; c < nc; c++)
      if (!strcmp(g_regressions[i].op, o->name) && !strcmp(g_regressions[i].cls, all_classes[c]))
        plans[np++] = (plan){o, all_classes[c], g_regressions[i].persist, 1,
                             g_regressions[i].n, g_regressions[i].n, false, true};
  for (int c = 0; c < nc; c++)
    for (int m = 0; m < 2; m++) {
      long cap = full ? LONG_MAX : o->kind == K_CTL ? quick_cap_ctl[c][m] : quick_cap[c][m];
      long stride = calls[c] > cap ? (calls[c] + cap - 1) / cap : 1;
      plans[np++] = (plan){o, all_classes[c], m == 1, stride, 1 + (m ? stride / 2 : 0),
                           calls[c] + 1, false, false};
    }
  run_plans(plans, np, &ref[0]);
  printf("%-26s %4ld+%-4ld allocations %4ld system calls %5ld runs %6.1f s%s\n", o->name,
         calls[0], nc > 2 ? calls[2] : 0, calls[1], g_runs - before, (now_ms() - t0) / 1000,
         g_failures > failures ? "  FAILED" : "");
  fflush(stdout);
  for (int c = 0; c < nc; c++) free_result(&ref[c]);
}

int main(int argc, char **argv)
{
  ssize_t k = readlink("/proc/self/exe", g_self, sizeof g_self - 1);
  if (k <= 0) die("readlink /proc/self/exe: %s", strerror(errno));
  g_self[k] = 0;
  g_driver = getpid();
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (argc == 6 && strcmp(argv[1], "--child") == 0)
    return child_main(argv[2], argv[3], atol(argv[4]), argv[5], 0);
  if (argc == 2 && strcmp(argv[1], "--list") == 0) {
    for (int i = 0; i < N_OPS; i++) printf("%s\n", g_ops[i].name);
    return 0;
  }
  const char *full_env = getenv("FAULT_FULL");
  bool full = full_env && *full_env && *full_env != '0';
  double t0 = now_ms();
  for (int i = 0; i < N_OPS; i++) {
    bool chosen = argc == 1;
    for (int a = 1; a < argc; a++) chosen = chosen || !strcmp(argv[a], g_ops[i].name);
    if (chosen) drive(&g_ops[i], full);
  }
  printf("faults: %ld runs in %.0f s, %d failure%s\n", g_runs, (now_ms() - t0) / 1000,
         g_failures, g_failures == 1 ? "" : "s");
  return g_failures ? 1 : 0;
}
