/*
** pool_connections.c -- the eponymous virtual table pool_connections:
** SQLite's answer to pgbouncer's SHOW CLIENTS. One row per holder or waiter
** of every pool on the host that this user can read, across all processes.
**
**   .load ./build/dbpool
**   SELECT pid, process, state, duration_ms, label FROM pool_connections;
**   SELECT * FROM pool_connections WHERE current;          -- this connection
**   SELECT * FROM pool_connections WHERE database = '/srv/app.db';
**
** state is 'active' (held, in use), 'idle' (held by an in-process pool but
** not checked out) or 'waiting' (queued; waiters come after holders, in
** queue order). since is when the slot was taken or the wait began
** (ISO-8601 UTC, 4 ms resolution); duration_ms is how long ago that was.
** current is 1 for the connection running the query. joined says how the
** connection came: 'load' (it loaded the extension), 'auto' (opened after
** loading), 'preload' (counted by libdbpool-preload.so, `dbpoolctl run`),
** 'c-pool' (dbpool_open's pool), 'api' (the coordinator API).
** process_state is 'running', 'stopped' (SIGSTOP, a debugger: alive, so
** its slots are held; why waiters may time out) or 'elsewhere' (another pid
** namespace, a container: alive; its pid is its namespace's). Holders of
** processes that died are never listed, even before their slots are
** reclaimed.
** writer says where the connection is in the writer queue: 'writing' (it
** holds the turn), 'granted' (the turn was handed to it), 'waiting', or
** NULL; write_wait_ms is how long it has waited for its turn.
**
** LIMITATIONS
**   - A snapshot read without locks: a row may show a holder that released
**     a microsecond ago.
*/
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

#define CONNECTIONS_SCHEMA                                                    \
  "CREATE TABLE x(database TEXT, pid INTEGER, process TEXT, thread INTEGER, " \
  "state TEXT, since TEXT, duration_ms INTEGER, label TEXT, current INTEGER, " \
  "joined TEXT, process_state TEXT, writer TEXT, write_wait_ms INTEGER)"
#define COL_DATABASE 0
#define COL_PID 1
#define COL_PROCESS 2
#define COL_THREAD 3
#define COL_STATE 4
#define COL_SINCE 5
#define COL_DURATION_MS 6
#define COL_LABEL 7
#define COL_CURRENT 8
#define COL_JOINED 9
#define COL_PROCESS_STATE 10
#define COL_WRITER 11
#define COL_WRITE_WAIT_MS 12

typedef struct conn_row {
  int db_index; /* into cursor's databases */
  int current;
  dbpool_holder_info info;
  int writer;           /* dbpool_writer_state, 0 if not in the writer queue */
  int64_t write_wait_ns;
} conn_row;

typedef struct conn_vtab {
  sqlite3_vtab base;
  dbx_conn *conn;
} conn_vtab;

typedef struct conn_cursor {
  sqlite3_vtab_cursor base;
  dbx_conn *conn;
  char (*databases)[DBPOOL_PATH_MAX];
  int ndb;
  conn_row *rows;
  int n, cap, i;
  int64_t now_ns;
} conn_cursor;

static int conns_connect(sqlite3 *db, void *pAux, int argc,
                         const char *const *argv, sqlite3_vtab **ppVtab,
                         char **pzErr)
{
  conn_vtab *v;
  int rc;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(db, CONNECTIONS_SCHEMA);
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->conn = pAux;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int conns_disconnect(sqlite3_vtab *pVtab)
{
  sqlite3_free(pVtab);
  return SQLITE_OK;
}

static int conns_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor)
{
  conn_cursor *cur = sqlite3_malloc64(sizeof *cur);
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  cur->conn = ((conn_vtab *)pVtab)->conn;
  *ppCursor = &cur->base;
  return SQLITE_OK;
}

static void reset(conn_cursor *cur)
{
  sqlite3_free(cur->rows);
  sqlite3_free(cur->databases);
  cur->rows = NULL;
  cur->databases = NULL;
  cur->n = cur->cap = cur->i = cur->ndb = 0;
}

static int conns_close(sqlite3_vtab_cursor *pCur)
{
  reset((conn_cursor *)pCur);
  sqlite3_free(pCur);
  return SQLITE_OK;
}

