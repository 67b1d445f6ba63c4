/*
** pool_stats.c -- the eponymous virtual table pool_stats: one row per pool
** on the host that this user can read (the current database's included),
** with the statistics every process shares.
**
**   .load ./build/dbpool
**   SELECT database, active, max_connections, waiting, p99_wait_ms
**     FROM pool_stats;
**   SELECT * FROM pool_stats WHERE database = '/srv/app.db';
**
** Columns: see STATS_SCHEMA. Counters are cumulative since the pool was
** created; wait percentiles are over all acquires (those that did not wait
** count as 0 ms) and are the middle of a histogram bucket at most 12.5% wide.
** utilization is active / max_connections. records_in_use counts the
** holder records processes own (one per connection or waiter, at most
** records_max, 8191): when they run out every open fails, whatever active
** says. The writer columns describe the writer queue (writer_gate.c):
** writer_queue is 'on', 'off' or why it is inactive; write-wait percentiles
** are over every write transaction that took the turn (those that did not
** wait count as 0 ms).
**
** WHERE database = ? reads only that pool (the path may be relative or a
** symlink: the pool is found by the file's identity, and the row is kept
** only if its recorded absolute path equals the value given).
**
** LIMITATIONS
**   - Pools of other namespaces (DBPOOL_NAMESPACE) are not listed.
**   - Each scan maps every pool: cheap, but not free with thousands.
*/
#include <string.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

#define STATS_SCHEMA                                                        \
  "CREATE TABLE x(database TEXT, max_connections INTEGER, active INTEGER, " \
  "idle INTEGER, waiting INTEGER, peak_active INTEGER, processes INTEGER, " \
  "total_acquired INTEGER, total_released INTEGER, total_timeouts INTEGER, " \
  "total_reclaimed INTEGER, avg_wait_ms REAL, p50_wait_ms REAL, "           \
  "p95_wait_ms REAL, p99_wait_ms REAL, max_wait_ms REAL, utilization REAL, " \
  "paused INTEGER, acquire_timeout_ms INTEGER, created_at TEXT, "          \
  "records_in_use INTEGER, records_max INTEGER, file TEXT, "              \
  "writer_queue TEXT, writers_waiting INTEGER, total_writes INTEGER, "       \
  "total_write_waits INTEGER, write_wait_p50_ms REAL, write_wait_p99_ms REAL, " \
  "write_wait_p999_ms REAL, write_wait_max_ms REAL, writer_turns_skipped "  \
  "INTEGER, writer_turns_expired INTEGER)"
#define COL_DATABASE 0
#define COL_MAX_CONNECTIONS 1
#define COL_ACTIVE 2
#define COL_IDLE 3
#define COL_WAITING 4
#define COL_PEAK_ACTIVE 5
#define COL_PROCESSES 6
#define COL_TOTAL_ACQUIRED 7
#define COL_TOTAL_RELEASED 8
#define COL_TOTAL_TIMEOUTS 9
#define COL_TOTAL_RECLAIMED 10
#define COL_AVG_WAIT_MS 11
#define COL_P50_WAIT_MS 12
#define COL_P95_WAIT_MS 13
#define COL_P99_WAIT_MS 14
#define COL_MAX_WAIT_MS 15
#define COL_UTILIZATION 16
#define COL_PAUSED 17
#define COL_ACQUIRE_TIMEOUT_MS 18
#define COL_CREATED_AT 19
#define COL_RECORDS_IN_USE 20
#define COL_RECORDS_MAX 21
#define COL_FILE 22
#define COL_WRITER_QUEUE 23
#define COL_WRITERS_WAITING 24
#define COL_TOTAL_WRITES 25
#define COL_TOTAL_WRITE_WAITS 26
#define COL_WRITE_WAIT_P50_MS 27
#define COL_WRITE_WAIT_P99_MS 28
#define COL_WRITE_WAIT_P999_MS 29
#define COL_WRITE_WAIT_MAX_MS 30
#define COL_WRITER_TURNS_SKIPPED 31
#define COL_WRITER_TURNS_EXPIRED 32

typedef struct stats_row {
  char database[DBPOOL_PATH_MAX];
  dbpool_host_stats st;
  dbpool_file_state file;
  dbpool_writer_stats ws;
} stats_row;

typedef struct stats_vtab {
  sqlite3_vtab base;
} stats_vtab;

typedef struct stats_cursor {
  sqlite3_vtab_cursor base;
  stats_row *rows;
  int n, cap, i;
} stats_cursor;

