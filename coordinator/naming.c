/*
** naming.c -- the names pool segments live under in /dev/shm.
**
**   /dbpool[.<namespace>].<dev>.<ino>.<birth>[~<k>]      (numbers in hex)
**
** (dev, ino, birth) identify the database file (dbfile.c): a new file that
** reuses a deleted file's inode number has another birth time, so another
** name, so a fresh pool. The namespace (DBPOOL_NAMESPACE) keeps separate
** deployments and test runs apart.
**
** A pool normally lives under candidate 0 (no suffix). Candidates 1..7 exist
** because /dev/shm is sticky: only a segment's owner (or root) may unlink
** it. When a segment cannot be used by anyone who may read the database --
** it was removed by someone who could not unlink it, or its owner can no
** longer read the database -- everyone skips it, by the same rule, to the
** next candidate (attach.c), until its owner or root collects it.
*/
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define PREFIX "dbpool."

static bool ns_char_ok(char ch)
{
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
}

int dbp_namespace(const char **out)
{
  const char *ns = getenv(DBPOOL_ENV_NAMESPACE);
  *out = "";
  if (!ns || !*ns) return 0;
  size_t n = strlen(ns);
  bool ok = n <= 32;
  for (size_t i = 0; ok && i < n; i++) ok = ns_char_ok(ns[i]);
  if (!ok)
    return dbp_err(-EINVAL, "dbpool: %s='%s' is invalid: use 1 to 32 letters, "
                   "digits, '-' or '_'", DBPOOL_ENV_NAMESPACE, ns);
  *out = ns;
  return 0;
}

int dbpool_coord_namespace(const char **out)
{
  if (!out) return dbp_err(-EINVAL, "dbpool: namespace: NULL argument");
  return dbp_namespace(out);
}

void dbp_segment_name(const char *ns, const dbp_key *k, unsigned cand,
                      char out[DBP_SEGMENT_NAME_MAX])
{
  char suffix[8] = "";
  if (cand) snprintf(suffix, sizeof suffix, "~%u", cand % DBP_CANDIDATES);
  snprintf(out, DBP_SEGMENT_NAME_MAX, "/" PREFIX "%s%s%" PRIx64 ".%" PRIx64
           ".%" PRIx64 "%s", ns, *ns ? "." : "", k->dev, k->ino, k->birth, suffix);
}

static bool parse_hex(const char *s, size_t n, uint64_t *v)
{
  if (n == 0 || n > 16) return false;
  *v = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    int d = (ch >= '0' && ch <= '9') ? ch - '0'
          : (ch >= 'a' && ch <= 'f') ? ch - 'a' + 10 : -1;
    if (d < 0) return false;
    *v = *v << 4 | (uint64_t)d;
  }
  return true;
}

/* Parse "[/]dbpool.[ns.]dev.ino.birth[~k]". */
bool dbp_parse_segment_name(const char *name, char ns_out[33], dbp_key *k,
                            unsigned *cand)
{
  if (*name == '/') name++;
  if (strncmp(name, PREFIX, strlen(PREFIX)) != 0) return false;
  const char *s = name + strlen(PREFIX);
  size_t len = strlen(s);
  *cand = 0;
  const char *tilde = strchr(s, '~');
  if (tilde) {
    if (tilde[1] < '1' || tilde[1] > '0' + DBP_CANDIDATES - 1 || tilde[2]) return false;
    *cand = (unsigned)(tilde[1] - '0');
    len = (size_t)(tilde - s);
  }
  const char *part[4];
  size_t plen[4];
  int n = 0;
  const char *p = s, *end = s + len;
  while (p <= end && n < 4) {
    const char *dot = memchr(p, '.', (size_t)(end - p));
    if (!dot) dot = end;
    part[n] = p;
    plen[n++] = (size_t)(dot - p);
    p = dot + 1;
  }
  if (p <= end) return false; /* more than four parts */
  int first = n - 3;
  if (first < 0) return false;
  ns_out[0] = 0;
  if (first == 1) {
    if (plen[0] == 0 || plen[0] > 32) return false;
    for (size_t i = 0; i < plen[0]; i++)
      if (!ns_char_ok(part[0][i])) return false;
    memcpy(ns_out, part[0], plen[0]);
    ns_out[plen[0]] = 0;
  }
  return parse_hex(part[first], plen[first], &k->dev) &&
         parse_hex(part[first + 1], plen[first + 1], &k->ino) &&
         parse_hex(part[first + 2], plen[first + 2], &k->birth);
}

void dbp_shm_path(const char *name, char *out, size_t cap)
{
  snprintf(out, cap, DBP_SHM_DIR "/%s", name[0] == '/' ? name + 1 : name);
}
