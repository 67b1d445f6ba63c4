/*
** clock.c -- time. CLOCK_MONOTONIC for deadlines and measured waits (immune
** to clock changes); CLOCK_REALTIME only for timestamps people read. The
** coarse clocks (a few ns, 4 ms resolution) serve the fast paths: good
** enough for "held since" and leak detection.
*/
#include "base/base.h"

static int64_t ns_of(clockid_t id)
{
  struct timespec ts;
  clock_gettime(id, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t dbp_mono_ns(void) { return ns_of(CLOCK_MONOTONIC); }
int64_t dbp_mono_coarse_ns(void) { return ns_of(CLOCK_MONOTONIC_COARSE); }
int64_t dbp_real_ns(void) { return ns_of(CLOCK_REALTIME); }
int64_t dbp_real_coarse_ns(void) { return ns_of(CLOCK_REALTIME_COARSE); }

struct timespec dbp_ts(int64_t ns)
{
  struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
  return ts;
}
