/*
** common.c -- small helpers the extension's SQL objects share: timestamps, the one-line stats summary, and applying a setting given as
** text (so PRAGMA and pool_settings validate identically).
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

char *dbx_stats_summary(dbpool_coord *c)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  if (dbpool_coord_stats(c, &st) != 0 || dbpool_coord_writer_stats(c, &ws) != 0)
    return NULL;
  return sqlite3_mprintf(
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
}

int dbx_set_setting_text(dbpool_coord *c, const char *name,
                            const char *text, char **pzErr)
{
  int64_t v;
  int s = dbpool_setting_lookup(name);
  int rc = s < 0 ? s : dbpool_setting_parse(s, text, &v);
  if (rc == 0) rc = dbpool_coord_set(c, s, v);
  if (rc) {
    *pzErr = sqlite3_mprintf("%s", dbpool_last_error());
    return SQLITE_ERROR;
  }
  return SQLITE_OK;
}

typedef struct each_pool {
  int (*add)(void *arg, dbpool_coord *c);
  void *arg;
  int rc;
} each_pool;

static int each_segment(const char *name, void *p)
{
  each_pool *e = p;
  dbpool_coord *c;
  if (dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c) != 0)
    return 0; /* not readable by this user, or gone: not listed */
  e->rc = e->add(e->arg, c);
  dbpool_coord_close(c);
  return e->rc != SQLITE_OK;
}

int dbx_for_each_pool(const char *path, int (*add)(void *arg, dbpool_coord *c),
                         void *arg)
{
  each_pool e = {add, arg, SQLITE_OK};
  if (path) {
    dbpool_coord *c;
    if (dbpool_coord_open(path, DBPOOL_OPEN_READONLY, &c) == 0) {
      e.rc = add(arg, c);
      dbpool_coord_close(c);
    }
    return e.rc;
  }
  int rc = dbpool_coord_list(each_segment, &e);
  return rc < 0 ? SQLITE_ERROR : e.rc;
}
