/*
** metrics.c -- dbpoolctl metrics: the Prometheus text exposition format
** (version 0.0.4) for every pool, or one.
**
** Each family is written once with its HELP and TYPE, then one sample per
** pool labelled database="PATH". Counters end in _total. The wait-time
** histogram dbpool_wait_seconds has buckets at powers of two from 1.024 us
** to about 69 s (the library's buckets, 8 per power of two, summed), +Inf,
** _sum and _count; acquires that did not wait fall in the first bucket.
*/
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define LE_BUCKETS 27 /* 2^10 .. 2^36 ns */

typedef struct metric_pool {
  pool_view v;
  uint64_t hist[DBPOOL_HIST_BUCKETS];
} metric_pool;

typedef struct metric_acc {
  metric_pool *pools;
  int n, cap;
  bool oom;
} metric_acc;

static void label(FILE *f, const char *database)
{
  fputs("{database=\"", f);
  fmt_prom_label_value(f, database);
  fputc('"', f);
}

typedef double (*getter)(const metric_pool *m);

static double g_max(const metric_pool *m) { return m->v.st.max_connections; }
static double g_active(const metric_pool *m) { return m->v.st.active; }
static double g_idle(const metric_pool *m) { return m->v.st.idle; }
static double g_waiting(const metric_pool *m) { return m->v.st.waiting; }
static double g_peak(const metric_pool *m) { return m->v.st.peak_active; }
static double g_processes(const metric_pool *m) { return m->v.st.processes; }
static double g_paused(const metric_pool *m) { return m->v.st.paused; }
static double g_timeout(const metric_pool *m) { return m->v.st.acquire_timeout_ms / 1e3; }
static double g_util(const metric_pool *m)
{
  return m->v.st.max_connections ? (double)m->v.st.active / m->v.st.max_connections : 0;
}
static double g_created(const metric_pool *m) { return (double)m->v.st.created_at_ns / 1e9; }
static double g_records(const metric_pool *m) { return m->v.st.records_in_use; }
static double g_records_max(const metric_pool *m) { return m->v.st.records_max; }
static double c_acquired(const metric_pool *m) { return (double)m->v.st.total_acquired; }
static double c_released(const metric_pool *m) { return (double)m->v.st.total_released; }
static double c_timeouts(const metric_pool *m) { return (double)m->v.st.total_timeouts; }
static double c_reclaimed(const metric_pool *m) { return (double)m->v.st.total_reclaimed; }
static double g_wq_on(const metric_pool *m) { return strcmp(dbpool_writer_queue_status(&m->v.ws), "on") == 0; }
static double g_writers_waiting(const metric_pool *m) { return m->v.ws.waiting; }
static double g_write_p50(const metric_pool *m) { return (double)m->v.ws.p50_wait_ns / 1e9; }
static double g_write_p99(const metric_pool *m) { return (double)m->v.ws.p99_wait_ns / 1e9; }
static double g_write_p999(const metric_pool *m) { return (double)m->v.ws.p999_wait_ns / 1e9; }
static double g_write_max(const metric_pool *m) { return (double)m->v.ws.max_wait_ns / 1e9; }
static double c_writes(const metric_pool *m) { return (double)m->v.ws.total_writes; }
static double c_write_waits(const metric_pool *m) { return (double)m->v.ws.total_waits; }
static double c_write_wait_s(const metric_pool *m) { return (double)m->v.ws.total_wait_ns / 1e9; }
static double c_turns_skipped(const metric_pool *m) { return (double)m->v.ws.turns_skipped; }
static double c_turns_expired(const metric_pool *m) { return (double)m->v.ws.turns_expired; }

static const struct family {
  const char *name, *type, *help;
  getter get;
} families[] = {
    {"dbpool_max_connections", "gauge", "Most connections held at once by all processes on the host.", g_max},
    {"dbpool_active_connections", "gauge", "Slots held now, idle ones included.", g_active},
    {"dbpool_idle_connections", "gauge", "Held slots idle in in-process pools.", g_idle},
    {"dbpool_waiting_acquires", "gauge", "Acquires queued for a slot now.", g_waiting},
    {"dbpool_peak_active_connections", "gauge", "Highest number of slots ever held at once.", g_peak},
    {"dbpool_processes", "gauge", "Live processes attached to the pool.", g_processes},
    {"dbpool_paused", "gauge", "1 while the pool is paused.", g_paused},
    {"dbpool_acquire_timeout_seconds", "gauge", "How long an acquire waits by default.", g_timeout},
    {"dbpool_utilization_ratio", "gauge", "active / max_connections.", g_util},
    {"dbpool_created_timestamp_seconds", "gauge", "When the pool was created (Unix time).", g_created},
    {"dbpool_records_in_use", "gauge", "Holder records owned by processes (one per connection or waiter).", g_records},
    {"dbpool_records_max", "gauge", "Holder records of the pool; opens fail when all are in use.", g_records_max},
    {"dbpool_acquired_total", "counter", "Slots acquired.", c_acquired},
    {"dbpool_released_total", "counter", "Slots released by their holders.", c_released},
    {"dbpool_timeouts_total", "counter", "Acquires that failed for lack of a slot.", c_timeouts},
    {"dbpool_reclaimed_total", "counter", "Slots taken back from processes that died.", c_reclaimed},
    {"dbpool_writer_queue_active", "gauge", "1 while WAL writers take turns in the writer queue.", g_wq_on},
    {"dbpool_writers_waiting", "gauge", "Writers waiting for their turn now.", g_writers_waiting},
    {"dbpool_write_wait_p50_seconds", "gauge", "Median wait for the writer turn.", g_write_p50},
    {"dbpool_write_wait_p99_seconds", "gauge", "99th percentile wait for the writer turn.", g_write_p99},
    {"dbpool_write_wait_p999_seconds", "gauge", "99.9th percentile wait for the writer turn.", g_write_p999},
    {"dbpool_write_wait_max_seconds", "gauge", "Longest wait for the writer turn.", g_write_max},
    {"dbpool_writes_total", "counter", "Write transactions that took the writer turn.", c_writes},
    {"dbpool_write_waits_total", "counter", "Write transactions that waited for their turn.", c_write_waits},
    {"dbpool_write_wait_seconds_total", "counter", "Time spent waiting for the writer turn.", c_write_wait_s},
    {"dbpool_writer_turns_skipped_total", "counter", "Writer turns and places of processes that died.", c_turns_skipped},
    {"dbpool_writer_turns_expired_total", "counter", "Writer turns granted and never used, places abandoned.", c_turns_expired},
};

