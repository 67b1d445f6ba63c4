/*
** gc.c -- dbpoolctl gc: collect pools that serve no database any more.
**
** The decisions are the coordinator's (dbpool_coord_gc); this prints one
** line (or JSON object) per pool: what was done and why.
*/
#include <stdio.h>
#include <stdlib.h>

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
  if (o->json) {
    printf("%s\n  {\"segment\": ", o->n ? "," : "");
    fmt_json_string(stdout, e->segment);
    printf(", \"database\": ");
    fmt_json_string(stdout, e->database);
    printf(", \"action\": \"%s\", \"reason\": ", action_name(e->action));
    fmt_json_string(stdout, e->reason);
    printf("}");
  } else {
    printf("%-12s %s (%s): %s\n", action_name(e->action), e->database[0] ? e->database : "?",
           e->segment, e->reason);
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
