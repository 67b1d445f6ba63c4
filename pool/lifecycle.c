/*
** lifecycle.c -- a pool's life: dbpool_config_init and its checks,
** dbpool_open, dbpool_close, the statistics, and the calling thread's
** message. Acquiring is acquire.c's, releasing release.c's, and what both
** share (the waiters' queue, the openers, handing a connection over)
** handoff.c's.
*/
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool_internal.h"

const char *dbpool_errmsg(dbpool *pool)
{
  (void)pool;
  return dbp_errmsg();
}

int pool_inherited(void)
{
  return dbp_err(SQLITE_MISUSE, "dbpool: this pool was inherited across "
                  "fork(); a child must open its own pool");
}

void dbpool_config_init(dbpool_config *cfg)
{
  memset(cfg, 0, sizeof *cfg);
  cfg->size = (uint32_t)sizeof *cfg;
  cfg->max_size = 10;
  cfg->min_idle = 0;
  cfg->acquire_timeout_ms = 5000;
  cfg->idle_timeout_ms = 600000;
  cfg->max_lifetime_ms = 1800000;
  cfg->leak_threshold_ms = 0;
  cfg->close_timeout_ms = 5000;
  cfg->open_flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
}

static int check_config(const dbpool_config *c)
{
#define BAD(...) return dbp_err(SQLITE_MISUSE, __VA_ARGS__)
  if (c->max_size < 1 || c->max_size > DBPOOL_MAX_CONNECTIONS_LIMIT)
    BAD("dbpool: max_size=%d is out of range (1..%d)", c->max_size,
        DBPOOL_MAX_CONNECTIONS_LIMIT);
  if (c->min_idle < 0 || c->min_idle > c->max_size)
    BAD("dbpool: min_idle=%d is out of range (0..max_size=%d)", c->min_idle, c->max_size);
  if (c->idle_timeout_ms < 0) BAD("dbpool: idle_timeout_ms=%d is negative", c->idle_timeout_ms);
  if (c->max_lifetime_ms < 0) BAD("dbpool: max_lifetime_ms=%d is negative", c->max_lifetime_ms);
  if (c->leak_threshold_ms < 0)
    BAD("dbpool: leak_threshold_ms=%d is negative", c->leak_threshold_ms);
  if (c->close_timeout_ms < 0) BAD("dbpool: close_timeout_ms=%d is negative", c->close_timeout_ms);
  if (!(c->open_flags & (SQLITE_OPEN_READWRITE | SQLITE_OPEN_READONLY)))
    BAD("dbpool: open_flags=0x%x has neither SQLITE_OPEN_READWRITE nor "
        "SQLITE_OPEN_READONLY", (unsigned)c->open_flags);
#undef BAD
  return SQLITE_OK;
}

static char *dup_or_null(const char *s, bool *oom)
{
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) *oom = true;
  return d;
}

static void pool_free(dbpool *p)
{
  if (p->entries)
    for (int i = 0; i < p->cfg.max_size; i++) dbpool_holder_free(p->entries[i].holder);
  dbpool_coord_close(p->coord);
  for (int i = 0; i < p->nretired; i++) dbpool_coord_close(p->retired[i]);
  free(p->entries);
  free(p->map);
  free(p->path);
  free(p->uri);
  free(p->init_sql);
  free(p->validation_sql);
  free(p->vfs);
  free(p);
}

/* The caller's configuration as this library's struct: the members its
** size covers, defaults for the rest (a program built with older headers). */
static int full_config(const dbpool_config *given, dbpool_config *full)
{
  dbpool_config_init(full);
  if (!given) return SQLITE_OK;
  if (dbp_sized_check(given, POOL_V1_CONFIG, "dbpool_config", "dbpool_config_init"))
    return SQLITE_MISUSE; /* message set */
  memcpy(full, given, given->size < sizeof *full ? given->size : sizeof *full);
  full->size = (uint32_t)sizeof *full;
  return SQLITE_OK;
}

