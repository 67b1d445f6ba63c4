/*
** foreign_vfs.c -- what the pool finds in the process's SQLite that it did
** not put there.
**
** Checks:
**   - a VFS registered under the extension's hook name ("dbpool") that is
**     not the extension's -- its pAppData has another magic number, or the
**     right one with version 0 -- is ignored: the pool never calls into it,
**     and each connection is counted once in the host pool;
**   - file names with every ASCII punctuation character percent-encoded by
**     the pool's URI open the right file.
*/
#include <sys/stat.h>

#include "poolutil.h"
#include "ext/pooled.h"

static atomic_int g_expect_calls;

static void count_expect(const char *segment, unsigned record)
{
  (void)segment;
  (void)record;
  atomic_fetch_add(&g_expect_calls, 1);
}

TEST(a_vfs_named_like_the_extensions_hook_is_ignored)
{
  const char *path = tu_db("foreign.db");
  REQUIRE(sqlite3_vfs_find(DBP_POOLED_VFS) == NULL); /* the extension is not loaded */
  static dbp_pooled_hook fakes[] = {
      {.magic = DBP_POOLED_MAGIC ^ 1u, .version = 1, .expect = count_expect},
      {.magic = DBP_POOLED_MAGIC, .version = 0, .expect = count_expect},
  };
  for (size_t i = 0; i < sizeof fakes / sizeof *fakes; i++) {
    static sqlite3_vfs impostor;
    impostor = *sqlite3_vfs_find(NULL);
    impostor.zName = DBP_POOLED_VFS;
    impostor.pAppData = &fakes[i];
    impostor.pNext = NULL;
    REQUIRE(sqlite3_vfs_register(&impostor, 0) == SQLITE_OK);
    dbpool_config cfg = pu_config(2);
    dbpool *p = pu_open(path, &cfg);
    sqlite3 *a, *b;
    CHECK_SQ(dbpool_acquire(p, &a), SQLITE_OK);
    CHECK_SQ(dbpool_acquire(p, &b), SQLITE_OK);
    CHECK_SQ(pu_exec(a, "CREATE TABLE IF NOT EXISTS t(x)"), SQLITE_OK);
    CHECK_CMP(atomic_load(&g_expect_calls), ==, 0);
    CHECK_CMP(pu_host(path).active, ==, 2); /* counted once each */
    CHECK_SQ(dbpool_release(p, a), SQLITE_OK);
    CHECK_SQ(dbpool_release(p, b), SQLITE_OK);
    CHECK_SQ(dbpool_close(p), SQLITE_OK);
    CHECK_CMP(pu_host(path).active, ==, 0);
    REQUIRE(sqlite3_vfs_unregister(&impostor) == SQLITE_OK);
  }
}

TEST(punctuation_in_file_names)
{
  char path[700];
  snprintf(path, sizeof path, "%s/p!\"$&'()*+,;=:@[]^`{|}~ .db", tu_dir);
  sqlite3 *own = NULL;
  REQUIRE(sqlite3_open_v2(path, &own, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) ==
          SQLITE_OK);
  pu_exec(own, "CREATE TABLE here(x); INSERT INTO here VALUES(7)");
  sqlite3_close(own);
  dbpool_config cfg = pu_config(1);
  cfg.open_flags = SQLITE_OPEN_READWRITE; /* no CREATE: a wrong name fails */
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  if (db) {
    CHECK_CMP(pu_int(db, "SELECT x FROM here"), ==, 7);
    CHECK_STR(sqlite3_db_filename(db, "main"), path);
    CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  }
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

int main(void)
{
  tu_init("pool-foreign-vfs");
  alarm(120);
  RUN(a_vfs_named_like_the_extensions_hook_is_ignored);
  RUN(punctuation_in_file_names);
  return tu_finish();
}
