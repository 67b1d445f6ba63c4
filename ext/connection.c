/*
** connection.c -- one slot per connection.
**
** dbx_conn_attach runs for the loading connection and, as an automatic
** extension, for every connection opened afterwards (after its main database
** file is opened, before its schema is read). For a database file (counts():
** not in memory, a regular file) it takes a slot of the database's host-wide
** pool, waiting up to the acquire timeout (the pool's setting, or the URI
** parameter dbpool_timeout=MS); then it registers the SQL objects. Each registration holds a reference to the
** connection's state; SQLite drops them when the connection closes
** (sqlite3_close_v2 defers that until the last statement is finalized), and
** the last one releases the slot. A process that dies releases nothing: the
** coordinator reclaims its slots.
**
** Connections opened by dbpool's in-process C pool already hold a slot: the
** pool says so just before it opens them, in process (pooled.h), and they
** are not counted again. Nothing a URI, the environment or SQL says can
** make a connection uncounted.
**
** LIMITATIONS
**   - sqlite3_close() on a connection with open statements fails and keeps
**     the slot, as it keeps the connection.
**   - In memory means no file name or the memdb VFS: another VFS that keeps
**     a database in memory under the name of an existing regular file is
**     counted against that file's pool.
*/
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>

#include "ext.h"
#include "pooled.h"
SQLITE_EXTENSION_INIT3

/* The C pool's mark for the next open on this thread (pooled.h). */
static __thread struct {
  unsigned record;
  char segment[128]; /* "" when nothing is expected */
} t_pooled;

static void expect_pooled(const char *segment, unsigned record)
{
  t_pooled.record = record;
  if (!segment || strlen(segment) >= sizeof t_pooled.segment) segment = "";
  memcpy(t_pooled.segment, segment, strlen(segment) + 1);
}

const dbp_pooled_hook dbx_pooled = {DBP_POOLED_MAGIC, 1, expect_pooled};

/* Is conn (its pool just opened) the connection the C pool announced? Then
** take the mark: it is for one connection only. */
static int take_pooled_mark(dbx_conn *conn)
{
  if (!t_pooled.segment[0] ||
      strcmp(t_pooled.segment, dbpool_coord_segment_name(conn->coord)) != 0)
    return 0;
  conn->record = t_pooled.record;
  t_pooled.segment[0] = 0;
  return 1;
}

/* The connections attached and not yet closed, by their sqlite3 pointer:
** loading the extension again into one of them (by hand, or as Node's
** better-sqlite3 and Go's mattn do for every connection) must not count
** it twice. */
#define CONN_BUCKETS 256
static pthread_mutex_t g_conns_lock = PTHREAD_MUTEX_INITIALIZER;
static dbx_conn *g_conns[CONN_BUCKETS];

static pthread_once_t g_conns_once = PTHREAD_ONCE_INIT;

static dbx_conn **bucket_of(sqlite3 *db)
{
  return &g_conns[((uintptr_t)db >> 4) * 2654435761u % CONN_BUCKETS];
}

/* A fork while another thread holds the table's lock must not leave the
** child's copy locked forever (the library is never unloaded: pin_library). */
static void conns_lock(void) { pthread_mutex_lock(&g_conns_lock); }
static void conns_unlock(void) { pthread_mutex_unlock(&g_conns_lock); }
static void conns_at_fork(void) { pthread_atfork(conns_lock, conns_unlock, conns_unlock); }

static void remember(dbx_conn *conn)
{
  pthread_once(&g_conns_once, conns_at_fork);
  conns_lock();
  dbx_conn **b = bucket_of(conn->db);
  conn->next = *b;
  *b = conn;
  conns_unlock();
}

static void forget(dbx_conn *conn)
{
  conns_lock();
  for (dbx_conn **pp = bucket_of(conn->db); *pp; pp = &(*pp)->next)
    if (*pp == conn) {
      *pp = conn->next;
      break;
    }
  conns_unlock();
}

int dbx_conn_attached(sqlite3 *db)
{
  int found = 0;
  conns_lock();
  for (dbx_conn *c = *bucket_of(db); c && !found; c = c->next) found = c->db == db;
  conns_unlock();
  return found;
}

void dbx_conn_ref(dbx_conn *conn) { conn->refs++; }

