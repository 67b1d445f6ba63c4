/*
** main.c -- dbpoolctl: see and steer every pool on the host from the shell.
**
**   dbpoolctl list [--json]
**   dbpoolctl status DB [--json]
**   dbpoolctl watch DB [--interval MS] [--count N]
**   dbpoolctl set DB NAME=VALUE...
**   dbpoolctl pause DB | resume DB | reap DB | rm DB [--force]
**   dbpoolctl gc [--dry-run] [--json]
**   dbpoolctl metrics [DB]
**   dbpoolctl run [--max-connections N] [--timeout MS] [--] COMMAND [ARG...]
**
** Exit status: 0 success, 1 the operation failed, 2 usage error. Errors go
** to stderr and name the cause. A refused command changes nothing.
*/
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { OPT_JSON = 1, OPT_FORCE = 2, OPT_INTERVAL = 4, OPT_COUNT = 8, OPT_DRY_RUN = 16,
       OPT_OWN = 32 /* the command parses everything after its word itself */ };

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv, const cli_opts *o);
  int min_args, max_args; /* positional arguments after the command word */
  int options;            /* OPT_* accepted */
  const char *usage;
  const char *help;
} command;

static const command commands[] = {
    {"list", cmd_list, 0, 0, OPT_JSON, "list [--json]",
     "Every pool on the host this user can read: database, active/max,\n"
     "idle, waiting, processes, paused, holder records in use, and where its\n"
     "file is (ok, replaced, gone, removed). Listing changes nothing (see gc)."},
    {"status", cmd_status, 1, 1, OPT_JSON, "status DB [--json]",
     "One pool's statistics (the figures of the pool_stats table) and its\n"
     "holders and waiters (as pool_connections). DB is the database file."},
    {"watch", cmd_watch, 1, 1, OPT_INTERVAL | OPT_COUNT,
     "watch DB [--interval MS] [--count N]",
     "A live view redrawn in place every MS milliseconds (default 1000):\n"
     "utilization bar, active/idle/waiting, wait percentiles, acquisitions\n"
     "and timeouts per second, holders. Quits on q or Ctrl-C and restores the\n"
     "terminal; --count N stops after N frames. When stdout is not a\n"
     "terminal, prints one plain line per interval instead."},
    {"set", cmd_set, 2, 64, 0, "set DB NAME=VALUE...",
     "Change settings of the pool host-wide, at once: max_connections\n"
     "(1..4096), acquire_timeout_ms (0..86400000), paused (0/1), writer_queue\n"
     "(on/off: WAL writers take turns), writer_starvation_ms (0..60000). Every\n"
     "value is checked before any is applied. Creates the pool if it does not exist\n"
     "yet, so that a limit can be set before the first process starts."},
    {"pause", cmd_pause, 1, 1, 0, "pause DB",
     "New acquires wait (up to their timeout) until the pool is resumed."},
    {"resume", cmd_resume, 1, 1, 0, "resume DB", "Let waiting acquires in."},
    {"reap", cmd_reap, 1, 1, 0, "reap DB",
     "Reclaim now the slots and queue places of processes that died, and\n"
     "print how many slots came back."},
    {"rm", cmd_rm, 1, 1, OPT_FORCE, "rm DB [--force]",
     "Remove the pool's shared memory segment (its settings and statistics\n"
     "go with it). Refused while live processes are attached, unless\n"
     "--force; processes still attached then move to a new pool. DB may also\n"
     "be a segment name from 'list --json' when the database file is gone."},
    {"gc", cmd_gc, 0, 0, OPT_JSON | OPT_DRY_RUN, "gc [--dry-run] [--json]",
     "Remove pools that nobody uses and that serve no database file any\n"
     "more: the file was deleted or replaced, the pool was removed, or its\n"
     "owner can no longer read the database. A database renamed within its\n"
     "directory is found and its pool kept. Prints each pool with what was\n"
     "done and why; --dry-run only says."},
    {"metrics", cmd_metrics, 0, 1, 0, "metrics [DB]",
     "Prometheus text exposition of every pool (or one): gauges, counters\n"
     "(_total) and the wait-time histogram (dbpool_wait_seconds), for a\n"
     "node-exporter textfile collector or a scrape wrapper."},
    {"run", cmd_run, 1, 1, OPT_OWN,
     "run [--max-connections N] [--timeout MS] [--] COMMAND [ARG...]",
     "Run COMMAND with every SQLite connection that it and its children open\n"
     "counted by dbpool, without .load or any change to its code: COMMAND\n"
     "starts with libdbpool-preload.so in LD_PRELOAD, which makes the\n"
     "system's libsqlite3 count each connection (pool_connections shows them\n"
     "as joined 'preload'). Reaches dynamically linked programs that use\n"
     "libsqlite3.so.0 (Python, PHP, the sqlite3 shell, Go with Debian's\n"
     "go-sqlite3), not a SQLite compiled into the program (better-sqlite3).\n"
     "--max-connections N and --timeout MS are the max_connections and\n"
     "acquire_timeout_ms of pools the command creates; a pool that exists\n"
     "keeps its settings (dbpoolctl set changes them). dbpoolctl execs\n"
     "COMMAND: same pid, COMMAND's exit status (127 if it cannot be found)."},
};
#define NCOMMANDS (int)(sizeof commands / sizeof *commands)