int dbpool_open(const char *path, const dbpool_config *given, dbpool **out)
{
  dbpool_config config;
  const dbpool_config *cfg = &config;
  if (!out) return dbp_err(SQLITE_MISUSE, "dbpool: open: out is NULL");
  *out = NULL;
  if (!path) return dbp_err(SQLITE_MISUSE, "dbpool: open: path is NULL");
  int rc = full_config(given, &config);
  if (rc) return rc;
  rc = check_config(cfg);
  if (rc) return rc;

  /* The host pool needs the file to exist; SQLite may create it. */
  if (access(path, F_OK) != 0 && (cfg->open_flags & SQLITE_OPEN_CREATE)) {
    sqlite3 *db = NULL;
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, cfg->vfs);
    if (rc != SQLITE_OK) {
      dbp_err(rc, "dbpool: cannot create %s: %s", path,
               db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
      sqlite3_close(db);
      return rc;
    }
    sqlite3_close(db);
  }

  dbpool *p = calloc(1, sizeof *p);
  if (!p) return dbp_err(SQLITE_NOMEM, "dbpool: out of memory");
  p->cfg = *cfg;
  bool oom = false;
  p->path = dup_or_null(path, &oom);
  p->init_sql = dup_or_null(cfg->init_sql, &oom);
  p->validation_sql = dup_or_null(cfg->validation_sql, &oom);
  p->vfs = dup_or_null(cfg->vfs, &oom);
  p->cfg.init_sql = p->init_sql;
  p->cfg.validation_sql = p->validation_sql;
  p->cfg.vfs = p->vfs;
  p->uri = conn_uri(path);
  p->entries = calloc((size_t)cfg->max_size, sizeof *p->entries);
  p->idle_top = -1;
  p->fork_gen = dbp_fork_gen();
  p->real_minus_mono_ns = dbp_real_ns() - dbp_mono_ns();
  if (oom || !p->uri || !p->entries || map_init(p) != 0) {
    pool_free(p);
    return dbp_err(SQLITE_NOMEM, "dbpool: out of memory");
  }
  int crc = dbpool_coord_open(path, 0, &p->coord);
  if (crc) {
    rc = dbp_sqlite_rc(crc, SQLITE_CANTOPEN); /* message set */
    pool_free(p);
    return rc;
  }
  p->host_waiting = dbp_coord_waiting_word(p->coord);
  rc = housekeeper_start(p);
  if (rc) {
    pool_free(p);
    return rc;
  }
  *out = p;
  return SQLITE_OK;
}

int dbpool_close(dbpool *p)
{
  if (!p) return SQLITE_OK;
  if (pool_foreign(p)) return pool_inherited();
  housekeeper_stop(p);
  lock_pool(p);
  p->closing = true;
  for (pool_waiter *w = p->wq_head; w; w = w->next) {
    atomic_store(&w->word, 1);
    pool_futex_wake(&w->word, 1);
  }
  for (pool_opener *op = p->openers; op; op = op->next) {
    pool_cancel_opener_locked(p, op);
  }
  while (p->idle_top >= 0) {
    int idx = p->idle_top;
    p->idle_top = p->entries[idx].idle_next;
    p->n_idle--;
    entry_retire_locked(p, idx, CLOSE_POOL_CLOSE);
    pool_close_entry(p, idx);
  }
  int64_t deadline = dbp_mono_ns() + (int64_t)p->cfg.close_timeout_ms * 1000000;
  while ((p->n_total > 0 || p->n_waiting > 0) && dbp_mono_ns() < deadline) {
    uint32_t v = atomic_load(&p->drain_event);
    unlock_pool(p);
    pool_futex_wait(&p->drain_event, v, deadline);
    lock_pool(p);
  }
  int out = p->n_total, waiting = p->n_waiting;
  unlock_pool(p);
  if (out > 0 || waiting > 0)
    return dbp_err(SQLITE_BUSY, "dbpool: close: %d connection%s of %s still "
                    "checked out after %d ms; the pool stays open (closing) "
                    "until they are released and dbpool_close is called again",
                    out, out == 1 ? "" : "s", p->path, p->cfg.close_timeout_ms);
  pool_free(p);
  return SQLITE_OK;
}

/* ------------------------------------------------------------- statistics */

static void stats_full(dbpool *p, dbpool_stats *out);

int dbpool_get_stats(dbpool *p, dbpool_stats *out)
{
  if (!p || !out) return dbp_err(SQLITE_MISUSE, "dbpool: get_stats: NULL argument");
  if (pool_foreign(p)) return pool_inherited();
  if (dbp_sized_check(out, POOL_V1_STATS, "dbpool_stats", "DBPOOL_INIT"))
    return SQLITE_MISUSE; /* message set */
  dbpool_stats full;
  stats_full(p, &full);
  dbp_sized_out(out, &full, sizeof full);
  return SQLITE_OK;
}

static void stats_full(dbpool *p, dbpool_stats *out)
{
  lock_pool(p);
  *out = p->st;
  out->size = (uint32_t)sizeof *out;
  out->max_size = p->cfg.max_size;
  out->min_idle = p->cfg.min_idle;
  out->active = p->n_out;
  out->idle = p->n_idle;
  out->total = p->n_total;
  out->waiting = p->n_waiting;
  out->available = p->n_idle + (p->cfg.max_size - p->n_total);
  unlock_pool(p);
  out->utilization = (double)out->active / out->max_size;
  out->avg_wait_ms = out->checkouts ? (double)out->total_wait_ns / 1e6 / (double)out->checkouts : 0;
}

int dbpool_get_host_stats(dbpool *p, dbpool_host_stats *out)
{
  if (!p || !out) return dbp_err(SQLITE_MISUSE, "dbpool: get_host_stats: NULL argument");
  if (pool_foreign(p)) return pool_inherited();
  if (dbp_sized_check(out, DBP_V1_HOST_STATS, "dbpool_host_stats", "DBPOOL_INIT"))
    return SQLITE_MISUSE; /* message set */
  int rc = dbpool_coord_stats(p->coord, out);
  return rc ? dbp_sqlite_rc(rc, SQLITE_ERROR) : SQLITE_OK; /* message set */
}