void dbx_conn_unref(void *p)
{
  dbx_conn *conn = p;
  if (!conn || --conn->refs > 0) return;
  forget(conn);
  dbp_holder_free_linked(conn->holder, conn->file_linked); /* releases the slot */
  dbpool_coord_close(conn->coord);
  sqlite3_free(conn); /* and its path */
}

static void module_unref(void *p)
{
  dbx_conn *conn = p;
  conn->module_drops++;
  dbx_conn_unref(conn);
}

/* A failed sqlite3_create_module_v2 calls the destructor, but when it
** failed only because the connection was already out of memory (a
** statement whose parse ran out, asking the VFS before it gives up: the
** deferred tables register then) it also kept the module, whose
** destructor runs again at close. So on failure the name is unregistered
** (a registered module's destructor runs once more) and the references
** taken are balanced by what the destructor calls counted. */
int dbx_register_module(sqlite3 *db, const char *name, const sqlite3_module *module,
                        dbx_conn *conn)
{
  dbx_conn_ref(conn); /* the module's */
  dbx_conn_ref(conn); /* ours, until the count is settled */
  unsigned drops = conn->module_drops;
  int rc = sqlite3_create_module_v2(db, name, module, conn, module_unref);
  if (rc != SQLITE_OK) {
    sqlite3_create_module_v2(db, name, NULL, NULL, NULL);
    for (unsigned k = conn->module_drops - drops; k < 2; k++) dbx_conn_unref(conn);
    return rc;
  }
  dbx_conn_unref(conn);
  return SQLITE_OK;
}

/* dbpool_timeout=MS follows the rule of acquire_timeout_ms's values. */
static int parse_timeout(const char *text, int *out)
{
  int64_t v;
  if (dbpool_setting_parse(DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, text, &v) != 0)
    return 0;
  *out = (int)v;
  return 1;
}

/* Take a slot for conn (a file database). */
static int take_slot(dbx_conn *conn, const char *file, const dbp_file_id *opened,
                     int joined, char **pzErrMsg)
{
  int timeout = DBPOOL_TIMEOUT_DEFAULT;
  const char *t = sqlite3_uri_parameter(file, DBX_URI_TIMEOUT);
  if (t && !parse_timeout(t, &timeout)) {
    *pzErrMsg = sqlite3_mprintf("dbpool: invalid %s '%s' for %s: expected "
                                "milliseconds from 0 to %d", DBX_URI_TIMEOUT,
                                t, conn->path, DBPOOL_ACQUIRE_TIMEOUT_LIMIT);
    return SQLITE_ERROR;
  }
  int rc = 0;
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = dbp_coord_open_file(conn->path, opened, &conn->coord);
    if (rc == 1) return SQLITE_OK; /* not a regular file: not counted */
    if (rc == 0) {
      if (take_pooled_mark(conn)) return SQLITE_OK; /* the C pool's slot */
      rc = dbpool_holder_new(conn->coord, &conn->holder);
      if (rc == 0) dbp_holder_set_joined(conn->holder, joined);
    }
    /* Ctrl-C (a caught SIGINT or SIGQUIT) ends the wait. */
    if (rc == 0) rc = dbp_holder_acquire_interruptible(conn->holder, timeout);
    if (rc == 0) {
      conn->record = dbp_holder_record(conn->holder);
      return SQLITE_OK;
    }
    dbpool_holder_free(conn->holder);
    dbpool_coord_close(conn->coord);
    conn->holder = NULL;
    conn->coord = NULL;
    if (rc != -ESTALE) break; /* the pool was removed: join the new one */
  }
  *pzErrMsg = sqlite3_mprintf("%s", dbpool_last_error());
  return dbp_sqlite_rc(rc, SQLITE_ERROR);
}

/*
** Does the main database count? Only a database file does: not one SQLite
** keeps in memory (no file name, or the memdb VFS, whatever name it was
** given: "file:a.db?vfs=memdb" is no more a.db than "file:/mem1?vfs=memdb"
** is a file), and not one whose name is not a regular file (/dev/null, a
** FIFO, a name that no longer exists). Those open exactly as without
** dbpool. A name that cannot be checked (stat fails otherwise) counts: the
** coordinator then says why it cannot be pooled.
*/
static int may_count(sqlite3 *db, const char *file, const struct shim_file *shim)
{
  sqlite3_vfs *vfs = NULL;
  if (!file || !file[0]) return 0;
  if (shim) return 1; /* opened through our shim: not memdb */
  return !(sqlite3_file_control(db, "main", SQLITE_FCNTL_VFS_POINTER, &vfs) == SQLITE_OK &&
           vfs && vfs->zName && strcmp(vfs->zName, "memdb") == 0);
  /* Whether the name is a regular file the coordinator tells, from what
  ** the shim saw SQLite open or one stat of the name (dbp_coord_open_file). */
}

