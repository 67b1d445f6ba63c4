/*
** config.c -- what dbpool_open accepts and refuses, and what the settings
** at their edges do.
**
** Checks:
**   - every field out of its range is refused with SQLITE_MISUSE, a message
**     naming the field and its value, no pool and nothing created: max_size
**     above DBPOOL_MAX_CONNECTIONS_LIMIT, min_idle negative, max_lifetime_ms,
**     leak_threshold_ms and close_timeout_ms negative; the limits themselves
**     are accepted;
**   - NULL out or path: SQLITE_MISUSE with a message; dbpool_get_stats and
**     dbpool_get_host_stats with a NULL pool or a NULL struct: SQLITE_MISUSE;
**   - a database that cannot be created (its directory does not exist):
**     SQLITE_CANTOPEN with a message naming the path and SQLite's reason;
**   - idle_timeout_ms = 0 and max_lifetime_ms = 0 mean never: a connection
**     idle past many housekeeping periods (set short by a short
**     leak_threshold_ms, whose report proves the housekeeper ran) is the same
**     connection, never closed;
**   - a leak_threshold_ms longer than the housekeeping period reports
**     nothing for a short checkout.
*/
#include <sys/stat.h>

#include "poolutil.h"

TEST(out_of_range_fields_are_refused)
{
  const char *path = tu_db("range.db");
  static const struct {
    const char *field;
    int value;
    const char *message;
  } cases[] = {
      {"max_size", DBPOOL_MAX_CONNECTIONS_LIMIT + 1, "max_size=4097 is out of range (1..4096)"},
      {"min_idle", -1, "min_idle=-1 is out of range (0..max_size=10)"},
      {"max_lifetime_ms", -1, "max_lifetime_ms=-1 is negative"},
      {"leak_threshold_ms", -5, "leak_threshold_ms=-5 is negative"},
      {"close_timeout_ms", -1, "close_timeout_ms=-1 is negative"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    dbpool_config cfg;
    dbpool_config_init(&cfg);
    if (!strcmp(cases[i].field, "max_size")) cfg.max_size = cases[i].value;
    else if (!strcmp(cases[i].field, "min_idle")) cfg.min_idle = cases[i].value;
    else if (!strcmp(cases[i].field, "max_lifetime_ms")) cfg.max_lifetime_ms = cases[i].value;
    else if (!strcmp(cases[i].field, "leak_threshold_ms")) cfg.leak_threshold_ms = cases[i].value;
    else cfg.close_timeout_ms = cases[i].value;
    dbpool *p = (dbpool *)1;
    CHECK_SQ(dbpool_open(path, &cfg, &p), SQLITE_MISUSE);
    CHECK(p == NULL);
    CHECK_HAS(dbpool_errmsg(NULL), cases[i].message);
  }
  /* No host pool was made by any of them. */
  dbpool_coord *c = NULL;
  CHECK_RC(dbpool_coord_open(path, DBPOOL_OPEN_NOCREATE, &c), -ENOENT);

  /* The limits themselves are fine. */
  dbpool_config cfg = pu_config(DBPOOL_MAX_CONNECTIONS_LIMIT);
  cfg.min_idle = 0;
  cfg.max_lifetime_ms = cfg.leak_threshold_ms = cfg.close_timeout_ms = 0;
  dbpool *p = pu_open(path, &cfg);
  CHECK_CMP(pu_stats(p).max_size, ==, DBPOOL_MAX_CONNECTIONS_LIMIT);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(null_arguments_are_refused)
{
  const char *path = tu_db("nulls.db");
  dbpool *p = (dbpool *)1;
  CHECK_SQ(dbpool_open(path, NULL, NULL), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(NULL), "open: out is NULL");
  CHECK_SQ(dbpool_open(NULL, NULL, &p), SQLITE_MISUSE);
  CHECK(p == NULL);
  CHECK_HAS(dbpool_errmsg(NULL), "open: path is NULL");

  p = pu_open(path, NULL);
  dbpool_stats st;
  DBPOOL_INIT(&st);
  dbpool_host_stats hs;
  DBPOOL_INIT(&hs);
  CHECK_SQ(dbpool_get_stats(p, NULL), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(p), "get_stats: NULL argument");
  CHECK_SQ(dbpool_get_host_stats(NULL, &hs), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(p), "get_host_stats: NULL argument");
  CHECK_SQ(dbpool_get_host_stats(p, NULL), SQLITE_MISUSE);
  CHECK_SQ(dbpool_get_host_stats(p, &hs), SQLITE_OK);
  CHECK_SQ(dbpool_get_stats(p, &st), SQLITE_OK);
  CHECK(st.misuses == 0 && st.total == 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(a_database_that_cannot_be_created)
{
  char path[600];
  snprintf(path, sizeof path, "%s/no-such-dir/new.db", tu_dir);
  dbpool *p = (dbpool *)1;
  CHECK_SQ(dbpool_open(path, NULL, &p), SQLITE_CANTOPEN);
  CHECK(p == NULL);
  CHECK_HAS(dbpool_errmsg(NULL), "dbpool: cannot create ");
  CHECK_HAS(dbpool_errmsg(NULL), "no-such-dir/new.db: unable to open database file");
  struct stat st;
  CHECK(stat(path, &st) != 0);
}

typedef struct leak_seen {
  atomic_int n;
} leak_seen;

static void on_leak(void *arg, const dbpool_leak *leak)
{
  (void)leak;
  atomic_fetch_add(&((leak_seen *)arg)->n, 1);
}

TEST(zero_idle_timeout_and_lifetime_mean_never)
{
  const char *path = tu_db("never.db");
  leak_seen seen = {0};
  dbpool_config cfg = pu_config(2);
  cfg.idle_timeout_ms = 0;
  cfg.max_lifetime_ms = 0;
  cfg.leak_threshold_ms = 40; /* the housekeeper runs every 10 ms */
  cfg.on_leak = on_leak;
  cfg.on_leak_arg = &seen;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK_SQ(pu_exec(db, "CREATE TEMP TABLE marker_never(x)"), SQLITE_OK);
  /* Held past the threshold: reported, so the housekeeper is running. */
  CHECK(pu_wait(atomic_load(&seen.n) == 1, 10000));
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  /* Idle for many periods; then its idle clock, a full sweep, once more. */
  dbpool_stats st0 = pu_stats(p);
  tu_sleep_ms(200);
  dbpool_stats st = pu_stats(p);
  CHECK(st.closed == 0 && st.idle == 1 && st.total == 1);
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  CHECK(pu_has_marker(db, "marker_never")); /* the same connection */
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK(st0.created == 1 && pu_stats(p).created == 1);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

TEST(long_leak_threshold_reports_nothing_early)
{
  const char *path = tu_db("longleak.db");
  leak_seen seen = {0};
  dbpool_config cfg = pu_config(1);
  cfg.leak_threshold_ms = 600000; /* a quarter of it is past the 1 s default period */
  cfg.idle_timeout_ms = 0;
  cfg.on_leak = on_leak;
  cfg.on_leak_arg = &seen;
  dbpool *p = pu_open(path, &cfg);
  sqlite3 *db;
  CHECK_SQ(dbpool_acquire(p, &db), SQLITE_OK);
  tu_sleep_ms(50);
  CHECK_SQ(dbpool_release(p, db), SQLITE_OK);
  CHECK_CMP(atomic_load(&seen.n), ==, 0);
  CHECK_CMP(pu_stats(p).leaks_reported, ==, 0);
  CHECK_SQ(dbpool_close(p), SQLITE_OK);
}

int main(void)
{
  tu_init("pool-config");
  alarm(120);
  RUN(out_of_range_fields_are_refused);
  RUN(null_arguments_are_refused);
  RUN(a_database_that_cannot_be_created);
  RUN(zero_idle_timeout_and_lifetime_mean_never);
  RUN(long_leak_threshold_reports_nothing_early);
  return tu_finish();
}
