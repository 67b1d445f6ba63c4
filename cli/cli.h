/*
** cli.h -- what the files of dbpoolctl share.
**
** dbpoolctl shows and steers every pool on the host through the coordinator
** library (no SQLite involved). One file per group of commands, a table of
** command words in main.c (as pgbouncer's admin console does).
*/
#ifndef DBPOOLCTL_CLI_H
#define DBPOOLCTL_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "dbpool_admin.h"

/* Exit statuses. */
enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };
/* From a command that parses its own arguments (run): print its --help. */
#define EXIT_HELP (-1)

typedef struct cli_opts {
  bool json;
  bool force;
  bool dry_run;   /* gc */
  int interval_ms; /* watch */
  int count;       /* watch: frames to draw, 0 = until q / Ctrl-C */
} cli_opts;

/* A pool opened for a command, with the snapshot the commands print. */
typedef struct pool_view {
  dbpool_coord *c;
  char database[DBPOOL_PATH_MAX];
  char segment[128];
  dbpool_host_stats st;
  dbpool_file_state file;
  dbpool_holder_info *holders;
  int nholders;
  dbpool_writer_stats ws;
  dbpool_writer_info writers[64]; /* the writer queue's head (and writer) */
  int nwriters;
} pool_view;

/* The writer-queue state of holder h ("writing", "waiting"...), or "-". */
const char *view_writer_state(const pool_view *v, const dbpool_holder_info *h);

/* main.c: the message of a failure (exit 1) of command cmd; of a usage
** error (exit 2), cmd NULL before the command word. */
int cli_fail(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* view.c: opening pools and taking snapshots. */
int view_attach(const char *cmd, const char *db, bool writable, pool_view *v);
int view_open(const char *cmd, const char *db, bool writable, pool_view *v);
/* view_attach; a pool it creates (set) starts with values[s] for the
** settings s not DBPOOL_SETTING_UNSET (dbpool_coord_open_with). */
int view_attach_with(const char *cmd, const char *db, bool writable,
                     const int64_t *values, pool_view *v);
/* A pool from dbpool_coord_list, with its snapshot: 0 or a negative errno
** (nothing left open). */
int view_open_segment(const char *segment, pool_view *v);
/* What a listing does with view_open_segment's rc: 0 to go on (opened, or
** not a pool this user lists), else rc, to stop and fail: a listing never
** silently leaves pools out. */
int view_list_error(int rc);
int view_refresh(pool_view *v);
void view_close(pool_view *v);

/* format.c */
const char *cli_lib_error(void); /* the library's message minus "dbpool: " */
/* The message of a failure rc: ours ("out of memory": dbpoolctl's own
** allocations set no library message) or the library's. */
const char *cli_error(int rc);
/* format.c: the rules for bytes that are not valid UTF-8 or not printable
** are at its top. */
#define FMT_TEXT_CAP(n) (4 * (size_t)(n) + 16) /* room for fmt_text of n bytes */
void fmt_iso8601(int64_t ns, char *buf, size_t cap);
void fmt_json_string(FILE *f, const char *s);
void fmt_prom_label_value(FILE *f, const char *s);
const char *fmt_text(const char *s, char *buf, size_t cap);
double ns_to_ms(uint64_t ns);
const char *state_name(dbpool_holder_state s);

/* The commands. argv[0] is the command word. */
int cmd_list(int argc, char **argv, const cli_opts *o);
int cmd_status(int argc, char **argv, const cli_opts *o);
int cmd_watch(int argc, char **argv, const cli_opts *o);
int cmd_set(int argc, char **argv, const cli_opts *o);
int cmd_pause(int argc, char **argv, const cli_opts *o);
int cmd_resume(int argc, char **argv, const cli_opts *o);
int cmd_reap(int argc, char **argv, const cli_opts *o);
int cmd_rm(int argc, char **argv, const cli_opts *o);
int cmd_metrics(int argc, char **argv, const cli_opts *o);
int cmd_gc(int argc, char **argv, const cli_opts *o);
/* run.c: argv[1..] are run's own options, then the command to run. */
int cmd_run(int argc, char **argv, const cli_opts *o);

/* show.c, used by watch too */
void print_stats_text(FILE *f, const pool_view *v);
void print_holders_text(FILE *f, const pool_view *v, int64_t now_ns, int max_rows);

#endif
