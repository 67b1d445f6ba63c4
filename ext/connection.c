/*
** connection.c -- one slot per connection.
**
** dbpool_conn_attach runs for the loading connection and, as an automatic
** extension, for every connection opened afterwards (after its main database
** file is opened, before its schema is read). For a file database it takes a
** slot of the database's host-wide pool, waiting up to the acquire timeout
** (the pool's setting, or the URI parameter dbpool_timeout=MS); then it
** registers the SQL objects. Each registration holds a reference to the
** connection's state; SQLite drops them when the connection closes
** (sqlite3_close_v2 defers that until the last statement is finalized), and
** the last one releases the slot. A process that dies releases nothing: the
** coordinator reclaims its slots.
**
** Connections opened by dbpool's in-process C pool carry the URI parameter
** dbpool_slot=N: their slot is already held by the pool, so they are not
** counted again.
**
** LIMITATIONS
**   - sqlite3_close() on a connection with open statements fails and keeps
**     the slot, as it keeps the connection.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

void dbpool_conn_ref(dbpool_conn *conn) { conn->refs++; }

void dbpool_conn_unref(void *p)
{
  dbpool_conn *conn = p;
  if (!conn || --conn->refs > 0) return;
  dbpool_holder_free(conn->holder); /* releases the slot */
  dbpool_coord_close(conn->coord);
  sqlite3_free(conn->path);
  sqlite3_free(conn);
}

/* Strict parse of a non-negative decimal number of ms. */
static int parse_timeout(const char *text, int *out)
{
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if (end == text || *end || errno || v < 0 || v > DBPOOL_ACQUIRE_TIMEOUT_LIMIT)
    return 0;
  *out = (int)v;
  return 1;
}

/* Take a slot for conn (a file database). */
static int take_slot(dbpool_conn *conn, const char *file, int joined,
                     char **pzErrMsg)
{
  int timeout = DBPOOL_TIMEOUT_DEFAULT;
  const char *t = sqlite3_uri_parameter(file, DBPOOL_URI_TIMEOUT);
  if (t && !parse_timeout(t, &timeout)) {
    *pzErrMsg = sqlite3_mprintf("dbpool: invalid %s '%s' for %s: expected "
                                "milliseconds from 0 to %d", DBPOOL_URI_TIMEOUT,
                                t, conn->path, DBPOOL_ACQUIRE_TIMEOUT_LIMIT);
    return SQLITE_ERROR;
  }
  int rc = 0;
  for (int attempt = 0; attempt < 3; attempt++) {
    rc = dbpool_coord_open(conn->path, 0, &conn->coord);
    if (rc == 0) {
      const char *pooled = sqlite3_uri_parameter(file, DBPOOL_URI_SLOT);
      if (pooled) { /* counted by the in-process pool already */
        conn->slot = (unsigned)strtoul(pooled, NULL, 10);
        return SQLITE_OK;
      }
      rc = dbpool_holder_new(conn->coord, &conn->holder);
      if (rc == 0) dbpool_holder_set_joined(conn->holder, joined);
    }
    if (rc == 0) rc = dbpool_holder_acquire(conn->holder, timeout);
    if (rc == 0) {
      conn->slot = dbpool_holder_slot(conn->holder);
      return SQLITE_OK;
    }
    dbpool_holder_free(conn->holder);
    dbpool_coord_close(conn->coord);
    conn->holder = NULL;
    conn->coord = NULL;
    if (rc != -ESTALE) break; /* the pool was removed: join the new one */
  }
  *pzErrMsg = sqlite3_mprintf("%s", dbpool_last_error());
  return dbpool_errno_to_sqlite(rc);
}

int dbpool_conn_attach(sqlite3 *db, char **pzErrMsg, int joined)
{
  const char *file = sqlite3_db_filename(db, "main");
  dbpool_conn *conn = sqlite3_malloc64(sizeof *conn);
  int rc = SQLITE_OK;
  if (!conn) return SQLITE_NOMEM;
  memset(conn, 0, sizeof *conn);
  conn->db = db;
  conn->slot = DBPOOL_NO_SLOT;
  conn->refs = 1; /* ours, until the registrations hold theirs */
  if (file && file[0]) {
    conn->path = sqlite3_mprintf("%s", file);
    rc = conn->path ? take_slot(conn, file, joined, pzErrMsg) : SQLITE_NOMEM;
  }
  /* Each registration takes a reference; on failure SQLite calls the
  ** destructor, which drops it again. */
  if (rc == SQLITE_OK) rc = dbpool_register_pool_stats(db, conn);
  if (rc == SQLITE_OK) rc = dbpool_register_pool_connections(db, conn);
  if (rc == SQLITE_OK) rc = dbpool_register_pool_settings(db, conn);
  if (rc == SQLITE_OK) rc = dbpool_register_functions(db, conn);
  if (rc != SQLITE_OK && !*pzErrMsg)
    *pzErrMsg = sqlite3_mprintf("dbpool: cannot register SQL objects: %s",
                                sqlite3_errstr(rc));
  dbpool_conn_unref(conn);
  return rc;
}
