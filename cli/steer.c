/*
** steer.c -- set, pause, resume, reap, rm: commands that change a pool.
** Each checks everything it was given before it changes anything.
*/
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* The pool's database path as text output shows it (format.c). */
static const char *shown(const pool_view *v)
{
  static char buf[FMT_TEXT_CAP(DBPOOL_PATH_MAX)];
  return fmt_text(v->database, buf, sizeof buf);
}

int cmd_set(int argc, char **argv, const cli_opts *o)
{
  (void)o;
  int n = argc - 2, settings[64];
  int64_t values[64];
  /* Validate every NAME=VALUE first: a refused command changes nothing. */
  for (int i = 0; i < n; i++) {
    char *arg = argv[2 + i], *eq = strchr(arg, '=');
    if (!eq || eq == arg)
      return cli_usage(argv[0], "'%s' is not NAME=VALUE", arg);
    *eq = 0;
    int s = dbpool_setting_lookup(arg);
    *eq = '=';
    if (s < 0) return cli_fail(argv[0], "%s", cli_lib_error());
    if (dbpool_setting_parse(s, eq + 1, &values[i]) != 0)
      return cli_fail(argv[0], "%s", cli_lib_error());
    settings[i] = s;
  }
  /* A pool created here starts with the values given: the environment's
  ** defaults are read (and must be valid) only for the other settings. */
  int64_t initial[DBPOOL_SETTING_COUNT];
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) initial[s] = DBPOOL_SETTING_UNSET;
  for (int i = 0; i < n; i++) initial[settings[i]] = values[i];
  pool_view v;
  int rc = view_attach_with(argv[0], argv[1], true, initial, &v);
  if (rc) return rc;
  for (int i = 0; i < n && rc == EXIT_OK; i++) {
    if (dbpool_coord_set(v.c, settings[i], values[i]) != 0)
      rc = cli_fail(argv[0], "%s", cli_lib_error());
    else
      printf("%s=%lld\n", dbpool_setting_describe(settings[i])->name, (long long)values[i]);
  }
  view_close(&v);
  return rc;
}

static int set_paused(char **argv, int paused)
{
  pool_view v;
  int rc = view_open(argv[0], argv[1], true, &v);
  if (rc) return rc;
  if (dbpool_coord_set(v.c, DBPOOL_SETTING_PAUSED, paused) != 0)
    rc = cli_fail(argv[0], "%s", cli_lib_error());
  else
    printf("%s the pool of %s\n", paused ? "paused" : "resumed", shown(&v));
  view_close(&v);
  return rc;
}

int cmd_pause(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  (void)o;
  return set_paused(argv, 1);
}

int cmd_resume(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  (void)o;
  return set_paused(argv, 0);
}

int cmd_reap(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  (void)o;
  pool_view v;
  int rc = view_attach(argv[0], argv[1], true, &v);
  if (rc) return rc;
  int n = dbpool_coord_reap(v.c);
  if (n < 0)
    rc = cli_fail(argv[0], "%s", cli_lib_error());
  else
    printf("reclaimed %d slot%s of dead processes from the pool of %s\n", n,
           n == 1 ? "" : "s", shown(&v));
  view_close(&v);
  return rc;
}

int cmd_rm(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  const char *db = argv[1];
  bool by_segment = access(db, F_OK) != 0 &&
                    (strncmp(db, "/dbpool.", 8) == 0 || strncmp(db, "dbpool.", 7) == 0);
  int rc = dbpool_coord_remove(by_segment ? NULL : db, by_segment ? db : NULL, o->force);
  if (rc == -EBUSY)
    return cli_fail(argv[0], "%s; --force removes it anyway", cli_lib_error());
  if (rc < 0) return cli_fail(argv[0], "%s", cli_lib_error());
  /* As text output shows paths (format.c): one line. */
  static char shown_db[FMT_TEXT_CAP(PATH_MAX)], why[FMT_TEXT_CAP(PATH_MAX + 1024)];
  fmt_text(db, shown_db, sizeof shown_db);
  if (rc == 1)
    printf("marked the pool of %s removed: new opens start a fresh pool; %s "
           "(dbpoolctl gc)\n", shown_db, fmt_text(cli_lib_error(), why, sizeof why));
  else
    printf("removed the pool of %s\n", shown_db);
  return EXIT_OK;
}
