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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "writer.h"

static const dbpool_setting_info g_settings[DBPOOL_SETTING_COUNT] = {
    [DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS] =
        {sizeof(dbpool_setting_info), "acquire_timeout_ms", 5000, 0, DBPOOL_ACQUIRE_TIMEOUT_LIMIT,
         DBPOOL_ENV_ACQUIRE_TIMEOUT_MS,
         "How long an acquire waits for a slot before it fails, in ms."},
    [DBPOOL_SETTING_MAX_CONNECTIONS] =
        {sizeof(dbpool_setting_info), "max_connections", 10, 1, DBPOOL_MAX_CONNECTIONS_LIMIT,
         DBPOOL_ENV_MAX_CONNECTIONS,
         "Most connections held at once by all processes on the host."},
    [DBPOOL_SETTING_PAUSED] =
        {sizeof(dbpool_setting_info), "paused", 0, 0, 1, NULL,
         "1 makes new acquires wait until the pool is resumed (0)."},
    [DBPOOL_SETTING_WRITER_QUEUE] =
        {sizeof(dbpool_setting_info), "writer_queue", DBP_WQ_ON_DEFAULT, 0, 1, NULL,
         "1 makes WAL writers take turns host-wide in arrival order (0: "
         "SQLite's busy handler alone)."},
    [DBPOOL_SETTING_WRITER_STARVATION_MS] =
        {sizeof(dbpool_setting_info), "writer_starvation_ms", DBP_WQ_STARVE_DEFAULT_MS, 0,
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

static int out_of_range(int s, const char *value)
{
  const dbpool_setting_info *d = &g_settings[s];
  return dbp_err(-ERANGE, "dbpool: %s=%s is out of range (%lld..%lld)",
                 d->name, value, (long long)d->min_value,
                 (long long)d->max_value);
}

static int out_of_range_value(int s, long long v)
{
  char text[24];
  snprintf(text, sizeof text, "%lld", v);
  return out_of_range(s, text);
}

static bool is_space(char ch)
{
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' ||
         ch == '\v';
}

/* Append digit ch of a number's significand (leading zeros dropped); a
** digit beyond the 40th significant one can only be a zero, which scales. */
static bool add_digit(char *digits, size_t *n, char ch, long *scale)
{
  if (*n == 0 && ch == '0') return true;
  if (*n < 40) {
    digits[(*n)++] = ch;
    return true;
  }
  if (ch != '0') return false;
  ++*scale;
  return true;
}

/*
** The number in t[0..n): a decimal integer, or a decimal number with a
** fraction or an exponent whose value is an integer ("3.0", "3.", "30e-1",
** as SQLite renders a REAL). Exact and locale-independent (no strtod: the
** host application may have set a locale whose decimal point is a comma).
** Returns 1 and *v, 0 if t is not such a number (3.5 included), or -1 if it
** is an integer beyond the range of long long.
*/
static int parse_integral(const char *t, size_t n, long long *v)
{
  char digits[40];
  size_t i = 0, nd = 0, seen = 0;
  long scale = 0; /* the value is digits x 10^scale */
  bool neg = false;
  if (i < n && (t[i] == '+' || t[i] == '-')) neg = t[i++] == '-';
  for (; i < n && t[i] >= '0' && t[i] <= '9'; i++, seen++)
    if (!add_digit(digits, &nd, t[i], &scale)) return 0;
  if (i < n && t[i] == '.')
    for (i++; i < n && t[i] >= '0' && t[i] <= '9'; i++, seen++) {
      if (!add_digit(digits, &nd, t[i], &scale)) return 0;
      scale--; /* a fraction digit is worth a tenth of the one before */
    }
  if (seen == 0) return 0;
  if (i < n && (t[i] == 'e' || t[i] == 'E')) {
    bool eneg = false;
    long e = 0;
    size_t first;
    if (++i < n && (t[i] == '+' || t[i] == '-')) eneg = t[i++] == '-';
    for (first = i; i < n && t[i] >= '0' && t[i] <= '9'; i++)
      if (e < 100000) e = e * 10 + (t[i] - '0');
    if (i == first) return 0;
    scale += eneg ? -e : e;
  }
  if (i != n) return 0;
  while (nd > 0 && digits[nd - 1] == '0') { /* trailing zeros: scale up */
    nd--;
    scale++;
  }
  if (nd == 0) return *v = 0, 1;
  if (scale < 0) return 0; /* a fraction remains */
  unsigned long long acc = 0, limit = (unsigned long long)LLONG_MAX + neg;
  for (long k = 0; k < (long)nd + scale; k++) {
    unsigned d = k < (long)nd ? (unsigned)(digits[k] - '0') : 0;
    if (acc > (limit - d) / 10) return -1;
    acc = acc * 10 + d;
  }
  *v = neg ? (long long)(0 - acc) : (long long)acc;
  return 1;
}

/*
** The one rule for a setting's value, wherever it comes from (SQL, PRAGMA,
** URI, dbpoolctl, environment): surrounding whitespace is ignored; the rest
** is a decimal integer, or a number with an integral value written with a
** fraction or exponent (3.0); paused and writer_queue also take
** on/off/true/false/yes/no.
** Anything else (3.5, 'abc', '') is invalid; an integer outside the range
** is out of range. Messages quote the text as given.
*/
int dbpool_setting_parse(int s, const char *text, int64_t *value)
{
  const dbpool_setting_info *d = dbpool_setting_describe(s);
  if (!d) return dbp_err(-EINVAL, "dbpool: no setting number %d", s);
  if (!text) text = "";
  const char *t = text, *end = text + strlen(text);
  while (t < end && is_space(*t)) t++;
  while (end > t && is_space(end[-1])) end--;
  size_t n = (size_t)(end - t);
  bool onoff = s == DBPOOL_SETTING_PAUSED || s == DBPOOL_SETTING_WRITER_QUEUE;
  if (onoff) {
    static const char *on[] = {"on", "true", "yes"}, *off[] = {"off", "false", "no"};
    for (int i = 0; i < 3; i++) {
      if (n == strlen(on[i]) && strncasecmp(t, on[i], n) == 0) return *value = 1, 0;
      if (n == strlen(off[i]) && strncasecmp(t, off[i], n) == 0) return *value = 0, 0;
    }
  }
  long long v = 0;
  int kind = n ? parse_integral(t, n, &v) : 0;
  if (kind == 0 && onoff)
    return dbp_err(-EINVAL, "dbpool: invalid value '%s' for %s: expected "
                   "0, 1, on, off, true, false, yes or no", text, d->name);
  if (kind == 0)
    return dbp_err(-EINVAL,
                   "dbpool: invalid value '%s' for %s: expected an integer "
                   "from %lld to %lld", text, d->name,
                   (long long)d->min_value, (long long)d->max_value);
  if (kind < 0) {
    char shown[64];
    snprintf(shown, sizeof shown, "%.*s", (int)(n < 40 ? n : 40), t);
    return out_of_range(s, shown);
  }
  if (v < d->min_value || v > d->max_value) return out_of_range_value(s, v);
  *value = v;
  return 0;
}

/* A setting's value in a header (the limit and the pause live in the gate). */
int64_t dbp_setting_read(const dbp_header *h, int s)
{
  dbp_gate g = dbp_gate_snapshot(h);
  switch (s) { /* GCOVR_EXCL_BR_LINE: callers pass a described setting (0..COUNT-1) only */
  case DBPOOL_SETTING_MAX_CONNECTIONS: return g_max(g.bits);
  case DBPOOL_SETTING_PAUSED: return (g.bits & G_PAUSED) != 0;
  case DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS:
    return atomic_load(&((dbp_header *)h)->acquire_timeout_ms);
  case DBPOOL_SETTING_WRITER_QUEUE:
  case DBPOOL_SETTING_WRITER_STARVATION_MS:
    return dbp_wq_setting_read(h, s);
  }
  return 0; /* GCOVR_EXCL_LINE: not reached, as above */
}

/* In a segment nobody else sees yet (creation): store value. */
void dbp_setting_init(dbp_header *h, int s, int64_t value)
{
  switch (s) { /* GCOVR_EXCL_BR_LINE: create.c passes 0..COUNT-1 only */
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
  case DBPOOL_SETTING_WRITER_QUEUE:
  case DBPOOL_SETTING_WRITER_STARVATION_MS:
    dbp_wq_setting_init(h, s, value);
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
    return out_of_range_value(s, (long long)value);
  char what[64];
  snprintf(what, sizeof what, "change %s of", d->name);
  int rc = dbp_steer_check(c, what);
  if (rc) return rc;
  if (s == DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS || s == DBPOOL_SETTING_WRITER_QUEUE ||
      s == DBPOOL_SETTING_WRITER_STARVATION_MS) {
    if (dbp_gate_snapshot(c->hdr).bits & G_REMOVED)
      return dbp_err(-ESTALE, "dbpool: pool %s of %s was removed; reopen it", c->name,
                     c->path);
    if (s != DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS) return dbp_wq_set(c, s, value);
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
  DBP_CRASH_POINT("setting-changed");
  dbp_unlock_granting(c);
  return 0;
}

/* The value a new pool starts with when it is not given explicitly
** (dbpool_coord_open_with) nor taken over from a replaced file's pool
** (create.c): the environment variable if set (read and validated only
** then), else the default. */
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
