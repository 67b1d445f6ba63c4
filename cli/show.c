/*
** show.c -- list and status: what the pools hold, as text or JSON. The
** figures and their names are those of the SQL tables pool_stats and
** pool_connections.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

static int64_t now_real_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ------------------------------------------------------------------ list */

typedef struct list_acc {
  pool_view *views;
  int n, cap;
  bool oom;
} list_acc;

static int collect(const char *segment, void *arg)
{
  list_acc *acc = arg;
  if (acc->n == acc->cap) {
    int cap = acc->cap ? acc->cap * 2 : 8;
    pool_view *v = realloc(acc->views, (size_t)cap * sizeof *v);
    if (!v) return acc->oom = true, -ENOMEM;
    acc->views = v;
    acc->cap = cap;
  }
  int rc = view_open_segment(segment, &acc->views[acc->n]);
  if (rc == 0) acc->n++;
  return view_list_error(rc);
}

int cmd_list(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  list_acc acc = {0};
  int rc = dbpool_coord_list(collect, &acc);
  if (rc < 0) {
    for (int i = 0; i < acc.n; i++) view_close(&acc.views[i]);
    free(acc.views);
    return cli_fail(argv[0], "%s", acc.oom ? "out of memory" : cli_error(rc));
  }
  if (o->json) {
    printf("[");
    for (int i = 0; i < acc.n; i++) {
      const pool_view *v = &acc.views[i];
      printf("%s\n  {\"database\": ", i ? "," : "");
      fmt_json_string(stdout, v->database);
      printf(", \"segment\": ");
      fmt_json_string(stdout, v->segment);
      printf(", \"max_connections\": %u, \"active\": %u, \"idle\": %u, "
             "\"waiting\": %u, \"processes\": %u, \"paused\": %s, "
             "\"records_in_use\": %u, \"records_max\": %u, \"file\": \"%s\"}",
             v->st.max_connections, v->st.active, v->st.idle, v->st.waiting,
             v->st.processes, v->st.paused ? "true" : "false", v->st.records_in_use,
             v->st.records_max, dbpool_file_state_name(v->file));
    }
    printf("%s]\n", acc.n ? "\n" : "");
  } else if (acc.n == 0) {
    printf("no pools\n");
  } else {
    printf("%-40s %11s %5s %8s %10s %7s %10s %-8s\n", "DATABASE", "ACTIVE/MAX", "IDLE",
           "WAITING", "PROCESSES", "PAUSED", "RECORDS", "FILE");
    for (int i = 0; i < acc.n; i++) {
      const pool_view *v = &acc.views[i];
      char am[32], db[FMT_TEXT_CAP(DBPOOL_PATH_MAX)];
      snprintf(am, sizeof am, "%u/%u", v->st.active, v->st.max_connections);
      printf("%-40s %11s %5u %8u %10u %7s %10u %-8s\n", fmt_text(v->database, db, sizeof db),
             am, v->st.idle, v->st.waiting, v->st.processes, v->st.paused ? "yes" : "no",
             v->st.records_in_use, dbpool_file_state_name(v->file));
    }
  }
  for (int i = 0; i < acc.n; i++) view_close(&acc.views[i]);
  free(acc.views);
  return EXIT_OK;
}

/* ---------------------------------------------------------------- status */

