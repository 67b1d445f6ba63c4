/*
** format.c -- times, strings for each kind of output, small conversions.
**
** Paths, process names and labels are bytes: a database path may hold
** Latin-1 bytes or a newline, a label any bytes SQL gave it. Every output
** stays valid UTF-8 and one record per line:
**   JSON        invalid bytes become U+FFFD (written \ufffd); control
**               characters are escaped as JSON requires.
**   Prometheus  label values: invalid bytes become U+FFFD; backslash,
**               double quote and newline are escaped (\\, \", \n), as the
**               exposition format requires.
**   text        (tables, status, watch) invalid bytes and control
**               characters (C0, DEL and C1) are shown as \xHH, newline, tab
**               and carriage return as \n, \t, \r, a backslash as \\.
** Valid UTF-8 passes unchanged everywhere.
*/
#include <errno.h>
#include <string.h>
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

/* The length of the valid UTF-8 sequence at p (1 to 4 bytes), or 0 if the
** bytes there are not one (a stray continuation byte, an overlong form, a
** surrogate, beyond U+10FFFF, or cut short by the end of the string). */
static int utf8_seq(const unsigned char *p)
{
  if (p[0] < 0x80) return 1;
  int n = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 0;
  if (n == 0 || p[0] < 0xC2 || p[0] > 0xF4) return 0;
  for (int i = 1; i < n; i++)
    if ((p[i] & 0xC0) != 0x80) return 0;
  if (p[0] == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
  if (p[0] == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
  if (p[0] == 0xF0 && p[1] < 0x90) return 0; /* overlong */
  if (p[0] == 0xF4 && p[1] >= 0x90) return 0; /* beyond U+10FFFF */
  return n;
}

void fmt_json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    int n = utf8_seq(p);
    if (n == 0) {
      fputs("\\ufffd", f);
      p++;
      continue;
    }
    switch (*p) {
    case '"': fputs("\\\"", f); break;
    case '\\': fputs("\\\\", f); break;
    case '\n': fputs("\\n", f); break;
    case '\r': fputs("\\r", f); break;
    case '\t': fputs("\\t", f); break;
    default:
      if (*p < 0x20) fprintf(f, "\\u%04x", *p);
      else fwrite(p, 1, (size_t)n, f);
    }
    p += n;
  }
  fputc('"', f);
}

void fmt_prom_label_value(FILE *f, const char *s)
{
  for (const unsigned char *p = (const unsigned char *)s; *p;) {
    int n = utf8_seq(p);
    if (n == 0) {
      fputs("\xEF\xBF\xBD", f); /* U+FFFD */
      p++;
      continue;
    }
    if (*p == '\\') fputs("\\\\", f);
    else if (*p == '"') fputs("\\\"", f);
    else if (*p == '\n') fputs("\\n", f);
    else fwrite(p, 1, (size_t)n, f);
    p += n;
  }
}

const char *fmt_text(const char *s, char *buf, size_t cap)
{
  size_t o = 0;
  for (const unsigned char *p = (const unsigned char *)s; *p && o + 9 < cap;) {
    int n = utf8_seq(p);
    bool control = n == 1 ? (*p < 0x20 || *p == 0x7f) : n == 2 && p[0] == 0xC2 && p[1] < 0xA0;
    if (n == 0 || control) {
      for (int i = 0; i < (n ? n : 1); i++) {
        const char *e = p[i] == '\n' ? "\\n" : p[i] == '\t' ? "\\t" : p[i] == '\r' ? "\\r" : NULL;
        if (e) o += (size_t)snprintf(buf + o, cap - o, "%s", e);
        else o += (size_t)snprintf(buf + o, cap - o, "\\x%02X", p[i]);
      }
      p += n ? n : 1;
      continue;
    }
    if (*p == '\\') buf[o++] = '\\';
    memcpy(buf + o, p, (size_t)n);
    o += (size_t)n;
    p += n;
  }
  buf[o < cap ? o : cap - 1] = 0;
  return buf;
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

const char *cli_error(int rc)
{
  return rc == -ENOMEM ? "out of memory" : cli_lib_error();
}

const char *cli_lib_error(void)
{
  const char *m = dbpool_last_error();
  return strncmp(m, "dbpool: ", 8) == 0 ? m + 8 : m;
}
