/*
** settings.c -- the live settings of a pool: one descriptor table (name,
** default, range, environment variable, description) that the coordinator,
** the SQL extension and dbpoolctl all validate against, so an invalid value
** gets the same message everywhere and changes nothing.
*/
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "writer.h"

static const dbpool_setting_info g_settings[DBPOOL_SETTING_COUNT] = {
    [DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS] =
        {"acquire_timeout_ms", 5000, 0, DBPOOL_ACQUIRE_TIMEOUT_LIMIT,
         DBPOOL_ENV_ACQUIRE_TIMEOUT_MS,
         "How long an acquire waits for a slot before it fails, in ms."},
    [DBPOOL_SETTING_MAX_CONNECTIONS] =
        {"max_connections", 10, 1, DBPOOL_MAX_CONNECTIONS_LIMIT,
         DBPOOL_ENV_MAX_CONNECTIONS,
         "Most connections held at once by all processes on the host."},
    [DBPOOL_SETTING_PAUSED] =
        {"paused", 0, 0, 1, NULL,
         "1 makes new acquires wait until the pool is resumed (0)."},
    [DBPOOL_SETTING_WRITER_QUEUE] =
        {"writer_queue", DBP_WQ_ON_DEFAULT, 0, 1, NULL,
         "1 makes WAL writers take turns host-wide in arrival order (0: "
         "SQLite's busy handler alone)."},
    [DBPOOL_SETTING_WRITER_STARVATION_MS] =
        {"writer_starvation_ms", DBP_WQ_STARVE_DEFAULT_MS, 0,
         DBPOOL_WRITER_STARVATION_LIMIT, NULL,
         "A writer that has waited this long gets the next turn (no barging "
         "past it), in ms."},
};

const dbpool_setting_info *dbpool_setting_describe(int s)
{
  return s >= 0 && s < DBPOOL_SETTING_COUNT ? &g_settings[s] : NULL;
}

int dbpool_setting_lookup(const char *name)
{
  for (int s = 0; name && s < DBPOOL_SETTING_COUNT; s++)
    if (strcmp(name, g_settings[s].name) == 0) return s;
  return dbp_err(-EINVAL,
                 "dbpool: unknown setting '%s' (settings: acquire_timeout_ms, "
                 "max_connections, paused, writer_queue, writer_starvation_ms)",
                 name ? name : "(null)");
}

static int out_of_range(int s, long long v)
{
  const dbpool_setting_info *d = &g_settings[s];
  return dbp_err(-ERANGE, "dbpool: %s=%lld is out of range (%lld..%lld)",
                 d->name, v, (long long)d->min_value, (long long)d->max_value);
}

int dbpool_setting_parse(int s, const char *text, int64_t *value)
{
  const dbpool_setting_info *d = dbpool_setting_describe(s);
  if (!d) return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
  if (!text) text = "";
  bool onoff = s == DBPOOL_SETTING_PAUSED || s == DBPOOL_SETTING_WRITER_QUEUE;
  if (onoff) {
    static const char *on[] = {"on", "true", "yes"}, *off[] = {"off", "false", "no"};
    for (int i = 0; i < 3; i++) {
      if (strcasecmp(text, on[i]) == 0) return *value = 1, 0;
      if (strcasecmp(text, off[i]) == 0) return *value = 0, 0;
    }
  }
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if ((end == text || *end != 0 || text[0] == ' ' || text[0] == '\t') && onoff)
    return dbp_err(-EINVAL, "dbpool: invalid value '%s' for %s: expected "
                   "0, 1, on, off, true, false, yes or no", text, d->name);
  if (end == text || *end != 0 || text[0] == ' ' || text[0] == '\t')
    return dbp_err(-EINVAL,
                   "dbpool: invalid value '%s' for %s: expected an integer "
                   "from %lld to %lld", text, d->name,
                   (long long)d->min_value, (long long)d->max_value);
  if (errno == ERANGE || v < d->min_value || v > d->max_value)
    return errno == ERANGE ? dbp_err(-ERANGE, "dbpool: %s=%s is out of range "
                                     "(%lld..%lld)", d->name, text,
                                     (long long)d->min_value,
                                     (long long)d->max_value)
                           : out_of_range(s, v);
  *value = v;
  return 0;
}

int dbpool_coord_get(dbpool_coord *c, int s, int64_t *value)
{
  if (!c || !value) return dbp_err(-EINVAL, "dbpool: get: NULL argument");
  dbp_gate g = dbp_gate_snapshot(c->hdr);
  switch (s) {
  case DBPOOL_SETTING_MAX_CONNECTIONS: *value = g_max(g.bits); return 0;
  case DBPOOL_SETTING_PAUSED: *value = (g.bits & G_PAUSED) != 0; return 0;
  case DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS:
    *value = atomic_load(&c->hdr->acquire_timeout_ms);
    return 0;
  case DBPOOL_SETTING_WRITER_QUEUE:
    *value = atomic_load(&c->hdr->writerq.enabled) != 0;
    return 0;
  case DBPOOL_SETTING_WRITER_STARVATION_MS:
    *value = atomic_load(&c->hdr->writerq.starve_ms);
    return 0;
  }
  return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
}

int dbpool_coord_set(dbpool_coord *c, int s, int64_t value)
{
  const dbpool_setting_info *d = dbpool_setting_describe(s);
  if (!c) return dbp_err(-EINVAL, "dbpool: set: pool is NULL");
  if (!d) return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
  if (value < d->min_value || value > d->max_value)
    return out_of_range(s, (long long)value);
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: cannot change %s of %s: attached "
                   "read-only (no write permission on the pool)", d->name, c->path);
  if (s == DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS) {
    atomic_store(&c->hdr->acquire_timeout_ms, (int32_t)value);
    return 0;
  }
  if (s == DBPOOL_SETTING_WRITER_QUEUE || s == DBPOOL_SETTING_WRITER_STARVATION_MS)
    return dbp_wq_set(c, s, value);
  int rc = dbp_lock(c, -1);
  if (rc) return rc;
  dbp_header *h = c->hdr;
  if (s == DBPOOL_SETTING_PAUSED) {
    if (value) dbp_gate_set_flags(c, G_PAUSED | G_SLOW, 0);
    else dbp_gate_set_flags(c, 0, G_PAUSED);
  } else {
    /* The limit is in the gate: a fast path that read the old one fails
    ** its CAS and reads the new one. */
    dbp_gate g = dbp_gate_load(h);
    for (;;) {
      dbp_gate n = {.seq = g.seq, .bits = g_with(g.bits, G_MAX_SHIFT, (unsigned)value)};
      if (dbp_gate_cas(h, &g, n)) break;
    }
  }
  dbp_unlock_granting(c);
  return 0;
}

/* The value a new pool starts with: the environment variable if set. */
int dbp_setting_initial(int s, int64_t *value)
{
  const dbpool_setting_info *d = &g_settings[s];
  *value = d->default_value;
  const char *env = d->env ? getenv(d->env) : NULL;
  if (!env || !*env) return 0;
  int rc = dbpool_setting_parse(s, env, value);
  if (rc)
    return dbp_err(rc, "dbpool: environment variable %s='%s' is invalid: "
                   "expected an integer from %lld to %lld", d->env, env,
                   (long long)d->min_value, (long long)d->max_value);
  return 0;
}
