/*
** view.c -- opening the pool a command names and taking a snapshot of it.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The library's message without its "dbpool: " prefix (we add ours). */
static const char *lib_error(void)
{
  const char *m = dbpool_last_error();
  return strncmp(m, "dbpool: ", 8) == 0 ? m + 8 : m;
}

static bool looks_like_segment(const char *s)
{
  return strncmp(s, "/dbpool.", 8) == 0 || strncmp(s, "dbpool.", 7) == 0;
}

int view_open(const char *cmd, const char *db, bool writable, pool_view *v)
{
  return view_open_initial(cmd, db, writable, 0, NULL, v);
}

int view_open_initial(const char *cmd, const char *db, bool writable,
                      unsigned given, const int64_t *values, pool_view *v)
{
  memset(v, 0, sizeof *v);
  unsigned flags = writable ? 0 : DBPOOL_OPEN_READONLY;
  if (writable && strcmp(cmd, "set") != 0) flags |= DBPOOL_OPEN_NOCREATE;
  int rc;
  if (access(db, F_OK) != 0 && looks_like_segment(db))
    rc = dbpool_coord_open_segment(db, flags, &v->c);
  else
    rc = dbpool_coord_open_initial(db, flags, given, values, &v->c);
  if (rc) return cli_fail(cmd, "%s", lib_error());
  dbpool_coord_database(v->c, v->database, sizeof v->database);
  snprintf(v->segment, sizeof v->segment, "%s", dbpool_coord_segment_name(v->c));
  return view_refresh(v) ? cli_fail(cmd, "%s", lib_error()) : EXIT_OK;
}

int view_open_segment(const char *segment, pool_view *v)
{
  memset(v, 0, sizeof *v);
  if (dbpool_coord_open_segment(segment, DBPOOL_OPEN_READONLY, &v->c) != 0) return -1;
  dbpool_coord_database(v->c, v->database, sizeof v->database);
  snprintf(v->segment, sizeof v->segment, "%s", dbpool_coord_segment_name(v->c));
  return view_refresh(v);
}

int view_refresh(pool_view *v)
{
  int rc = dbpool_coord_stats(v->c, &v->st);
  if (rc) return rc;
  for (;;) {
    int n = dbpool_coord_holders(v->c, v->holders, (size_t)v->nholders);
    if (n < 0) return n;
    if (n <= v->nholders && v->holders) {
      v->nholders = n;
      return 0;
    }
    free(v->holders);
    v->holders = calloc((size_t)n + 16, sizeof *v->holders);
    if (!v->holders) return -ENOMEM;
    v->nholders = n + 16;
  }
}

void view_close(pool_view *v)
{
  free(v->holders);
  dbpool_coord_close(v->c);
  memset(v, 0, sizeof *v);
}