static int coord_failed(int err, char **pzErr)
{
  *pzErr = sqlite3_mprintf("%s", dbpool_last_error());
  return dbp_sqlite_rc(err, SQLITE_ERROR);
}

/* Append the holders and waiters of one pool. */
static int add_pool(void *arg, dbpool_coord *c, char **pzErr)
{
  conn_cursor *cur = arg;
  int total = dbpool_coord_holders(c, NULL, 0, sizeof(dbpool_holder_info));
  if (total < 0) return coord_failed(total, pzErr);
  char (*dbs)[DBPOOL_PATH_MAX] =
      sqlite3_realloc64(cur->databases, (sqlite3_uint64)(cur->ndb + 1) * DBPOOL_PATH_MAX);
  if (!dbs) return SQLITE_NOMEM;
  cur->databases = dbs;
  int di = cur->ndb++;
  dbpool_coord_database(c, dbs[di], DBPOOL_PATH_MAX);
  if (total == 0) return SQLITE_OK;
  int want = cur->n + total + 8; /* room for arrivals since the count */
  if (want > cur->cap) {
    conn_row *rows = sqlite3_realloc64(cur->rows, (sqlite3_uint64)want * sizeof *rows);
    if (!rows) return SQLITE_NOMEM;
    cur->rows = rows;
    cur->cap = want;
  }
  dbpool_holder_info *info = sqlite3_malloc64((sqlite3_uint64)(total + 8) * sizeof *info);
  if (!info) return SQLITE_NOMEM;
  int got = dbpool_coord_holders(c, info, (size_t)total + 8, sizeof *info);
  if (got < 0) {
    sqlite3_free(info);
    return coord_failed(got, pzErr);
  }
  if (got > total + 8) got = total + 8;
  int nw = dbpool_coord_writers(c, NULL, 0, sizeof(dbpool_writer_info));
  dbpool_writer_info *wr = nw > 0 ? sqlite3_malloc64((sqlite3_uint64)(nw + 8) * sizeof *wr) : NULL;
  if (nw > 0 && !wr) {
    sqlite3_free(info);
    return SQLITE_NOMEM;
  }
  if (wr) {
    int cap_w = nw + 8;
    nw = dbpool_coord_writers(c, wr, (size_t)cap_w, sizeof *wr);
    if (nw > cap_w) nw = cap_w;
  }
  if (nw < 0) {
    sqlite3_free(info);
    sqlite3_free(wr);
    return coord_failed(nw, pzErr);
  }
  dbx_conn *me = cur->conn;
  int mine = me && me->record != DBP_NO_RECORD && me->coord &&
             strcmp(dbpool_coord_segment_name(me->coord), dbpool_coord_segment_name(c)) == 0;
  for (int k = 0; k < got && cur->n < cur->cap; k++) {
    conn_row *r = &cur->rows[cur->n++];
    r->db_index = di;
    r->info = info[k];
    r->current = mine && info[k].record == me->record && info[k].pid == dbp_pid();
    r->writer = 0;
    r->write_wait_ns = 0;
    for (int j = 0; j < nw; j++)
      if (wr[j].record == info[k].record && wr[j].pid == info[k].pid) {
        r->writer = (int)wr[j].state;
        r->write_wait_ns = wr[j].waited_ns;
      }
  }
  sqlite3_free(info);
  sqlite3_free(wr);
  return SQLITE_OK;
}

/*
** idxNum 1: "database = ?" is usable; argv[0] is the path.
** idxNum 0: every pool.
*/
static int conns_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *info)
{
  (void)pVtab;
  info->idxNum = 0;
  info->estimatedCost = 1000;
  info->estimatedRows = 100;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *k = &info->aConstraint[i];
    if (!k->usable || k->iColumn != COL_DATABASE || k->op != SQLITE_INDEX_CONSTRAINT_EQ)
      continue;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 0;
    info->idxNum = 1;
    info->estimatedCost = 10;
    info->estimatedRows = 10;
    break;
  }
  return SQLITE_OK;
}