static int collect(const char *segment, void *arg)
{
  metric_acc *acc = arg;
  if (acc->n == acc->cap) {
    int cap = acc->cap ? acc->cap * 2 : 8;
    metric_pool *p = realloc(acc->pools, (size_t)cap * sizeof *p);
    if (!p) return acc->oom = true, -ENOMEM;
    acc->pools = p;
    acc->cap = cap;
  }
  metric_pool *m = &acc->pools[acc->n];
  int rc = view_open_segment(segment, &m->v);
  if (rc == 0) {
    int k = dbpool_coord_histogram(m->v.c, m->hist, DBPOOL_HIST_BUCKETS);
    if (k < 0) rc = k;
  }
  if (rc == 0) acc->n++;
  else if (m->v.c) view_close(&m->v);
  return view_list_error(rc);
}

static void print_histogram(const metric_acc *acc)
{
  printf("# HELP dbpool_wait_seconds Time acquire attempts waited for a slot (timed-out ones included).\n"
         "# TYPE dbpool_wait_seconds histogram\n");
  for (int i = 0; i < acc->n; i++) {
    const metric_pool *m = &acc->pools[i];
    uint64_t cum = 0, total = 0;
    unsigned next = 0;
    for (unsigned b = 0; b < DBPOOL_HIST_BUCKETS; b++) total += m->hist[b];
    for (int k = 0; k < LE_BUCKETS; k++) {
      unsigned upto = 1 + 8u * (unsigned)k; /* buckets below 2^(10+k) ns */
      while (next < upto && next < DBPOOL_HIST_BUCKETS) cum += m->hist[next++];
      printf("dbpool_wait_seconds_bucket");
      label(stdout, m->v.database);
      printf(",le=\"%.9g\"} %llu\n", (double)dbpool_hist_lower_ns(upto) / 1e9,
             (unsigned long long)cum);
    }
    printf("dbpool_wait_seconds_bucket");
    label(stdout, m->v.database);
    printf(",le=\"+Inf\"} %llu\n", (unsigned long long)total);
    printf("dbpool_wait_seconds_sum");
    label(stdout, m->v.database);
    printf("} %.9g\n", (double)m->v.st.total_wait_ns / 1e9);
    printf("dbpool_wait_seconds_count");
    label(stdout, m->v.database);
    printf("} %llu\n", (unsigned long long)total);
  }
}

int cmd_metrics(int argc, char **argv, const cli_opts *o)
{
  (void)o;
  metric_acc acc = {0};
  int rc = EXIT_OK;
  if (argc > 1) {
    acc.pools = calloc(1, sizeof *acc.pools);
    if (!acc.pools) return cli_fail(argv[0], "out of memory");
    rc = view_open(argv[0], argv[1], false, &acc.pools[0].v);
    if (rc) {
      free(acc.pools);
      return rc;
    }
    dbpool_coord_histogram(acc.pools[0].v.c, acc.pools[0].hist, DBPOOL_HIST_BUCKETS);
    acc.n = 1;
  } else if ((rc = dbpool_coord_list(collect, &acc)) < 0) {
    rc = cli_fail(argv[0], "%s", acc.oom ? "out of memory" : cli_error(rc));
  }
  for (size_t f = 0; rc == EXIT_OK && f < sizeof families / sizeof *families; f++) {
    printf("# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
           families[f].name, families[f].type);
    for (int i = 0; i < acc.n; i++) {
      fputs(families[f].name, stdout);
      label(stdout, acc.pools[i].v.database);
      printf("} %.15g\n", families[f].get(&acc.pools[i]));
    }
  }
  if (rc == EXIT_OK) print_histogram(&acc);
  for (int i = 0; i < acc.n; i++) view_close(&acc.pools[i].v);
  free(acc.pools);
  return rc;
}
