/*
** common.c -- small helpers the extension's SQL objects share: timestamps,
** the one-line stats summary, applying a setting given as text (PRAGMA),
** and walking the pools a listing shows.
*/
#include <errno.h>
#include <string.h>
#include <time.h>

#include "ext.h"
SQLITE_EXTENSION_INIT3

char *dbx_iso8601(int64_t ns)
{
  time_t secs = (time_t)(ns / 1000000000);
  struct tm tm;
  if (ns <= 0 || !gmtime_r(&secs, &tm)) return NULL;
  return sqlite3_mprintf("%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                         tm.tm_sec, (int)(ns / 1000000 % 1000));
}

/* The writer queue's state as one word for the key=value summary. */
static const char *queue_token(const dbpool_writer_stats *ws)
{
  const char *s = dbpool_writer_queue_status(ws);
  return strncmp(s, "inactive", 8) == 0 ? "inactive(rollback-journal)" : s;
}

int dbx_stats_summary(dbpool_coord *c, char **out)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  int err = dbpool_coord_stats(c, &st);
  if (err == 0) err = dbpool_coord_writer_stats(c, &ws);
  if (err) {
    *out = sqlite3_mprintf("%s", dbpool_last_error());
    return dbp_sqlite_rc(err, SQLITE_ERROR);
  }
  *out = sqlite3_mprintf(
      "max_connections=%u active=%u idle=%u waiting=%u peak_active=%u "
      "processes=%u total_acquired=%llu total_timeouts=%llu "
      "total_reclaimed=%llu p99_wait_ms=%.3f paused=%d writer_queue=%s "
      "writers_waiting=%u total_writes=%llu write_wait_p999_ms=%.3f",
      st.max_connections, st.active, st.idle, st.waiting, st.peak_active,
      st.processes, (unsigned long long)st.total_acquired,
      (unsigned long long)st.total_timeouts,
      (unsigned long long)st.total_reclaimed, (double)st.p99_wait_ns / 1e6,
      st.paused, queue_token(&ws), ws.waiting,
      (unsigned long long)ws.total_writes, (double)ws.p999_wait_ns / 1e6);
  return *out ? SQLITE_OK : SQLITE_NOMEM;
}

int dbx_set_setting_text(dbpool_coord *c, int s, const char *text, char **out)
{
  int64_t v;
  int err = dbpool_setting_parse(s, text, &v);
  if (err) {
    *out = sqlite3_mprintf("%s", dbpool_last_error());
    return SQLITE_ERROR;
  }
  /* The answer first: once the setting is changed, nothing may fail. */
  *out = sqlite3_mprintf("%lld", (long long)v);
  if (!*out) return SQLITE_NOMEM;
  err = dbpool_coord_set(c, s, v);
  if (err) {
    sqlite3_free(*out);
    *out = sqlite3_mprintf("%s", dbpool_last_error());
    return err == -ENOMEM ? SQLITE_NOMEM : SQLITE_ERROR;
  }
  return SQLITE_OK;
}

typedef struct each_pool {
  int (*add)(void *arg, dbpool_coord *c, char **pzErr);
  void *arg;
  int rc;
  char **pzErr;
} each_pool;

/* An error of the coordinator's, with its message. */
static int coord_error(int err, char **pzErr)
{
  *pzErr = sqlite3_mprintf("%s", dbpool_last_error());
  return dbp_sqlite_rc(err, SQLITE_ERROR);
}

static int each_segment(const char *name, void *p)
{
  each_pool *e = p;
  dbpool_coord *c;
  int err = dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c);
  if (err && dbp_list_skips(err)) return 0; /* not a pool this user lists */
  if (err) {
    e->rc = coord_error(err, e->pzErr);
    return 1;
  }
  e->rc = e->add(e->arg, c, e->pzErr);
  dbpool_coord_close(c);
  return e->rc != SQLITE_OK;
}

int dbx_for_each_pool(const char *path,
                         int (*add)(void *arg, dbpool_coord *c, char **pzErr),
                         void *arg, char **pzErr)
{
  each_pool e = {add, arg, SQLITE_OK, pzErr};
  *pzErr = NULL;
  if (path) {
    dbpool_coord *c;
    int err = dbpool_coord_open(path, DBPOOL_OPEN_READONLY, &c);
    /* No such pool or file, not a file, or not this user's to see: no row. */
    if (err == -EINVAL || err == -ENAMETOOLONG || dbp_list_skips(err))
      return SQLITE_OK;
    if (err) return coord_error(err, pzErr);
    e.rc = add(arg, c, pzErr);
    dbpool_coord_close(c);
    return e.rc;
  }
  int err = dbpool_coord_list(each_segment, &e);
  if (err < 0) return coord_error(err, pzErr);
  return e.rc;
}