static int stats_connect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr)
{
  stats_vtab *v;
  int rc;
  (void)pAux;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(db, STATS_SCHEMA);
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int stats_disconnect(sqlite3_vtab *pVtab)
{
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

static int stats_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor)
{
  stats_cursor *cur = sqlite3_malloc64(sizeof *cur);
  (void)pVtab;
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCursor = &cur->base;
  return SQLITE_OK;
}

static int stats_close(sqlite3_vtab_cursor *pCur)
{
  stats_cursor *cur = (stats_cursor *)pCur;
  sqlite3_free(cur->rows);
  sqlite3_free(cur);
  return SQLITE_OK;
}

/* Append the row of one pool. */
static int add_pool(void *arg, dbpool_coord *c, char **pzErr)
{
  stats_cursor *cur = arg;
  if (cur->n == cur->cap) {
    int cap = cur->cap ? cur->cap * 2 : 4;
    stats_row *rows = sqlite3_realloc64(cur->rows, (sqlite3_uint64)cap * sizeof *rows);
    if (!rows) return SQLITE_NOMEM;
    cur->rows = rows;
    cur->cap = cap;
  }
  stats_row *r = &cur->rows[cur->n];
  DBPOOL_INIT(&r->st);
  DBPOOL_INIT(&r->ws);
  int err = dbpool_coord_stats(c, &r->st);
  if (err == 0) err = dbpool_coord_writer_stats(c, &r->ws);
  if (err) {
    *pzErr = sqlite3_mprintf("%s", dbpool_last_error());
    return dbp_sqlite_rc(err, SQLITE_ERROR);
  }
  dbpool_coord_database(c, r->database, sizeof r->database);
  r->file = dbpool_coord_file_state(c);
  cur->n++;
  return SQLITE_OK;
}

/*
** idxNum 1: "database = ?" is usable; argv[0] is the path.
** idxNum 0: every pool.
*/
static int stats_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *info)
{
  (void)pVtab;
  info->idxNum = 0;
  info->estimatedCost = 1000;
  info->estimatedRows = 10;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *k = &info->aConstraint[i];
    if (!k->usable || k->iColumn != COL_DATABASE || k->op != SQLITE_INDEX_CONSTRAINT_EQ)
      continue;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 0; /* SQLite re-checks the path */
    info->idxNum = 1;
    info->estimatedCost = 10;
    info->estimatedRows = 1;
    break;
  }
  return SQLITE_OK;
}

static int stats_filter(sqlite3_vtab_cursor *pCur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv)
{
  stats_cursor *cur = (stats_cursor *)pCur;
  (void)idxStr;
  cur->n = cur->i = 0;
  const char *path = idxNum == 1 && argc == 1 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
  if (idxNum == 1 && !path) return SQLITE_OK; /* database = NULL: no rows */
  sqlite3_free(pCur->pVtab->zErrMsg);
  return dbx_for_each_pool(path, add_pool, cur, &pCur->pVtab->zErrMsg);
}

static int stats_next(sqlite3_vtab_cursor *pCur)
{
  ((stats_cursor *)pCur)->i++;
  return SQLITE_OK;
}

static int stats_eof(sqlite3_vtab_cursor *pCur)
{
  stats_cursor *cur = (stats_cursor *)pCur;
  return cur->i >= cur->n;
}

static double ms(uint64_t ns) { return (double)ns / 1e6; }