static void print_overview(FILE *f)
{
  fprintf(f, "usage: dbpoolctl [--namespace NAME] COMMAND [ARGS]\n\n"
             "See and steer the host-wide SQLite connection pools of dbpool.\n\n"
             "commands:\n");
  for (int i = 0; i < NCOMMANDS; i++) fprintf(f, "  dbpoolctl %s\n", commands[i].usage);
  fprintf(f, "\noptions:\n"
             "  -n, --namespace NAME  pools of namespace NAME (default: $DBPOOL_NAMESPACE)\n"
             "  -h, --help            this help; COMMAND --help for a command's\n"
             "  -V, --version         the version\n\n"
             "DB is the path of a database file. Exit status: 0 success, 1 the\n"
             "operation failed, 2 usage error.\n");
}

static void print_command_help(FILE *f, const command *c)
{
  fprintf(f, "usage: dbpoolctl %s\n\n%s\n", c->usage, c->help);
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "dbpoolctl: %s: ", cmd); /* a failure is always a command's */
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_FAIL;
}

int cli_usage(const char *cmd, const char *fmt, ...)
{
  va_list ap;
  fprintf(stderr, "dbpoolctl: %s%s", cmd ? cmd : "", cmd ? ": " : "");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see dbpoolctl %s%s--help)\n", cmd ? cmd : "", cmd ? " " : "");
  for (int i = 0; cmd && i < NCOMMANDS; i++)
    if (!strcmp(commands[i].name, cmd)) fprintf(stderr, "usage: dbpoolctl %s\n", commands[i].usage);
  return EXIT_USAGE;
}

static int parse_int_option(const char *cmd, const char *name, const char *text,
                            int lo, int hi, int *out)
{
  char *end;
  errno = 0;
  long v = text ? strtol(text, &end, 10) : 0;
  if (!text || end == text || *end || errno || v < lo || v > hi)
    return cli_usage(cmd, "%s needs an integer from %d to %d, not '%s'", name, lo,
                     hi, text ? text : "");
  *out = (int)v;
  return EXIT_OK;
}

int main(int argc, char **argv)
{
  cli_opts o = {.interval_ms = 1000};
  const command *cmd = NULL;
  char *pos[66];
  int npos = 0, seen = 0;
  bool help = false;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("dbpoolctl %s\n", dbpool_version());
      return EXIT_OK;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      help = true;
    } else if (!strcmp(a, "-n") || !strcmp(a, "--namespace")) {
      if (++i >= argc) return cli_usage(NULL, "%s needs a name", a);
      setenv(DBPOOL_ENV_NAMESPACE, argv[i], 1);
    } else if (!strcmp(a, "--json")) {
      o.json = true;
      seen |= OPT_JSON;
    } else if (!strcmp(a, "--force")) {
      o.force = true;
      seen |= OPT_FORCE;
    } else if (!strcmp(a, "--dry-run")) {
      o.dry_run = true;
      seen |= OPT_DRY_RUN;
    } else if (!strcmp(a, "--interval") || !strcmp(a, "--count")) {
      bool interval = a[2] == 'i';
      const char *cname = cmd ? cmd->name : NULL;
      int rc = interval ? parse_int_option(cname, a, i + 1 < argc ? argv[i + 1] : NULL,
                                           10, 3600000, &o.interval_ms)
                        : parse_int_option(cname, a, i + 1 < argc ? argv[i + 1] : NULL,
                                           1, 1000000000, &o.count);
      if (rc) return rc;
      i++;
      seen |= interval ? OPT_INTERVAL : OPT_COUNT;
    } else if (a[0] == '-' && a[1]) {
      return cli_usage(cmd ? cmd->name : NULL, "unknown option '%s'", a);
    } else if (!cmd) {
      if (!strcmp(a, "help")) {
        help = true;
        continue;
      }
      for (int k = 0; k < NCOMMANDS; k++)
        if (!strcmp(a, commands[k].name)) cmd = &commands[k];
      if (!cmd) return cli_usage(NULL, "unknown command '%s'", a);
      if (cmd->options & OPT_OWN) {
        int rc = help ? EXIT_HELP : cmd->run(argc - i, argv + i, &o);
        if (rc == EXIT_HELP) print_command_help(stdout, cmd);
        return rc == EXIT_HELP ? EXIT_OK : rc;
      }
    } else {
      if (npos >= 64) return cli_usage(cmd->name, "too many arguments");
      pos[npos++] = argv[i];
    }
  }
  if (help) {
    if (cmd) print_command_help(stdout, cmd);
    else print_overview(stdout);
    return EXIT_OK;
  }
  if (!cmd) {
    print_overview(stderr);
    return EXIT_USAGE;
  }
  const char *ns;
  if (dbpool_coord_namespace(&ns) != 0)
    return cli_usage(NULL, "%s", cli_lib_error());
  int bad = seen & ~cmd->options;
  if (bad)
    return cli_usage(cmd->name, "%s is not an option of %s",
                     bad & OPT_JSON ? "--json" : bad & OPT_FORCE ? "--force"
                     : bad & OPT_DRY_RUN ? "--dry-run"
                     : bad & OPT_INTERVAL ? "--interval" : "--count", cmd->name);
  if (npos < cmd->min_args)
    return cli_usage(cmd->name, "missing %s", cmd->min_args == 1 || npos ? "argument"
                                                                         : "arguments");
  if (npos > cmd->max_args) return cli_usage(cmd->name, "unexpected argument '%s'", pos[npos - 1]);
  pos[npos] = NULL;
  char *args[67];
  args[0] = (char *)cmd->name;
  memcpy(args + 1, pos, sizeof(char *) * (size_t)(npos + 1));
  return cmd->run(npos + 1, args, &o);
}