void print_stats_text(FILE *f, const pool_view *v)
{
  const dbpool_host_stats *s = &v->st;
  char created[40], db[FMT_TEXT_CAP(DBPOOL_PATH_MAX)], seg[FMT_TEXT_CAP(sizeof v->segment)];
  fmt_iso8601(s->created_at_ns, created, sizeof created);
  double avg = ns_to_ms(s->avg_wait_ns);
  fprintf(f, "pool of %s\n", fmt_text(v->database, db, sizeof db));
  fprintf(f, "  segment             %s\n", fmt_text(v->segment, seg, sizeof seg));
  fprintf(f, "  file                %s\n", dbpool_file_state_name(v->file));
  fprintf(f, "  created_at          %s\n", created);
  fprintf(f, "  max_connections     %u\n", s->max_connections);
  fprintf(f, "  active              %u\n", s->active);
  fprintf(f, "  idle                %u\n", s->idle);
  fprintf(f, "  waiting             %u\n", s->waiting);
  fprintf(f, "  utilization         %.2f\n", s->max_connections ? (double)s->active / s->max_connections : 0);
  fprintf(f, "  peak_active         %u\n", s->peak_active);
  fprintf(f, "  processes           %u\n", s->processes);
  fprintf(f, "  paused              %d\n", s->paused);
  fprintf(f, "  acquire_timeout_ms  %d\n", s->acquire_timeout_ms);
  fprintf(f, "  total_acquired      %llu\n", (unsigned long long)s->total_acquired);
  fprintf(f, "  total_released      %llu\n", (unsigned long long)s->total_released);
  fprintf(f, "  total_timeouts      %llu\n", (unsigned long long)s->total_timeouts);
  fprintf(f, "  total_reclaimed     %llu\n", (unsigned long long)s->total_reclaimed);
  fprintf(f, "  avg_wait_ms         %.3f\n", avg);
  fprintf(f, "  p50_wait_ms         %.3f\n", ns_to_ms(s->p50_wait_ns));
  fprintf(f, "  p95_wait_ms         %.3f\n", ns_to_ms(s->p95_wait_ns));
  fprintf(f, "  p99_wait_ms         %.3f\n", ns_to_ms(s->p99_wait_ns));
  fprintf(f, "  max_wait_ms         %.3f\n", ns_to_ms(s->max_wait_ns));
  const dbpool_writer_stats *w = &v->ws;
  fprintf(f, "  writer_queue        %s\n", dbpool_writer_queue_status(w));
  fprintf(f, "  writer_starvation_ms %d\n", w->starvation_ms);
  fprintf(f, "  writers_waiting     %u\n", w->waiting);
  fprintf(f, "  total_writes        %llu\n", (unsigned long long)w->total_writes);
  fprintf(f, "  total_write_waits   %llu\n", (unsigned long long)w->total_waits);
  fprintf(f, "  write_wait_p50_ms   %.3f\n", ns_to_ms(w->p50_wait_ns));
  fprintf(f, "  write_wait_p99_ms   %.3f\n", ns_to_ms(w->p99_wait_ns));
  fprintf(f, "  write_wait_p999_ms  %.3f\n", ns_to_ms(w->p999_wait_ns));
  fprintf(f, "  write_wait_max_ms   %.3f\n", ns_to_ms(w->max_wait_ns));
  fprintf(f, "  writer_turns_skipped %llu\n", (unsigned long long)w->turns_skipped);
  fprintf(f, "  writer_turns_expired %llu\n", (unsigned long long)w->turns_expired);
  fprintf(f, "  records_in_use      %u of %u\n", s->records_in_use, s->records_max);
}

void print_holders_text(FILE *f, const pool_view *v, int64_t now_ns, int max_rows)
{
  if (v->nholders == 0) {
    fprintf(f, "no holders or waiters\n");
    return;
  }
  fprintf(f, "%-8s %-16s %-9s %-8s %-8s %-8s %-24s %12s  %-8s %s\n", "PID", "PROCESS",
          "PROC", "THREAD", "STATE", "WRITER", "SINCE", "DURATION_MS", "JOINED", "LABEL");
  for (int i = 0; i < v->nholders && (max_rows <= 0 || i < max_rows); i++) {
    const dbpool_holder_info *h = &v->holders[i];
    char since[40], process[FMT_TEXT_CAP(DBPOOL_PROCESS_NAME_MAX)];
    char label[FMT_TEXT_CAP(DBPOOL_LABEL_MAX)];
    fmt_iso8601(h->since_ns, since, sizeof since);
    long long dur = h->since_ns > 0 ? (now_ns - h->since_ns) / 1000000 : 0;
    fprintf(f, "%-8d %-16s %-9s %-8d %-8s %-8s %-24s %12lld  %-8s %s\n", h->pid,
            fmt_text(h->process, process, sizeof process),
            dbpool_process_state_name(h->process_state), h->tid, state_name(h->state),
            view_writer_state(v, h), since, dur < 0 ? 0 : dur, dbpool_joined_name(h->joined),
            fmt_text(h->label, label, sizeof label));
  }
  if (max_rows > 0 && v->nholders > max_rows)
    fprintf(f, "... and %d more\n", v->nholders - max_rows);
}

