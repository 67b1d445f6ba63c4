/*
** ext.h -- what the files of the dbpool SQLite extension share.
**
** The extension uses the host's SQLite through sqlite3ext.h: dbpool.c holds
** SQLITE_EXTENSION_INIT1, every other file SQLITE_EXTENSION_INIT3. It never
** links libsqlite3.
*/
#ifndef DBPOOL_EXT_H
#define DBPOOL_EXT_H

#include <sqlite3ext.h>

#include "base/base.h"
#include "base/sqlite_rc.h"
#include "coordinator/private.h"

/* Fault builds (make FAULT=1; tests/fault/inject.h) count and fail the
** extension's own requests for SQLite memory with its other allocations,
** so that the fault driver fails each of them in turn. */
#ifdef DBPOOL_FAULT_BUILD
int fault_point(const char *name, int cls);
#undef sqlite3_malloc64
#undef sqlite3_realloc64
#undef sqlite3_mprintf
#define sqlite3_malloc64(n) \
  (fault_point("sqlite3_malloc64", 1) ? NULL : sqlite3_api->malloc64(n))
#define sqlite3_realloc64(p, n) \
  (fault_point("sqlite3_realloc64", 1) ? NULL : sqlite3_api->realloc64((p), (n)))
#define sqlite3_mprintf(...) \
  (fault_point("sqlite3_mprintf", 1) ? NULL : sqlite3_api->mprintf(__VA_ARGS__))
#endif

/* Per-connection acquire timeout override, in ms. */
#define DBX_URI_TIMEOUT "dbpool_timeout"

/* Per-connection state, alive from open (or load) until close. */
typedef struct dbx_conn {
  sqlite3 *db;
  dbpool_coord *coord;   /* pool of the main database; NULL if in-memory */
  dbpool_holder *holder; /* our slot; NULL if not counted by us */
  unsigned record;       /* our holder record (or the C pool's), or DBP_NO_RECORD */
  char *path;            /* main database path (stored after the struct), or NULL */
  int refs;              /* SQL objects registered (plus one while attaching) */
  unsigned module_drops; /* module destructor calls (dbx_register_module) */
  unsigned tables;       /* bit k: table k registered (dbx_register_tables) */
  int file_linked;       /* its file had a name when closed: 1, 0, -1 unknown */
  struct dbx_conn *next; /* in the table of attached connections */
} dbx_conn;


/* connection.c: every SQL object registered for a connection holds a
** reference to its dbx_conn; the last one, dropped when the connection
** closes, releases the slot. joined (a dbpool_joined) says how the
** connection came, as pool_connections shows it. */
int dbx_conn_attach(sqlite3 *db, char **pzErrMsg, int joined);
/* Undo dbx_conn_attach (a load that failed after it): the slot goes. */
void dbx_conn_detach(sqlite3 *db);
/* Has db been attached (counted, or found not to count) already? */
int dbx_conn_attached(sqlite3 *db);
/* If conn's pool was removed (dbpoolctl rm --force), move its slot into the
** pool now at its path, counted even above the limit, and use that pool
** for its settings and labels from now on. Called when a transaction
** starts, and before settings and labels are used. Cheap when nothing was
** removed: one load of the pool's gate. */
void dbx_conn_follow(dbx_conn *conn);
void dbx_conn_ref(dbx_conn *conn);
void dbx_conn_unref(void *conn);
/* sqlite3_create_module_v2 of a module whose pAux is conn, holding a
** reference for as long as the module is registered, whatever SQLite did
** when it failed. */
int dbx_register_module(sqlite3 *db, const char *name, const sqlite3_module *module,
                        dbx_conn *conn);

/* The three eponymous tables, at once (connection.c). A connection whose
** main database goes through the VFS shim gets them from the shim when it
** first reads, locks or asks about its file (vfs_shim.c): before any table
** name can be looked up, and never for the many that only open and close. */
int dbx_register_tables(sqlite3 *db, dbx_conn *conn);

/* One function per SQL object, each in the file named after it. */
int dbx_register_pool_stats(sqlite3 *db, dbx_conn *conn);
int dbx_register_pool_connections(sqlite3 *db, dbx_conn *conn);
int dbx_register_pool_settings(sqlite3 *db, dbx_conn *conn);
int dbx_register_functions(sqlite3 *db, dbx_conn *conn);
int dbx_register_operator_functions(sqlite3 *db); /* operator.c */

/* connection.c: the mark of the in-process C pool (pooled.h), which the
** VFS shim publishes. */
extern const struct dbp_pooled_hook dbx_pooled;

/* vfs_shim.c */
int dbx_vfs_install(void);
/* db's main database file if it was opened through the shim, else NULL. */
struct shim_file *dbx_vfs_main_file(sqlite3 *db);
/* The identity of the file SQLite opened for f, if the shim saw it, or NULL. */
const dbp_file_id *dbx_vfs_opened(const struct shim_file *f);
/* May the tables of the connection of f be registered by the shim, later?
** Only if nothing has read or locked f yet (so its schema is not loaded)
** and no other connection shares it (shared cache). */
int dbx_vfs_may_defer(const struct shim_file *f);
/* Tie f to conn (which outlives it): its transactions then follow a
** removed pool, its writer gate shows conn's holder record, and
** (defer_tables) the shim registers conn's tables at f's first read, lock
** or question. */
void dbx_vfs_bind(struct shim_file *f, dbx_conn *conn, int defer_tables);
/* 1 if a VFS named "dbpool" that is not ours is registered: another copy of
** the extension (another file) is active in this process. */
int dbx_vfs_other_copy(void);
void dbx_vfs_uninstall(void);

/* common.c: helpers the tables share. */
char *dbx_iso8601(int64_t realtime_ns); /* sqlite3_malloc'd */
/* PRAGMA dbpool_stats's line: SQLITE_OK and *out (sqlite3_malloc'd), or an
** error code and its message in *out (NULL for SQLITE_NOMEM). */
int dbx_stats_summary(dbpool_coord *c, char **out);
/* Call add(arg, c, pzErr) for the pool of path, or (path NULL) for every
** pool this user can read; stops at the first SQLite error add returns
** (add may put a message in *pzErr). A pool that cannot be read for any
** reason but not being one to list (dbp_list_skips) is an error
** too, with its message in *pzErr: a listing never leaves pools out. */
int dbx_for_each_pool(const char *path,
                      int (*add)(void *arg, dbpool_coord *c, char **pzErr),
                      void *arg, char **pzErr);
/* PRAGMA dbpool_<setting> = text: parse and apply it, all or nothing.
** SQLITE_OK and *out the value now in effect, or an error code and its
** message in *out (NULL for SQLITE_NOMEM); both sqlite3_malloc'd. */
int dbx_set_setting_text(dbpool_coord *c, int s, const char *text, char **out);

#endif
