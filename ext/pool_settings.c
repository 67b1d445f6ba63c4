/*
** pool_settings.c -- the eponymous virtual table pool_settings: the live
** settings of the current database's pool, changeable with UPDATE.
**
**   .load ./build/dbpool
**   SELECT * FROM pool_settings;
**   UPDATE pool_settings SET value = 20 WHERE name = 'max_connections';
**   UPDATE pool_settings SET value = 1 WHERE name = 'paused';
**
** Rows: name, value, default_value, description; one per setting
** (acquire_timeout_ms, max_connections, paused). A change applies to every
** process on the host at once, when the statement (or the enclosing
** transaction) commits; an invalid value, an unknown setting name, a change
** to any other column, INSERT and DELETE fail with an error that names the
** value, and change nothing -- not even the rows of the same statement that
** were valid.
**
** LIMITATIONS
**   - Values are integers (paused also takes 'on'/'off').
**   - Only direct SQL may use it (not triggers or views): it steers every
**     process on the host.
**   - A connection that is not counted (in-memory, temporary, not a regular
**     file) has no pool: no rows.
*/
#include <string.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

#define SETTINGS_SCHEMA \
  "CREATE TABLE x(name TEXT, value INTEGER, default_value INTEGER, description TEXT)"
#define COL_NAME 0
#define COL_VALUE 1
#define COL_DEFAULT_VALUE 2
#define COL_DESCRIPTION 3

/* Changes wait here until the transaction commits (xSync). */
typedef struct pending_set {
  int has[DBPOOL_SETTING_COUNT];
  int64_t value[DBPOOL_SETTING_COUNT];
} pending_set;

typedef struct settings_vtab {
  sqlite3_vtab base;
  dbx_conn *conn;
  pending_set pending;
  pending_set *savepoints; /* pending as of each open savepoint */
  int nsavepoints;
} settings_vtab;

typedef struct settings_cursor {
  sqlite3_vtab_cursor base;
  int first, last, i; /* rows are setting numbers first..last */
} settings_cursor;

static int fail(settings_vtab *v, char *msg)
{
  sqlite3_free(v->base.zErrMsg);
  v->base.zErrMsg = msg;
  return msg ? SQLITE_ERROR : SQLITE_NOMEM;
}

static int settings_connect(sqlite3 *db, void *pAux, int argc,
                            const char *const *argv, sqlite3_vtab **ppVtab,
                            char **pzErr)
{
  settings_vtab *v;
  int rc;
  (void)argc;
  (void)argv;
  (void)pzErr;
  rc = sqlite3_declare_vtab(db, SETTINGS_SCHEMA);
  if (rc == SQLITE_OK) rc = sqlite3_vtab_config(db, SQLITE_VTAB_DIRECTONLY);
  if (rc != SQLITE_OK) return rc;
  v = sqlite3_malloc64(sizeof *v);
  if (!v) return SQLITE_NOMEM;
  memset(v, 0, sizeof *v);
  v->conn = pAux;
  *ppVtab = &v->base;
  return SQLITE_OK;
}

static int settings_disconnect(sqlite3_vtab *pVtab)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  sqlite3_free(v->savepoints);
  sqlite3_free(v);
  return SQLITE_OK;
}

static int settings_open(sqlite3_vtab *pVtab, sqlite3_vtab_cursor **ppCursor)
{
  settings_cursor *cur = sqlite3_malloc64(sizeof *cur);
  (void)pVtab;
  if (!cur) return SQLITE_NOMEM;
  memset(cur, 0, sizeof *cur);
  *ppCursor = &cur->base;
  return SQLITE_OK;
}

static int settings_close(sqlite3_vtab_cursor *pCur)
{
  sqlite3_free(pCur);
  return SQLITE_OK;
}

/*
** idxNum 1: "name = ?" is usable; argv[0] is the name (an unknown name is an
** error, so that UPDATE ... WHERE name = 'typo' does not silently match
** nothing). idxNum 0: every setting.
*/
static int settings_best_index(sqlite3_vtab *pVtab, sqlite3_index_info *info)
{
  (void)pVtab;
  info->idxNum = 0;
  info->estimatedCost = 10;
  info->estimatedRows = DBPOOL_SETTING_COUNT;
  for (int i = 0; i < info->nConstraint; i++) {
    const struct sqlite3_index_constraint *k = &info->aConstraint[i];
    if (!k->usable || k->iColumn != COL_NAME || k->op != SQLITE_INDEX_CONSTRAINT_EQ)
      continue;
    info->aConstraintUsage[i].argvIndex = 1;
    info->aConstraintUsage[i].omit = 1;
    info->idxNum = 1;
    info->estimatedCost = 1;
    info->estimatedRows = 1;
    info->idxFlags = SQLITE_INDEX_SCAN_UNIQUE;
    break;
  }
  return SQLITE_OK;
}

