/*
** extension.c -- the C pool and the SQLite extension in one process: pooled
** connections are counted once (the pool tells the extension in process,
** ext/pooled.h), they answer the extension's SQL like any connection,
** current row and label included, and nothing in a URI can make a
** connection uncounted.
*/
#include <limits.h>

#include "poolutil.h"

static char ext_path[PATH_MAX];

static int one_int(sqlite3 *db, const char *sql, long long *out)
{
  sqlite3_stmt *st;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
    *out = sqlite3_column_int64(st, 0);
    rc = SQLITE_OK;
  }
  sqlite3_finalize(st);
  return rc;
}

TEST(pooled_connections_are_counted_once_and_answer_sql)
{
  const char *path = tu_db("ext.db");
  dbpool_config cfg = pu_config(2);
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a, *b;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 2); /* not 4 */

  long long v = -1;
  char sql[PATH_MAX + 128];
  snprintf(sql, sizeof sql, "SELECT active FROM pool_stats WHERE database = '%s'",
           path);
  CHECK_SQ(one_int(a, sql, &v), SQLITE_OK);
  CHECK_CMP(v, ==, 2);
  CHECK_SQ(one_int(a, "SELECT count(*) FROM pool_connections WHERE current", &v), SQLITE_OK);
  CHECK_CMP(v, ==, 1);
  CHECK_SQ(one_int(a, "SELECT pid = (SELECT pid FROM pool_connections WHERE current) "
                      "FROM pool_connections WHERE current", &v), SQLITE_OK);
  CHECK_SQ(pu_exec(a, "SELECT dbpool_label('pooled-a')"), SQLITE_OK);
  CHECK_SQ(one_int(b, "SELECT count(*) FROM pool_connections WHERE label = 'pooled-a' "
                      "AND NOT current", &v), SQLITE_OK);
  CHECK_CMP(v, ==, 1);
  /* Both show how they came: through the C pool. */
  CHECK_SQ(one_int(a, "SELECT count(*) FROM pool_connections WHERE joined = 'c-pool'", &v),
           SQLITE_OK);
  CHECK_CMP(v, ==, 2);
  CHECK_SQ(one_int(a, "SELECT value FROM pool_settings WHERE name = 'max_connections'", &v),
           SQLITE_OK);
  CHECK_CMP(v, ==, 10);

  /* Idle connections show as idle in the host pool. */
  CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
  snprintf(sql, sizeof sql, "SELECT idle FROM pool_stats WHERE database = '%s'", path);
  CHECK_SQ(one_int(a, sql, &v), SQLITE_OK);
  CHECK_CMP(v, ==, 1);

  /* A connection the process opens by itself is counted by the extension. */
  sqlite3 *own;
  CHECK_SQ(sqlite3_open(path, &own), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 3);
  CHECK_SQ(one_int(own, "SELECT joined = 'auto' FROM pool_connections WHERE current", &v),
           SQLITE_OK);
  CHECK_CMP(v, ==, 1);
  sqlite3_close(own);
  CHECK_CMP(pu_host(path).active, ==, 2);

  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

static void set_host_limit(const char *path, int64_t max)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(path, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, max) == 0);
  dbpool_coord_close(c);
}

/* With max_connections=1 held by the C pool, the pool still opens its own
** connection (counted once), and a connection whose URI claims the pool's
** slot (dbpool_slot=N, how 0.1.0 marked pooled connections) is counted like
** any other: it waits, and fails. */
TEST(a_uri_cannot_take_a_connection_out_of_the_count)
{
  const char *path = tu_db("forged.db");
  set_host_limit(path, 1);
  dbpool_config cfg = pu_config(1);
  cfg.acquire_timeout_ms = 2000;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *a;
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 1);
  char uri[PATH_MAX + 64];
  for (unsigned slot = 0; slot < 3; slot++) {
    snprintf(uri, sizeof uri, "file:%s?dbpool_slot=%u&dbpool_timeout=100", path, slot);
    sqlite3 *forged = NULL;
    CHECK_SQ(sqlite3_open_v2(uri, &forged, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL),
             SQLITE_BUSY);
    CHECK_HAS(sqlite3_errmsg(forged), "all 1 connections to ");
    sqlite3_close(forged);
  }
  CHECK_CMP(pu_host(path).active, ==, 1);
  /* The pool's own connection was not counted twice: released and acquired
  ** again (a new connection once the old is retired), it still opens. */
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  p = pu_open(path, &cfg);
  CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 1);
  CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
  CHECK_CMP(pu_host(path).active, ==, 0);
}

int main(void)
{
  tu_init("pool-ext");
  const char *b = getenv("B") ? getenv("B") : "build";
  if (!realpath(b, ext_path)) {
    fprintf(stderr, "no build directory %s\n", b);
    return 2;
  }
  strncat(ext_path, "/dbpool", sizeof ext_path - strlen(ext_path) - 1);
  /* Load the extension into this process, from a connection that holds no
  ** slot: from now on every connection the process opens is counted by it,
  ** unless it is the pool's. */
  sqlite3 *boot;
  char *err = NULL;
  REQUIRE(sqlite3_open(":memory:", &boot) == SQLITE_OK);
  sqlite3_enable_load_extension(boot, 1);
  if (sqlite3_load_extension(boot, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "load: %s\n", err ? err : "?");
    return 2;
  }
  RUN(pooled_connections_are_counted_once_and_answer_sql);
  RUN(a_uri_cannot_take_a_connection_out_of_the_count);
  sqlite3_close(boot);
  return tu_finish();
}
