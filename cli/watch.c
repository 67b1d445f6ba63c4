/*
** watch.c -- dbpoolctl watch: a live view of one pool.
**
** On a terminal: the alternate screen, redrawn in place every interval; q
** or Ctrl-C quits and the terminal is restored (screen, cursor, input mode)
** on every way out. Otherwise: one plain line per interval, until a signal
** or --count frames. Rates are differences between successive snapshots.
*/
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static volatile sig_atomic_t g_stop;
static struct termios g_saved;
static bool g_raw, g_screen;

static void on_signal(int sig)
{
  (void)sig;
  g_stop = 1;
}

static void restore_terminal(void)
{
  if (g_raw) tcsetattr(STDIN_FILENO, TCSANOW, &g_saved);
  if (g_screen) fputs("\033[?25h\033[?1049l", stdout); /* cursor, main screen */
  fflush(stdout);
  g_raw = g_screen = false;
}

static void enter_terminal(void)
{
  fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, hide cursor */
  g_screen = true;
  if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &g_saved) == 0) {
    struct termios raw = g_saved;
    raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO); /* keys one by one; keep ISIG */
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0) g_raw = true;
  }
}

static int64_t now_ns(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep up to ms, returning early on q / Q or a signal. */
static void wait_or_key(int ms)
{
  struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
  int64_t end = now_ns(CLOCK_MONOTONIC) + (int64_t)ms * 1000000;
  while (!g_stop) {
    int left = (int)((end - now_ns(CLOCK_MONOTONIC)) / 1000000);
    if (left <= 0) return;
    int rc = poll(g_raw ? &p : NULL, g_raw ? 1 : 0, left);
    if (rc > 0) {
      char c;
      if (read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) g_stop = 1;
    }
  }
}

static int terminal_rows(void)
{
  struct winsize ws;
  return ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 ? ws.ws_row : 24;
}

static void draw_frame(const pool_view *v, double acq_rate, double to_rate, int interval_ms)
{
  const dbpool_host_stats *s = &v->st;
  char now[40], db[FMT_TEXT_CAP(DBPOOL_PATH_MAX)];
  int64_t real = now_ns(CLOCK_REALTIME);
  fmt_iso8601(real, now, sizeof now);
  double util = s->max_connections ? (double)s->active / s->max_connections : 0;
  int width = 30, filled = (int)(util * width + 0.5);
  if (filled > width) filled = width;
  fputs("\033[H\033[J", stdout); /* home, clear */
  printf("dbpool watch %s  (every %d ms; q quits)   %s\n", fmt_text(v->database, db, sizeof db),
         interval_ms, now);
  printf("utilization [");
  for (int i = 0; i < width; i++) putchar(i < filled ? '#' : '-');
  printf("] %3.0f%%   active %u/%u  idle %u  waiting %u  paused %s\n", util * 100, s->active,
         s->max_connections, s->idle, s->waiting, s->paused ? "yes" : "no");
  printf("acquired/s %.1f  timeouts/s %.1f  wait p50 %.3f ms  p95 %.3f ms  p99 %.3f ms  "
         "max %.3f ms\n", acq_rate, to_rate, ns_to_ms(s->p50_wait_ns),
         ns_to_ms(s->p95_wait_ns), ns_to_ms(s->p99_wait_ns), ns_to_ms(s->max_wait_ns));
  printf("processes %u  peak %u  acquired %llu  timeouts %llu  reclaimed %llu\n",
         s->processes, s->peak_active, (unsigned long long)s->total_acquired,
         (unsigned long long)s->total_timeouts, (unsigned long long)s->total_reclaimed);
  const dbpool_writer_stats *w = &v->ws;
  printf("writer queue %s  writers waiting %u  writes %llu  write wait p50 %.3f ms  "
         "p99.9 %.3f ms  max %.3f ms  skipped %llu  expired %llu\n\n",
         dbpool_writer_queue_status(w), w->waiting, (unsigned long long)w->total_writes,
         ns_to_ms(w->p50_wait_ns), ns_to_ms(w->p999_wait_ns), ns_to_ms(w->max_wait_ns),
         (unsigned long long)w->turns_skipped, (unsigned long long)w->turns_expired);
  int rows = terminal_rows() - 8;
  print_holders_text(stdout, v, real, rows < 1 ? 1 : rows);
  fflush(stdout);
}

static void plain_line(const pool_view *v, double acq_rate, double to_rate)
{
  const dbpool_host_stats *s = &v->st;
  char now[40], db[FMT_TEXT_CAP(DBPOOL_PATH_MAX)];
  fmt_iso8601(now_ns(CLOCK_REALTIME), now, sizeof now);
  printf("%s %s active=%u/%u idle=%u waiting=%u paused=%d acquired/s=%.1f "
         "timeouts/s=%.1f p50_ms=%.3f p95_ms=%.3f p99_ms=%.3f\n", now,
         fmt_text(v->database, db, sizeof db),
         s->active, s->max_connections, s->idle, s->waiting, s->paused, acq_rate, to_rate,
         ns_to_ms(s->p50_wait_ns), ns_to_ms(s->p95_wait_ns), ns_to_ms(s->p99_wait_ns));
  fflush(stdout);
}

int cmd_watch(int argc, char **argv, const cli_opts *o)
{
  (void)argc;
  pool_view v;
  int rc = view_open(argv[0], argv[1], false, &v);
  if (rc) return rc;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal; /* no SA_RESTART: interrupt the poll */
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGHUP, &sa, NULL);
  bool tty = isatty(STDOUT_FILENO);
  if (tty) enter_terminal();

  uint64_t last_acq = v.st.total_acquired, last_to = v.st.total_timeouts;
  int64_t last_t = now_ns(CLOCK_MONOTONIC);
  double acq_rate = 0, to_rate = 0;
  for (int frame = 0; !g_stop; frame++) {
    if (tty) draw_frame(&v, acq_rate, to_rate, o->interval_ms);
    else plain_line(&v, acq_rate, to_rate);
    if (o->count && frame + 1 >= o->count) break;
    wait_or_key(o->interval_ms);
    if (g_stop) break;
    if (view_refresh(&v) != 0) {
      restore_terminal();
      view_close(&v);
      return cli_fail(argv[0], "%s", dbpool_last_error());
    }
    int64_t t = now_ns(CLOCK_MONOTONIC);
    double dt = (double)(t - last_t) / 1e9;
    if (dt > 0) {
      acq_rate = (double)(v.st.total_acquired - last_acq) / dt;
      to_rate = (double)(v.st.total_timeouts - last_to) / dt;
    }
    last_acq = v.st.total_acquired;
    last_to = v.st.total_timeouts;
    last_t = t;
  }
  restore_terminal();
  view_close(&v);
  return EXIT_OK;
}
