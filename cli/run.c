/*
** run.c -- dbpoolctl run: start a program with every SQLite connection it
** and its children open counted by dbpool, without changing its code.
**
**   dbpoolctl run [--max-connections N] [--timeout MS] [--] COMMAND [ARG...]
**
** Puts libdbpool-preload.so (preload/preload.c) in LD_PRELOAD and replaces
** itself with COMMAND (exec: same pid, COMMAND's exit status and signals).
** --max-connections and --timeout are DBPOOL_MAX_CONNECTIONS and
** DBPOOL_ACQUIRE_TIMEOUT_MS for the command: the settings of pools it
** creates; a pool that exists keeps its own (dbpoolctl set changes them).
**
** The preload library is $DBPOOL_PRELOAD, else the first that exists of:
** beside dbpoolctl (the build tree), ../lib/dbpool/ and
** ../lib/MULTIARCH/dbpool/ from dbpoolctl's directory (make install, the
** Debian package). The extension is $DBPOOL_EXTENSION, else dbpool.so
** beside the preload library, as the library itself looks for it.
*/
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define PRELOAD_NAME "libdbpool-preload.so"
#ifndef DBPOOL_MULTIARCH
#define DBPOOL_MULTIARCH ""
#endif

static int exists(const char *path) { return access(path, R_OK) == 0; }

/* The places looked at, from dbpoolctl's directory: beside it, then
** ../lib/dbpool and ../lib/MULTIARCH/dbpool (when built with one). */
static const char *const rel[] = {"", "/../lib/dbpool", "/../lib/" DBPOOL_MULTIARCH "/dbpool"};
#define NREL (sizeof DBPOOL_MULTIARCH > 1 ? 3 : 2)
/* Room for any of them: dbpoolctl's directory (readlink into PATH_MAX
** bytes) or its realpath (shorter than PATH_MAX), the longest relative
** part, the name; and for all of them named in a message. */
#define DIR_CAP (PATH_MAX + sizeof "/../lib/" DBPOOL_MULTIARCH "/dbpool")
#define PLACE_CAP (PATH_MAX + 64)
_Static_assert(DIR_CAP + sizeof "/" PRELOAD_NAME <= PLACE_CAP, "a place looked at may not fit");
#define TRIED_CAP (3 * PLACE_CAP)

/* Find the preload library; its path in out (PLACE_CAP bytes), or the
** places looked at in tried (TRIED_CAP bytes). Returns 1 if found. */
static int find_preload(char *out, char *tried)
{
  const char *env = getenv("DBPOOL_PRELOAD");
  if (env && env[0]) {
    snprintf(out, PLACE_CAP, "%s", env);
    snprintf(tried, TRIED_CAP, "%s (DBPOOL_PRELOAD)", env);
    return exists(out);
  }
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    snprintf(tried, TRIED_CAP, "nowhere: /proc/self/exe is unreadable");
    return 0;
  }
  exe[n] = 0;
  char *slash = strrchr(exe, '/');
  *slash = 0; /* exe is now dbpoolctl's directory */
  size_t used = 0;
  tried[0] = 0;
  for (size_t i = 0; i < NREL; i++) {
    char dir[DIR_CAP];
    snprintf(dir, sizeof dir, "%s%s", exe, rel[i]);
    char *real = realpath(dir, NULL);
    snprintf(out, PLACE_CAP, "%s/" PRELOAD_NAME, real ? real : dir);
    free(real);
    if (exists(out)) return 1;
    used += (size_t)snprintf(tried + used, TRIED_CAP - used, "%s%s", used ? ", " : "", out);
  }
  return 0;
}

/* An option's value as setting s would take it; a usage error otherwise. */
static int setting_option(int s, const char *opt, const char *text, const char *env)
{
  int64_t v;
  if (!text) return cli_usage("run", "%s needs a value", opt);
  if (dbpool_setting_parse(s, text, &v) != 0)
    return cli_usage("run", "%s: %s", opt, cli_lib_error());
  char buf[32];
  snprintf(buf, sizeof buf, "%lld", (long long)v);
  setenv(env, buf, 1);
  return EXIT_OK;
}

/* LD_PRELOAD with the library first (once), what was there kept after it. */
static int set_ld_preload(const char *lib)
{
  const char *old = getenv("LD_PRELOAD");
  if (old && old[0]) {
    size_t n = strlen(lib);
    for (const char *p = old; (p = strstr(p, lib)); p += n)
      if ((p == old || p[-1] == ':' || p[-1] == ' ') && (!p[n] || p[n] == ':' || p[n] == ' '))
        return 0; /* already there: a run inside a run */
    char *both = malloc(n + strlen(old) + 2);
    if (!both) return -1;
    sprintf(both, "%s:%s", lib, old);
    int rc = setenv("LD_PRELOAD", both, 1);
    free(both);
    return rc;
  }
  return setenv("LD_PRELOAD", lib, 1);
}

int cmd_run(int argc, char **argv, const cli_opts *o)
{
  (void)o;
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    const char *eq = strchr(a, '=');
    size_t name_len = eq ? (size_t)(eq - a) : strlen(a);
    if (!strcmp(a, "--")) {
      i++;
      break;
    } else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      return EXIT_HELP;
    } else if (!strncmp(a, "--max-connections", name_len) && name_len == 17) {
      const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      int rc = setting_option(DBPOOL_SETTING_MAX_CONNECTIONS, "--max-connections", v,
                              DBPOOL_ENV_MAX_CONNECTIONS);
      if (rc) return rc;
    } else if (!strncmp(a, "--timeout", name_len) && name_len == 9) {
      const char *v = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
      int rc = setting_option(DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, "--timeout", v,
                              DBPOOL_ENV_ACQUIRE_TIMEOUT_MS);
      if (rc) return rc;
    } else if (a[0] == '-') {
      return cli_usage("run", "unknown option '%s'", a);
    } else {
      break;
    }
  }
  if (i >= argc) return cli_usage("run", "missing COMMAND");

  char lib[PLACE_CAP], tried[TRIED_CAP];
  if (!find_preload(lib, tried))
    return cli_fail("run", "cannot find " PRELOAD_NAME " (looked at %s); set "
                    "DBPOOL_PRELOAD to its path", tried);
  const char *ext_env = getenv("DBPOOL_EXTENSION");
  char ext[PLACE_CAP];
  if (ext_env && ext_env[0]) snprintf(ext, sizeof ext, "%s", ext_env);
  else snprintf(ext, sizeof ext, "%.*sdbpool.so", (int)(strrchr(lib, '/') - lib + 1), lib);
  if (!exists(ext))
    return cli_fail("run", "the dbpool extension %s is missing (the preload "
                    "library loads dbpool.so from its own directory, or "
                    "$DBPOOL_EXTENSION)", ext);
  if (set_ld_preload(lib) != 0) return cli_fail("run", "cannot set LD_PRELOAD");
  execvp(argv[i], argv + i);
  int err = errno;
  cli_fail("run", "cannot run '%s': %s", argv[i], strerror(err));
  return err == ENOENT ? 127 : 126;
}