static int settings_filter(sqlite3_vtab_cursor *pCur, int idxNum,
                           const char *idxStr, int argc, sqlite3_value **argv)
{
  settings_cursor *cur = (settings_cursor *)pCur;
  settings_vtab *v = (settings_vtab *)pCur->pVtab;
  (void)idxStr;
  cur->first = 0;
  cur->last = DBPOOL_SETTING_COUNT - 1;
  if (idxNum == 1 && argc == 1) {
    const char *name = (const char *)sqlite3_value_text(argv[0]);
    int s = dbpool_setting_lookup(name);
    if (s < 0) return fail(v, sqlite3_mprintf("%s", dbpool_last_error()));
    cur->first = cur->last = s;
  }
  dbx_conn_follow(v->conn); /* a pool removed under us: the new one */
  if (!v->conn->coord) cur->last = cur->first - 1; /* in-memory: no pool */
  cur->i = cur->first;
  return SQLITE_OK;
}

static int settings_next(sqlite3_vtab_cursor *pCur)
{
  ((settings_cursor *)pCur)->i++;
  return SQLITE_OK;
}

static int settings_eof(sqlite3_vtab_cursor *pCur)
{
  settings_cursor *cur = (settings_cursor *)pCur;
  return cur->i > cur->last;
}

static int settings_column(sqlite3_vtab_cursor *pCur, sqlite3_context *ctx, int col)
{
  settings_cursor *cur = (settings_cursor *)pCur;
  settings_vtab *v = (settings_vtab *)pCur->pVtab;
  const dbpool_setting_info *d = dbpool_setting_describe(cur->i);
  int64_t value;
  switch (col) {
  case COL_NAME: sqlite3_result_text(ctx, d->name, -1, SQLITE_STATIC); break;
  case COL_VALUE:
    if (dbpool_coord_get(v->conn->coord, cur->i, &value) == 0)
      sqlite3_result_int64(ctx, value);
    break;
  case COL_DEFAULT_VALUE: sqlite3_result_int64(ctx, d->default_value); break;
  case COL_DESCRIPTION: sqlite3_result_text(ctx, d->description, -1, SQLITE_STATIC); break;
  }
  return SQLITE_OK;
}

static int settings_rowid(sqlite3_vtab_cursor *pCur, sqlite3_int64 *pRowid)
{
  *pRowid = ((settings_cursor *)pCur)->i + 1;
  return SQLITE_OK;
}

/* Does an UPDATE leave column col of setting d as it was? */
static int unchanged(const dbpool_setting_info *d, int col, sqlite3_value *v)
{
  switch (col) {
  case COL_NAME:
  case COL_DESCRIPTION: {
    const char *t = (const char *)sqlite3_value_text(v);
    return t && strcmp(t, col == COL_NAME ? d->name : d->description) == 0;
  }
  case COL_DEFAULT_VALUE:
    return sqlite3_value_type(v) == SQLITE_INTEGER &&
           sqlite3_value_int64(v) == d->default_value;
  }
  return 1;
}