static int stats_column(sqlite3_vtab_cursor *pCur, sqlite3_context *ctx, int col)
{
  stats_cursor *cur = (stats_cursor *)pCur;
  const stats_row *r = &cur->rows[cur->i];
  const dbpool_host_stats *s = &r->st;
  const dbpool_writer_stats *w = &r->ws;
  switch (col) {
  case COL_DATABASE: sqlite3_result_text(ctx, r->database, -1, SQLITE_TRANSIENT); break;
  case COL_MAX_CONNECTIONS: sqlite3_result_int64(ctx, s->max_connections); break;
  case COL_ACTIVE: sqlite3_result_int64(ctx, s->active); break;
  case COL_IDLE: sqlite3_result_int64(ctx, s->idle); break;
  case COL_WAITING: sqlite3_result_int64(ctx, s->waiting); break;
  case COL_PEAK_ACTIVE: sqlite3_result_int64(ctx, s->peak_active); break;
  case COL_PROCESSES: sqlite3_result_int64(ctx, s->processes); break;
  case COL_TOTAL_ACQUIRED: sqlite3_result_int64(ctx, (sqlite3_int64)s->total_acquired); break;
  case COL_TOTAL_RELEASED: sqlite3_result_int64(ctx, (sqlite3_int64)s->total_released); break;
  case COL_TOTAL_TIMEOUTS: sqlite3_result_int64(ctx, (sqlite3_int64)s->total_timeouts); break;
  case COL_TOTAL_RECLAIMED: sqlite3_result_int64(ctx, (sqlite3_int64)s->total_reclaimed); break;
  case COL_AVG_WAIT_MS: sqlite3_result_double(ctx, ms(s->avg_wait_ns)); break;
  case COL_P50_WAIT_MS: sqlite3_result_double(ctx, ms(s->p50_wait_ns)); break;
  case COL_P95_WAIT_MS: sqlite3_result_double(ctx, ms(s->p95_wait_ns)); break;
  case COL_P99_WAIT_MS: sqlite3_result_double(ctx, ms(s->p99_wait_ns)); break;
  case COL_MAX_WAIT_MS: sqlite3_result_double(ctx, ms(s->max_wait_ns)); break;
  case COL_UTILIZATION:
    sqlite3_result_double(ctx, s->max_connections ? (double)s->active / s->max_connections : 0.0);
    break;
  case COL_PAUSED: sqlite3_result_int(ctx, s->paused); break;
  case COL_ACQUIRE_TIMEOUT_MS: sqlite3_result_int(ctx, s->acquire_timeout_ms); break;
  case COL_RECORDS_IN_USE: sqlite3_result_int64(ctx, s->records_in_use); break;
  case COL_RECORDS_MAX: sqlite3_result_int64(ctx, s->records_max); break;
  case COL_FILE:
    sqlite3_result_text(ctx, dbpool_file_state_name(cur->rows[cur->i].file), -1, SQLITE_STATIC);
    break;
  case COL_WRITER_QUEUE:
    sqlite3_result_text(ctx, dbpool_writer_queue_status(w), -1, SQLITE_STATIC);
    break;
  case COL_WRITERS_WAITING: sqlite3_result_int64(ctx, w->waiting); break;
  case COL_TOTAL_WRITES: sqlite3_result_int64(ctx, (sqlite3_int64)w->total_writes); break;
  case COL_TOTAL_WRITE_WAITS: sqlite3_result_int64(ctx, (sqlite3_int64)w->total_waits); break;
  case COL_WRITE_WAIT_P50_MS: sqlite3_result_double(ctx, ms(w->p50_wait_ns)); break;
  case COL_WRITE_WAIT_P99_MS: sqlite3_result_double(ctx, ms(w->p99_wait_ns)); break;
  case COL_WRITE_WAIT_P999_MS: sqlite3_result_double(ctx, ms(w->p999_wait_ns)); break;
  case COL_WRITE_WAIT_MAX_MS: sqlite3_result_double(ctx, ms(w->max_wait_ns)); break;
  case COL_WRITER_TURNS_SKIPPED: sqlite3_result_int64(ctx, (sqlite3_int64)w->turns_skipped); break;
  case COL_WRITER_TURNS_EXPIRED: sqlite3_result_int64(ctx, (sqlite3_int64)w->turns_expired); break;
  case COL_CREATED_AT: {
    char *t = dbx_iso8601(s->created_at_ns);
    if (t) sqlite3_result_text(ctx, t, -1, sqlite3_free);
    break;
  }
  }
  return SQLITE_OK;
}

static int stats_rowid(sqlite3_vtab_cursor *pCur, sqlite3_int64 *pRowid)
{
  *pRowid = ((stats_cursor *)pCur)->i + 1;
  return SQLITE_OK;
}

static sqlite3_module stats_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0, /* eponymous only */
    /* xConnect    */ stats_connect,
    /* xBestIndex  */ stats_best_index,
    /* xDisconnect */ stats_disconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ stats_open,
    /* xClose      */ stats_close,
    /* xFilter     */ stats_filter,
    /* xNext       */ stats_next,
    /* xEof        */ stats_eof,
    /* xColumn     */ stats_column,
    /* xRowid      */ stats_rowid,
    /* xUpdate     */ 0,
    /* xBegin      */ 0,
    /* xSync       */ 0,
    /* xCommit     */ 0,
    /* xRollback   */ 0,
    /* xFindMethod */ 0,
    /* xRename     */ 0,
    /* xSavepoint  */ 0,
    /* xRelease    */ 0,
    /* xRollbackTo */ 0,
    /* xShadowName */ 0,
};

int dbx_register_pool_stats(sqlite3 *db, dbx_conn *conn)
{
  return dbx_register_module(db, "pool_stats", &stats_module, conn);
}