/* Those not registered yet: after an out-of-memory the next call registers
** the rest, never replacing one a statement may be using. */
int dbx_register_tables(sqlite3 *db, dbx_conn *conn)
{
  static int (*const reg[])(sqlite3 *, dbx_conn *) = {
      dbx_register_pool_stats, dbx_register_pool_connections, dbx_register_pool_settings};
  int rc = SQLITE_OK;
  for (unsigned k = 0; k < sizeof reg / sizeof reg[0] && rc == SQLITE_OK; k++) {
    if (conn->tables & (1u << k)) continue;
    rc = reg[k](db, conn);
    if (rc == SQLITE_OK) conn->tables |= 1u << k;
  }
  return rc;
}

/* Undo the registrations of dbx_conn_attach: dropping each object runs
** its destructor, and the last one releases the slot. (A function cannot be
** dropped while a statement of db runs, as when the extension is loaded by
** SELECT load_extension(): then the slot stays held until db closes.) */
void dbx_conn_detach(sqlite3 *db)
{
  sqlite3_create_module_v2(db, "pool_stats", NULL, NULL, NULL);
  sqlite3_create_module_v2(db, "pool_connections", NULL, NULL, NULL);
  sqlite3_create_module_v2(db, "pool_settings", NULL, NULL, NULL);
  sqlite3_create_function_v2(db, "dbpool_label", 1, SQLITE_UTF8, NULL, NULL, NULL, NULL,
                             NULL);
  sqlite3_create_function_v2(db, "dbpool_version", 0, SQLITE_UTF8, NULL, NULL, NULL, NULL,
                             NULL);
}

int dbx_conn_attach(sqlite3 *db, char **pzErrMsg, int joined)
{
  const char *file = sqlite3_db_filename(db, "main");
  size_t len = file ? strlen(file) : 0;
  /* One allocation: the state and the path it keeps. */
  dbx_conn *conn = sqlite3_malloc64(sizeof *conn + len + 1);
  int rc = SQLITE_OK;
  if (!conn) {
    *pzErrMsg = sqlite3_mprintf("dbpool: out of memory");
    return SQLITE_NOMEM;
  }
  memset(conn, 0, sizeof *conn);
  conn->db = db;
  conn->record = DBP_NO_RECORD;
  conn->refs = 1; /* ours, until the registrations hold theirs */
  conn->file_linked = -1;
  struct shim_file *shim = dbx_vfs_main_file(db);
  if (may_count(db, file, shim)) {
    conn->path = memcpy((char *)&conn[1], file, len + 1);
    rc = take_slot(conn, file, dbx_vfs_opened(shim), joined, pzErrMsg);
  }
  /* Each registration takes a reference; on failure SQLite calls the
  ** destructor, which drops it again. */
  if (rc == SQLITE_OK) rc = dbx_register_functions(db, conn);
  int defer = shim && dbx_vfs_may_defer(shim);
  if (rc == SQLITE_OK && !defer) rc = dbx_register_tables(db, conn);
  if (rc != SQLITE_OK && !*pzErrMsg)
    *pzErrMsg = rc == SQLITE_NOMEM ? sqlite3_mprintf("dbpool: out of memory")
                                   : sqlite3_mprintf("dbpool: cannot register SQL "
                                                     "objects: %s", sqlite3_errstr(rc));
  if (rc == SQLITE_OK) remember(conn);
  if (rc == SQLITE_OK && shim) dbx_vfs_bind(shim, conn, defer);
  if (rc != SQLITE_OK) dbx_conn_detach(db); /* all or nothing */
  dbx_conn_unref(conn);
  return rc;
}

void dbx_conn_follow(dbx_conn *conn)
{
  if (!conn->coord || !dbp_coord_removed(conn->coord)) return;
  if (conn->holder && dbp_holder_rejoin(&conn->holder, conn->path) == 1)
    conn->record = dbp_holder_record(conn->holder);
  dbpool_coord *fresh;
  if (dbpool_coord_open(conn->path, 0, &fresh) == 0) {
    dbpool_coord_close(conn->coord);
    conn->coord = fresh;
  }
}
