/*
** settings.c -- the live settings of a pool: one descriptor table (name,
** default, range, environment variable, description) that the coordinator,
** the SQL extension and dbpoolctl all validate against, so an invalid value
** gets the same message everywhere and changes nothing.
*/
#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

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
                 "max_connections, paused)", name ? name : "(null)");
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
  if (s == DBPOOL_SETTING_PAUSED) {
    static const char *on[] = {"on", "true", "yes"}, *off[] = {"off", "false", "no"};
    for (int i = 0; i < 3; i++) {
      if (strcasecmp(text, on[i]) == 0) return *value = 1, 0;
      if (strcasecmp(text, off[i]) == 0) return *value = 0, 0;
    }
  }
  char *end;
  errno = 0;
  long long v = strtoll(text, &end, 10);
  if ((end == text || *end != 0 || text[0] == ' ' || text[0] == '\t') &&
      s == DBPOOL_SETTING_PAUSED)
    return dbp_err(-EINVAL, "dbpool: invalid value '%s' for paused: expected "
                   "0, 1, on, off, true, false, yes or no", text);
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

/* A setting's value in a header (the limit and the pause live in the gate). */
int64_t dbp_setting_read(const dbp_header *h, int s)
{
  dbp_gate g = dbp_gate_snapshot(h);
  switch (s) {
  case DBPOOL_SETTING_MAX_CONNECTIONS: return g_max(g.bits);
  case DBPOOL_SETTING_PAUSED: return (g.bits & G_PAUSED) != 0;
  case DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS:
    return atomic_load(&((dbp_header *)h)->acquire_timeout_ms);
  }
  return 0;
}

/* In a segment nobody else sees yet (creation): store value. */
void dbp_setting_init(dbp_header *h, int s, int64_t value)
{
  switch (s) {
  case DBPOOL_SETTING_MAX_CONNECTIONS:
    h->gate.half[1] = g_with(h->gate.half[1], G_MAX_SHIFT, (unsigned)value);
    break;
  case DBPOOL_SETTING_PAUSED:
    if (value) h->gate.half[1] |= G_PAUSED | G_SLOW;
    else h->gate.half[1] &= ~G_PAUSED;
    break;
  case DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS:
    atomic_store(&h->acquire_timeout_ms, (int32_t)value);
    break;
  }
}

/* May this attachment steer the pool (change settings, remove it)? Those
** who can write the database, and root. */
int dbp_steer_check(dbpool_coord *c, const char *what)
{
  if (c->readonly)
    return dbp_err(-EROFS, "dbpool: cannot %s the pool of %s: attached read-only",
                   what, c->path);
  if (c->steer_ok) return 0;
  return dbp_err(-EPERM, "dbpool: cannot %s the pool of %s: that needs write "
                 "permission on the database (uid %u has none)", what, c->path,
                 (unsigned)geteuid());
}

int dbpool_coord_get(dbpool_coord *c, int s, int64_t *value)
{
  if (!c || !value) return dbp_err(-EINVAL, "dbpool: get: NULL argument");
  if (!dbpool_setting_describe(s))
    return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
  *value = dbp_setting_read(c->hdr, s);
  return 0;
}

int dbpool_coord_set(dbpool_coord *c, int s, int64_t value)
{
  const dbpool_setting_info *d = dbpool_setting_describe(s);
  if (!c) return dbp_err(-EINVAL, "dbpool: set: pool is NULL");
  if (!d) return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
  if (value < d->min_value || value > d->max_value)
    return out_of_range(s, (long long)value);
  char what[64];
  snprintf(what, sizeof what, "change %s of", d->name);
  int rc = dbp_steer_check(c, what);
  if (rc) return rc;
  if (s == DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS) {
    if (dbp_gate_snapshot(c->hdr).bits & G_REMOVED)
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                     c->path);
    atomic_store(&c->hdr->acquire_timeout_ms, (int32_t)value);
    return 0;
  }
  if ((rc = dbp_lock(c, -1))) return rc;
  dbp_header *h = c->hdr;
  if (dbp_gate_load(h).bits & G_REMOVED) {
    dbp_unlock(c);
    return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                   c->path);
  }
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
