/*
** view.c -- opening the pool a command names and taking a snapshot of it.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "coordinator/private.h"

static bool looks_like_segment(const char *s)
{
  return strncmp(s, "/dbpool.", 8) == 0 || strncmp(s, "dbpool.", 7) == 0;
}

/* Attach without taking a snapshot; `set` may create the pool, which then
** starts with values (DBPOOL_SETTING_UNSET for those not given; NULL for
** none). Read-only commands attach read-write when the user may (never
** creating), so that reading gives dead processes' slots back; otherwise
** read-only. */
int view_attach_with(const char *cmd, const char *db, bool writable,
                     const int64_t *values, pool_view *v)
{
  memset(v, 0, sizeof *v);
  bool create = writable && strcmp(cmd, "set") == 0;
  unsigned flags = create ? 0 : DBPOOL_OPEN_NOCREATE;
  bool by_segment = access(db, F_OK) != 0 && looks_like_segment(db);
  int rc = by_segment ? dbpool_coord_open_segment(db, flags, &v->c)
         : create     ? dbpool_coord_open_with(db, values, &v->c)
                      : dbpool_coord_open(db, flags, &v->c);
  if (!writable && (rc == -EACCES || rc == -EPERM || rc == -EROFS))
    rc = by_segment ? dbpool_coord_open_segment(db, DBPOOL_OPEN_READONLY, &v->c)
                    : dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &v->c);
  if (rc) return cli_fail(cmd, "%s", cli_lib_error());
  dbpool_coord_database(v->c, v->database, sizeof v->database);
  snprintf(v->segment, sizeof v->segment, "%s", dbpool_coord_segment_name(v->c));
  return EXIT_OK;
}

int view_attach(const char *cmd, const char *db, bool writable, pool_view *v)
{
  return view_attach_with(cmd, db, writable, NULL, v);
}

int view_open(const char *cmd, const char *db, bool writable, pool_view *v)
{
  int rc = view_attach(cmd, db, writable, v);
  if (rc) return rc;
  rc = view_refresh(v);
  if (rc == 0) return EXIT_OK;
  rc = cli_fail(cmd, "%s", cli_error(rc));
  view_close(v);
  return rc;
}

int view_open_segment(const char *segment, pool_view *v)
{
  memset(v, 0, sizeof *v);
  int rc = dbpool_coord_open_segment(segment, 0, &v->c);
  if (rc) rc = dbpool_coord_open_segment(segment, DBPOOL_OPEN_READONLY, &v->c);
  if (rc) return rc;
  dbpool_coord_database(v->c, v->database, sizeof v->database);
  snprintf(v->segment, sizeof v->segment, "%s", dbpool_coord_segment_name(v->c));
  rc = view_refresh(v);
  if (rc) view_close(v);
  return rc;
}

int view_list_error(int rc)
{
  return rc && !dbp_list_skips(rc) ? rc : 0;
}

int view_refresh(pool_view *v)
{
  DBPOOL_INIT(&v->st);
  DBPOOL_INIT(&v->ws);
  int rc = dbpool_coord_stats(v->c, &v->st);
  if (rc == 0) rc = dbpool_coord_writer_stats(v->c, &v->ws);
  if (rc) return rc;
  int nw = dbpool_coord_writers(v->c, v->writers, 64, sizeof *v->writers);
  v->nwriters = nw < 0 ? 0 : nw > 64 ? 64 : nw;
  v->file = dbpool_coord_file_state(v->c);
  for (;;) {
    int n = dbpool_coord_holders(v->c, v->holders, (size_t)v->nholders, sizeof *v->holders);
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

const char *view_writer_state(const pool_view *v, const dbpool_holder_info *h)
{
  for (int i = 0; i < v->nwriters; i++)
    if (v->writers[i].record == h->record && v->writers[i].pid == h->pid)
      return dbpool_writer_state_name(v->writers[i].state);
  return "-";
}
