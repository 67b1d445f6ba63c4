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
  int file_linked;       /* its file had a name when closed: 1, 0, -1 unknown */
  struct dbx_conn *next; /* in the table of attached connections */
} dbx_conn;


/* connection.c: every SQL object registered for a connection holds a
** reference to its dbx_conn; the last one, dropped when the connection
** closes, releases the slot. joined (a dbpool_joined) says how the
** connection came, as pool_connections shows it. */
int dbx_conn_attach(sqlite3 *db, char **pzErrMsg, int joined);
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
char *dbx_stats_summary(dbpool_coord *c); /* sqlite3_malloc'd */
/* Call add(arg, c) for the pool of path, or (path NULL) for every pool this
** user can read; stops at the first SQLite error add returns. */
int dbx_for_each_pool(const char *path, int (*add)(void *arg, dbpool_coord *c),
                         void *arg);
int dbx_set_setting_text(dbpool_coord *c, const char *name,
                            const char *text, char **pzErr);

#endif
