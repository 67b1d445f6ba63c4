/*
** gc.c -- dbpoolctl gc: collect pools that serve no database any more.
**
** The decisions are the coordinator's (dbpool_coord_gc); this prints one
** line (or JSON object) per pool: what was done and why.
*/
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

typedef struct gc_out {
  bool json;
  int n;
} gc_out;

static const char *action_name(dbpool_gc_action a)
{
  switch (a) {
  case DBPOOL_GC_KEPT: return "kept";
  case DBPOOL_GC_REMOVED: return "removed";
  case DBPOOL_GC_WOULD_REMOVE: return "would remove";
  }
  return "unknown";
}

static int print_entry(const dbpool_gc_entry *e, void *arg)
{
  gc_out *o = arg;
  /* A pool gc could not look at: the reason is the library's message,
  ** shown without its "dbpool: " as every message of dbpoolctl. */
  const char *reason = strncmp(e->reason, "dbpool: ", 8) == 0 ? e->reason + 8 : e->reason;
  if (o->json) {
    printf("%s\n  {\"segment\": ", o->n ? "," : "");
    fmt_json_string(stdout, e->segment);
    printf(", \"database\": ");
    fmt_json_string(stdout, e->database);
    printf(", \"action\": \"%s\", \"reason\": ", action_name(e->action));
    fmt_json_string(stdout, reason);
    printf("}");
  } else {
    /* Paths as text output shows them (format.c): one line per pool. */
    static char db[FMT_TEXT_CAP(DBPOOL_PATH_MAX)], seg[FMT_TEXT_CAP(DBPOOL_PATH_MAX)];
    static char why[FMT_TEXT_CAP(PATH_MAX + 1024)]; /* a library message's room */
    printf("%-12s %s (%s): %s\n", action_name(e->action),
           e->database[0] ? fmt_text(e->database, db, sizeof db) : "?",
           fmt_text(e->segment, seg, sizeof seg), fmt_text(reason, why, sizeof why));
  }
  o->n++;
  return 0;
}

int cmd_gc(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  gc_out out = {.json = o->json};
  if (o->json) printf("[");
  int rc = dbpool_coord_gc(o->dry_run, print_entry, &out);
  if (o->json) printf("%s]\n", out.n ? "\n" : "");
  else if (rc >= 0 && out.n == 0) printf("no pools\n");
  if (rc < 0) return cli_fail(argv[0], "%s", cli_lib_error());
  return EXIT_OK;
}