static void print_status_json(const pool_view *v, int64_t now_ns)
{
  const dbpool_host_stats *s = &v->st;
  char created[40];
  fmt_iso8601(s->created_at_ns, created, sizeof created);
  double avg = ns_to_ms(s->avg_wait_ns);
  printf("{\"database\": ");
  fmt_json_string(stdout, v->database);
  printf(", \"segment\": ");
  fmt_json_string(stdout, v->segment);
  printf(", \"file\": \"%s\"", dbpool_file_state_name(v->file));
  printf(",\n \"stats\": {\"max_connections\": %u, \"active\": %u, \"idle\": %u, "
         "\"waiting\": %u, \"peak_active\": %u, \"processes\": %u, "
         "\"total_acquired\": %llu, \"total_released\": %llu, \"total_timeouts\": %llu, "
         "\"total_reclaimed\": %llu, \"avg_wait_ms\": %.6f, \"p50_wait_ms\": %.6f, "
         "\"p95_wait_ms\": %.6f, \"p99_wait_ms\": %.6f, \"max_wait_ms\": %.6f, "
         "\"utilization\": %.6f, \"paused\": %d, \"acquire_timeout_ms\": %d, "
         "\"created_at\": \"%s\", \"records_in_use\": %u, \"records_max\": %u, "
         "\"writer_queue\": \"%s\", \"writer_starvation_ms\": %d, "
         "\"writers_waiting\": %u, \"total_writes\": %llu, \"total_write_waits\": %llu, "
         "\"write_wait_p50_ms\": %.6f, \"write_wait_p99_ms\": %.6f, "
         "\"write_wait_p999_ms\": %.6f, \"write_wait_max_ms\": %.6f, "
         "\"writer_turns_skipped\": %llu, \"writer_turns_expired\": %llu},\n \"connections\": [",
         s->max_connections, s->active, s->idle, s->waiting, s->peak_active, s->processes,
         (unsigned long long)s->total_acquired, (unsigned long long)s->total_released,
         (unsigned long long)s->total_timeouts, (unsigned long long)s->total_reclaimed, avg,
         ns_to_ms(s->p50_wait_ns), ns_to_ms(s->p95_wait_ns), ns_to_ms(s->p99_wait_ns),
         ns_to_ms(s->max_wait_ns),
         s->max_connections ? (double)s->active / s->max_connections : 0.0, s->paused,
         s->acquire_timeout_ms, created, s->records_in_use, s->records_max,
         dbpool_writer_queue_status(&v->ws), v->ws.starvation_ms, v->ws.waiting,
         (unsigned long long)v->ws.total_writes, (unsigned long long)v->ws.total_waits,
         ns_to_ms(v->ws.p50_wait_ns), ns_to_ms(v->ws.p99_wait_ns),
         ns_to_ms(v->ws.p999_wait_ns), ns_to_ms(v->ws.max_wait_ns),
         (unsigned long long)v->ws.turns_skipped, (unsigned long long)v->ws.turns_expired);
  for (int i = 0; i < v->nholders; i++) {
    const dbpool_holder_info *h = &v->holders[i];
    char since[40];
    fmt_iso8601(h->since_ns, since, sizeof since);
    long long dur = h->since_ns > 0 ? (now_ns - h->since_ns) / 1000000 : 0;
    printf("%s\n  {\"pid\": %d, \"process\": ", i ? "," : "", h->pid);
    fmt_json_string(stdout, h->process);
    printf(", \"process_state\": \"%s\"", dbpool_process_state_name(h->process_state));
    printf(", \"thread\": %d, \"state\": \"%s\", \"since\": \"%s\", \"duration_ms\": %lld, "
           "\"joined\": \"%s\", \"writer\": ", h->tid, state_name(h->state), since,
           dur < 0 ? 0 : dur, dbpool_joined_name(h->joined));
    const char *ws = view_writer_state(v, h);
    if (strcmp(ws, "-") != 0) printf("\"%s\"", ws);
    else printf("null");
    printf(", \"label\": ");
    if (h->label[0]) fmt_json_string(stdout, h->label);
    else printf("null");
    printf("}");
  }
  printf("%s]}\n", v->nholders ? "\n " : "");
}

int cmd_status(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  pool_view v;
  int rc = view_open(argv[0], argv[1], false, &v);
  if (rc) return rc;
  int64_t now = now_real_ns();
  if (o->json) {
    print_status_json(&v, now);
  } else {
    print_stats_text(stdout, &v);
    printf("\n");
    print_holders_text(stdout, &v, now, 0);
  }
  view_close(&v);
  return EXIT_OK;
}