static int conns_filter(sqlite3_vtab_cursor *pCur, int idxNum,
                        const char *idxStr, int argc, sqlite3_value **argv)
{
  conn_cursor *cur = (conn_cursor *)pCur;
  (void)idxStr;
  reset(cur);
  cur->now_ns = dbp_real_ns();
  const char *path = idxNum == 1 && argc == 1 ? (const char *)sqlite3_value_text(argv[0]) : NULL;
  if (idxNum == 1 && !path) return SQLITE_OK; /* database = NULL: no rows */
  sqlite3_free(pCur->pVtab->zErrMsg);
  return dbx_for_each_pool(path, add_pool, cur, &pCur->pVtab->zErrMsg);
}

static int conns_next(sqlite3_vtab_cursor *pCur)
{
  ((conn_cursor *)pCur)->i++;
  return SQLITE_OK;
}

static int conns_eof(sqlite3_vtab_cursor *pCur)
{
  conn_cursor *cur = (conn_cursor *)pCur;
  return cur->i >= cur->n;
}

static const char *state_name(dbpool_holder_state s)
{
  switch (s) {
  case DBPOOL_HOLDER_ACTIVE: return "active";
  case DBPOOL_HOLDER_IDLE: return "idle";
  case DBPOOL_HOLDER_WAITING: return "waiting";
  }
  return "unknown";
}

static int conns_column(sqlite3_vtab_cursor *pCur, sqlite3_context *ctx, int col)
{
  conn_cursor *cur = (conn_cursor *)pCur;
  const conn_row *r = &cur->rows[cur->i];
  switch (col) {
  case COL_DATABASE:
    sqlite3_result_text(ctx, cur->databases[r->db_index], -1, SQLITE_TRANSIENT);
    break;
  case COL_PID: sqlite3_result_int64(ctx, r->info.pid); break;
  case COL_PROCESS: sqlite3_result_text(ctx, r->info.process, -1, SQLITE_TRANSIENT); break;
  case COL_THREAD: sqlite3_result_int64(ctx, r->info.tid); break;
  case COL_STATE: sqlite3_result_text(ctx, state_name(r->info.state), -1, SQLITE_STATIC); break;
  case COL_SINCE: {
    char *t = dbx_iso8601(r->info.since_ns);
    if (t) sqlite3_result_text(ctx, t, -1, sqlite3_free);
    break;
  }
  case COL_DURATION_MS: {
    int64_t d = r->info.since_ns > 0 ? (cur->now_ns - r->info.since_ns) / 1000000 : 0;
    sqlite3_result_int64(ctx, d > 0 ? d : 0);
    break;
  }
  case COL_LABEL:
    if (r->info.label[0]) sqlite3_result_text(ctx, r->info.label, -1, SQLITE_TRANSIENT);
    break;
  case COL_CURRENT: sqlite3_result_int(ctx, r->current); break;
  case COL_JOINED:
    sqlite3_result_text(ctx, dbpool_joined_name(r->info.joined), -1, SQLITE_STATIC);
    break;
  case COL_PROCESS_STATE:
    sqlite3_result_text(ctx, dbpool_process_state_name(r->info.process_state), -1,
                        SQLITE_STATIC);
    break;
  case COL_WRITER:
    if (r->writer)
      sqlite3_result_text(ctx, dbpool_writer_state_name((dbpool_writer_state)r->writer), -1,
                          SQLITE_STATIC);
    break;
  case COL_WRITE_WAIT_MS:
    if (r->writer) sqlite3_result_int64(ctx, r->write_wait_ns / 1000000);
    break;
  }
  return SQLITE_OK;
}

static int conns_rowid(sqlite3_vtab_cursor *pCur, sqlite3_int64 *pRowid)
{
  *pRowid = ((conn_cursor *)pCur)->i + 1;
  return SQLITE_OK;
}

static sqlite3_module conns_module = {
    /* iVersion    */ 0,
    /* xCreate     */ 0, /* eponymous only */
    /* xConnect    */ conns_connect,
    /* xBestIndex  */ conns_best_index,
    /* xDisconnect */ conns_disconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ conns_open,
    /* xClose      */ conns_close,
    /* xFilter     */ conns_filter,
    /* xNext       */ conns_next,
    /* xEof        */ conns_eof,
    /* xColumn     */ conns_column,
    /* xRowid      */ conns_rowid,
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

int dbx_register_pool_connections(sqlite3 *db, dbx_conn *conn)
{
  return dbx_register_module(db, "pool_connections", &conns_module, conn);
}