static int settings_update(sqlite3_vtab *pVtab, int argc, sqlite3_value **argv,
                           sqlite3_int64 *pRowid)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  static const char *cols[] = {"name", "value", "default_value", "description"};
  (void)pRowid;
  if (argc == 1)
    return fail(v, sqlite3_mprintf("dbpool: pool_settings: settings cannot be "
                                   "deleted; UPDATE their value instead"));
  if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
    return fail(v, sqlite3_mprintf("dbpool: pool_settings: settings cannot be "
                                   "added; UPDATE the value of an existing one"));
  sqlite3_int64 row = sqlite3_value_int64(argv[0]);
  const dbpool_setting_info *d = dbpool_setting_describe((int)row - 1);
  if (!d || sqlite3_value_int64(argv[1]) != row)
    return fail(v, sqlite3_mprintf("dbpool: pool_settings: rows cannot be "
                                   "renumbered"));
  for (int col = 0; col < 4; col++)
    if (col != COL_VALUE && !unchanged(d, col, argv[2 + col]))
      return fail(v, sqlite3_mprintf("dbpool: pool_settings: only the value "
                                     "column can be changed (tried to change "
                                     "%s of %s)", cols[col], d->name));
  if (!v->conn->coord)
    return fail(v, sqlite3_mprintf("dbpool: pool_settings: this connection's "
                                   "database is not a file; it has no pool"));
  int s = (int)row - 1;
  sqlite3_value *val = argv[2 + COL_VALUE];
  const char *text = (const char *)sqlite3_value_text(val);
  int64_t value;
  int rc;
  if (!text)
    rc = dbpool_setting_parse(s, "NULL", &value);
  else
    rc = dbpool_setting_parse(s, text, &value);
  if (rc) return fail(v, sqlite3_mprintf("%s", dbpool_last_error()));
  v->pending.has[s] = 1;
  v->pending.value[s] = value;
  return SQLITE_OK;
}

static int settings_begin(sqlite3_vtab *pVtab)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  memset(&v->pending, 0, sizeof v->pending);
  v->nsavepoints = 0;
  return SQLITE_OK;
}

/* Apply what the transaction changed; on failure, commit nothing else. */
static int settings_sync(sqlite3_vtab *pVtab)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  dbx_conn_follow(v->conn);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) {
    if (!v->pending.has[s]) continue;
    int rc = dbpool_coord_set(v->conn->coord, s, v->pending.value[s]);
    if (rc) return fail(v, sqlite3_mprintf("%s", dbpool_last_error()));
    v->pending.has[s] = 0;
  }
  return SQLITE_OK;
}

static int settings_end(sqlite3_vtab *pVtab)
{
  return settings_begin(pVtab); /* commit and rollback both forget pending */
}

static int settings_savepoint(sqlite3_vtab *pVtab, int level)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  if (level < 0) return SQLITE_OK;
  if (level >= v->nsavepoints) {
    pending_set *sp = sqlite3_realloc64(v->savepoints, (sqlite3_uint64)(level + 1) * sizeof *sp);
    if (!sp) return SQLITE_NOMEM;
    for (int i = v->nsavepoints; i <= level; i++) sp[i] = v->pending;
    v->savepoints = sp;
  }
  v->savepoints[level] = v->pending;
  v->nsavepoints = level + 1;
  return SQLITE_OK;
}

static int settings_release(sqlite3_vtab *pVtab, int level)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  if (level >= 0 && level < v->nsavepoints) v->nsavepoints = level;
  return SQLITE_OK;
}

/* level -1: the savepoint that began the transaction (SAVEPOINT outside
** BEGIN), before this table joined it: nothing pending. */
static int settings_rollback_to(sqlite3_vtab *pVtab, int level)
{
  settings_vtab *v = (settings_vtab *)pVtab;
  if (level < 0) {
    memset(&v->pending, 0, sizeof v->pending);
    v->nsavepoints = 0;
  } else if (level < v->nsavepoints) {
    v->pending = v->savepoints[level];
    v->nsavepoints = level + 1;
  }
  return SQLITE_OK;
}

static sqlite3_module settings_module = {
    /* iVersion    */ 2,
    /* xCreate     */ 0, /* eponymous only */
    /* xConnect    */ settings_connect,
    /* xBestIndex  */ settings_best_index,
    /* xDisconnect */ settings_disconnect,
    /* xDestroy    */ 0,
    /* xOpen       */ settings_open,
    /* xClose      */ settings_close,
    /* xFilter     */ settings_filter,
    /* xNext       */ settings_next,
    /* xEof        */ settings_eof,
    /* xColumn     */ settings_column,
    /* xRowid      */ settings_rowid,
    /* xUpdate     */ settings_update,
    /* xBegin      */ settings_begin,
    /* xSync       */ settings_sync,
    /* xCommit     */ settings_end,
    /* xRollback   */ settings_end,
    /* xFindMethod */ 0,
    /* xRename     */ 0,
    /* xSavepoint  */ settings_savepoint,
    /* xRelease    */ settings_release,
    /* xRollbackTo */ settings_rollback_to,
    /* xShadowName */ 0,
};

int dbx_register_pool_settings(sqlite3 *db, dbx_conn *conn)
{
  return dbx_register_module(db, "pool_settings", &settings_module, conn);
}
