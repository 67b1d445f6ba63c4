/*
** format.c -- times, JSON strings, small conversions.
*/
#include <time.h>

#include <string.h>

#include "cli.h"

void fmt_iso8601(int64_t ns, char *buf, size_t cap)
{
  time_t secs = (time_t)(ns / 1000000000);
  struct tm tm;
  if (ns <= 0 || !gmtime_r(&secs, &tm)) {
    snprintf(buf, cap, "-");
    return;
  }
  snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           (int)(ns / 1000000 % 1000));
}

void fmt_json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fputc(*p, f);
    }
  }
  fputc('"', f);
}

double ns_to_ms(uint64_t ns) { return (double)ns / 1e6; }

const char *state_name(dbpool_holder_state s)
{
  switch (s) {
  case DBPOOL_HOLDER_ACTIVE: return "active";
  case DBPOOL_HOLDER_IDLE: return "idle";
  case DBPOOL_HOLDER_WAITING: return "waiting";
  }
  return "unknown";
}

const char *process_state_name(dbpool_process_state s)
{
  switch (s) {
  case DBPOOL_PROCESS_RUNNING: return "running";
  case DBPOOL_PROCESS_STOPPED: return "stopped";
  case DBPOOL_PROCESS_ELSEWHERE: return "elsewhere";
  }
  return "unknown";
}

const char *file_state_name(dbpool_file_state s)
{
  switch (s) {
  case DBPOOL_FILE_OK: return "ok";
  case DBPOOL_FILE_REPLACED: return "replaced";
  case DBPOOL_FILE_GONE: return "gone";
  case DBPOOL_FILE_REMOVED: return "removed";
  case DBPOOL_FILE_UNKNOWN: return "unknown";
  }
  return "unknown";
}

const char *cli_lib_error(void)
{
  const char *m = dbpool_last_error();
  return strncmp(m, "dbpool: ", 8) == 0 ? m + 8 : m;
}
