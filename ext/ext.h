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

#include "dbpool_coord.h"

/* Per-connection acquire timeout override, in ms. */
#define DBPOOL_URI_TIMEOUT "dbpool_timeout"

/* Per-connection state, alive from open (or load) until close. */
typedef struct dbpool_conn {
  sqlite3 *db;
  dbpool_coord *coord;   /* pool of the main database; NULL if in-memory */
  dbpool_holder *holder; /* our slot; NULL if not counted by us */
  unsigned slot;         /* the slot counted for this connection, or ~0u */
  char *path;            /* main database path (stored after the struct), or NULL */
  int refs;              /* SQL objects registered (plus one while attaching) */
  int file_linked;       /* its file had a name when closed: 1, 0, -1 unknown */
  struct dbpool_conn *next; /* in the table of attached connections */
} dbpool_conn;

#define DBPOOL_NO_SLOT (~0u)

/* connection.c: every SQL object registered for a connection holds a
** reference to its dbpool_conn; the last one, dropped when the connection
** closes, releases the slot. joined (a dbpool_joined) says how the
** connection came, as pool_connections shows it. */
int dbpool_conn_attach(sqlite3 *db, char **pzErrMsg, int joined);
/* Has db been attached (counted, or found not to count) already? */
int dbpool_conn_attached(sqlite3 *db);
/* If conn's pool was removed (dbpoolctl rm --force), move its slot into the
** pool now at its path, counted even above the limit, and use that pool
** for its settings and labels from now on. Called when a transaction
** starts, and before settings and labels are used. Cheap when nothing was
** removed: one load of the pool's gate. */
void dbpool_conn_follow(dbpool_conn *conn);
void dbpool_conn_ref(dbpool_conn *conn);
void dbpool_conn_unref(void *conn);

/* The three eponymous tables, at once (connection.c). A connection whose
** main database goes through the VFS shim gets them from the shim when it
** first reads, locks or asks about its file (vfs_shim.c): before any table
** name can be looked up, and never for the many that only open and close. */
int dbpool_register_tables(sqlite3 *db, dbpool_conn *conn);

/* One function per SQL object, each in the file named after it. */
int dbpool_register_pool_stats(sqlite3 *db, dbpool_conn *conn);
int dbpool_register_pool_connections(sqlite3 *db, dbpool_conn *conn);
int dbpool_register_pool_settings(sqlite3 *db, dbpool_conn *conn);
int dbpool_register_functions(sqlite3 *db, dbpool_conn *conn);

/* connection.c: the mark of the in-process C pool (pooled.h), which the
** VFS shim publishes. */
extern const struct dbpool_pooled_hook dbpool_pooled;

/* vfs_shim.c */
int dbpool_vfs_install(void);
/* db's main database file if it was opened through the shim, else NULL. */
struct shim_file *dbpool_vfs_main_file(sqlite3 *db);
/* The identity of the file SQLite opened for f, if the shim saw it, or NULL. */
struct dbp_file_id;
const struct dbp_file_id *dbpool_vfs_opened(const struct shim_file *f);
/* May the tables of the connection of f be registered by the shim, later?
** Only if nothing has read or locked f yet (so its schema is not loaded)
** and no other connection shares it (shared cache). */
int dbpool_vfs_may_defer(const struct shim_file *f);
/* Tie f to conn (which outlives it): its transactions then follow a
** removed pool, its writer gate shows conn's slot, and (defer_tables) the
** shim registers conn's tables at f's first read, lock or question. */
void dbpool_vfs_bind(struct shim_file *f, dbpool_conn *conn, int defer_tables);
/* 1 if a VFS named "dbpool" that is not ours is registered: another copy of
** the extension (another file) is active in this process. */
int dbpool_vfs_other_copy(void);
void dbpool_vfs_uninstall(void);

/* common.c: helpers the tables share. */
int dbpool_errno_to_sqlite(int err);
char *dbpool_iso8601(int64_t realtime_ns); /* sqlite3_malloc'd */
char *dbpool_stats_summary(dbpool_coord *c); /* sqlite3_malloc'd */
/* Call add(arg, c) for the pool of path, or (path NULL) for every pool this
** user can read; stops at the first SQLite error add returns. */
int dbpool_for_each_pool(const char *path, int (*add)(void *arg, dbpool_coord *c),
                         void *arg);
int dbpool_set_setting_text(dbpool_coord *c, const char *name,
                            const char *text, char **pzErr);

#endif
