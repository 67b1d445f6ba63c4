/*
** argument_checks.c -- what the coordinator's entry points say about
** arguments they cannot use (NULL pointers, setting numbers and values out
** of range, read-only attachments), and the pure helpers behind them: the
** setting text rule (settings.c), the names of enum values read from shared
** memory (any value may come), the histogram's bucket bounds and
** percentiles (stats.c), a database file's identity from a statx
** (dbfile.c). Each refusal is a return code and a message, never a crash.
*/
#include <pthread.h>
#include <sys/stat.h>

#include "testutil.h"
#include "coordinator/internal.h"

static int64_t parse(int s, const char *text, int *rc)
{
  int64_t v = -12345;
  *rc = dbpool_setting_parse(s, text, &v);
  return v;
}

#define PARSES(s, text, want)                                             \
  do {                                                                    \
    int rc_;                                                              \
    int64_t v_ = parse((s), (text), &rc_);                                \
    CHECK_RC(rc_, 0);                                                     \
    CHECK(v_ == (want));                                                  \
  } while (0)

#define REFUSED(s, text, want_rc)                                         \
  do {                                                                    \
    int rc_;                                                              \
    int64_t v_ = parse((s), (text), &rc_);                                \
    CHECK_RC(rc_, (want_rc));                                             \
    CHECK(v_ == -12345); /* untouched */                                  \
  } while (0)

TEST(setting_text_rule)
{
  const int T = DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, P = DBPOOL_SETTING_PAUSED;
  /* Every whitespace character is trimmed, on both sides. */
  PARSES(T, " \t\n\r\f\v42\v\f\r\n\t ", 42);
  PARSES(T, "+7", 7);
  PARSES(T, "7E2", 700);
  PARSES(T, "7e+2", 700);
  PARSES(T, "700e-2", 7);
  PARSES(T, "0.0", 0);
  PARSES(T, "000", 0);
  PARSES(P, " YES ", 1);
  PARSES(P, "Off", 0);
  /* More than 40 significant digits: zeros beyond them scale the value
  ** (here beyond any range), any other digit makes a fraction or a number
  ** no integer rule reads. */
  REFUSED(T, "1000000000000000000000000000000000000000000000", -ERANGE);
  CHECK(strstr(dbpool_last_error(), "acquire_timeout_ms=1000000000000000000000000000000000000000 is out of range") != NULL);
  REFUSED(T, "1000000000000000000000000000000000000000001", -EINVAL);
  REFUSED(T, "1.0000000000000000000000000000000000000000001", -EINVAL);
  PARSES(T, "1.00000000000000000000000000000000000000000000", 1);
  /* Exponents: missing digits, a sign with none, one too large to matter. */
  REFUSED(T, "3e", -EINVAL);
  REFUSED(T, "3e+", -EINVAL);
  REFUSED(T, "3E-", -EINVAL);
  REFUSED(T, "3e1000000000", -ERANGE);
  PARSES(T, "0e1000000000", 0);
  REFUSED(T, "3e-1000000000", -EINVAL);
  REFUSED(T, "3x", -EINVAL);
  REFUSED(T, "1.0x", -EINVAL);
  REFUSED(T, "1.-", -EINVAL);
  REFUSED(T, "3e1x", -EINVAL);
  REFUSED(T, "3e1.", -EINVAL);
  REFUSED(T, "-", -EINVAL);
  REFUSED(T, ".", -EINVAL);
  REFUSED(T, "", -EINVAL);
  REFUSED(T, NULL, -EINVAL); /* as "" */
  CHECK(strstr(dbpool_last_error(), "invalid value '' for acquire_timeout_ms") != NULL);
  REFUSED(P, "maybe", -EINVAL);
  CHECK(strstr(dbpool_last_error(), "expected 0, 1, on, off") != NULL);
  REFUSED(-1, "1", -EINVAL);
  CHECK(strstr(dbpool_last_error(), "no setting number -1") != NULL);
  REFUSED(DBPOOL_SETTING_COUNT, "1", -EINVAL);
}

TEST(setting_lookup_and_description)
{
  CHECK(dbpool_setting_describe(-1) == NULL);
  CHECK(dbpool_setting_describe(DBPOOL_SETTING_COUNT) == NULL);
  CHECK(dbpool_setting_describe(DBPOOL_SETTING_PAUSED) != NULL);
  CHECK_RC(dbpool_setting_lookup("paused"), DBPOOL_SETTING_PAUSED);
  CHECK_RC(dbpool_setting_lookup("nonsense"), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "unknown setting 'nonsense'") != NULL);
  CHECK_RC(dbpool_setting_lookup(NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "unknown setting '(null)'") != NULL);
}

TEST(get_and_set_refuse_bad_arguments)
{
  dbpool_coord *c;
  int64_t v = -1;
  CHECK_RC(dbpool_coord_open(tu_db("args.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_get(NULL, DBPOOL_SETTING_PAUSED, &v), -EINVAL);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_PAUSED, NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "get: NULL argument") != NULL);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_COUNT, &v), -EINVAL);
  CHECK_RC(dbpool_coord_get(c, -3, &v), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "no setting number -3") != NULL);
  CHECK(v == -1);
  CHECK_RC(dbpool_coord_set(NULL, DBPOOL_SETTING_PAUSED, 1), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "set: pool is NULL") != NULL);
  CHECK_RC(dbpool_coord_set(c, 99, 1), -EINVAL);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 0), -ERANGE);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK(v == 10);
  dbpool_coord_close(c);
}

TEST(empty_environment_setting_means_the_default)
{
  setenv(DBPOOL_ENV_MAX_CONNECTIONS, "", 1);
  dbpool_coord *c;
  int64_t v = 0;
  CHECK_RC(dbpool_coord_open(tu_db("emptyenv.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK(v == dbpool_setting_describe(DBPOOL_SETTING_MAX_CONNECTIONS)->default_value);
  dbpool_coord_close(c);
  unsetenv(DBPOOL_ENV_MAX_CONNECTIONS);
}

TEST(holder_calls_refuse_null)
{
  CHECK_RC(dbpool_holder_acquire(NULL, 0), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "acquire: holder is NULL") != NULL);
  CHECK_RC(dbp_holder_acquire_interruptible(NULL, 0), -EINVAL);
  CHECK_RC(dbpool_holder_release(NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "release: holder is NULL") != NULL);
  CHECK_RC(dbpool_holder_set_label(NULL, "x"), -EINVAL);
  CHECK_RC(dbp_holder_set_joined(NULL, DBPOOL_JOINED_API), -EINVAL);
  CHECK(dbpool_holder_held(NULL) == 0);
  CHECK(dbp_holder_record(NULL) == DBP_REC_NONE);
  CHECK(dbp_holder_coord(NULL) == NULL);
  dbp_holder_set_idle(NULL, 1); /* nothing to do */
  dbpool_holder_free(NULL);
  CHECK_RC(dbpool_coord_reap(NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "reap: pool is NULL") != NULL);
  CHECK(dbp_coord_waiting(NULL) == 0);
  CHECK(dbp_coord_wait_for_waiter(NULL, 10) == 0);
  dbp_coord_wake_listeners(NULL);
  CHECK(dbp_coord_removed(NULL) == 0);
  CHECK_STR(dbpool_coord_segment_name(NULL), "");
  char buf[8] = "x";
  dbpool_coord_database(NULL, buf, sizeof buf);
  CHECK_STR(buf, "");
  dbpool_coord_database(NULL, NULL, 0);
  CHECK_RC(dbpool_coord_open(NULL, 0, NULL), -EINVAL);
  CHECK_RC(dbpool_coord_open_with(NULL, NULL, NULL), -EINVAL);
  CHECK_RC(dbp_coord_open_file(NULL, NULL, NULL), -EINVAL);
  dbpool_coord *c = (dbpool_coord *)1;
  CHECK_RC(dbpool_coord_open(tu_db("nullout.db"), 0, NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "out is NULL") != NULL);
  CHECK_RC(dbpool_holder_new(NULL, NULL), -EINVAL);
  (void)c;
}

TEST(joined_kinds_are_checked)
{
  tu_pool p = tu_pool_open("joined.db", 2, 1, 0);
  CHECK_RC(dbp_holder_set_joined(p.h[0], DBPOOL_JOINED_API - 1), -EINVAL);
  CHECK_RC(dbp_holder_set_joined(p.h[0], DBPOOL_JOINED_C_POOL + 1), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "no such kind 5") != NULL);
  CHECK_RC(dbp_holder_set_joined(p.h[0], DBPOOL_JOINED_C_POOL), 0);
  dbpool_holder_info info[2];
  CHECK_RC(dbpool_holder_acquire(p.h[0], 0), 0);
  CHECK_RC(dbpool_coord_holders(p.c, info, 2, sizeof *info), 1);
  CHECK(info[0].joined == DBPOOL_JOINED_C_POOL);
  /* In a child, the parent's holder is not its own. */
  pid_t pid = fork();
  if (pid == 0) {
    CCHECK(dbp_holder_set_joined(p.h[0], DBPOOL_JOINED_LOAD) == -EPERM);
    CCHECK(strstr(dbpool_last_error(), "belongs to another process") != NULL);
    CCHECK(dbpool_holder_set_label(p.h[0], "x") == -EPERM);
    CHILD_EXIT();
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK_RC(dbpool_coord_holders(p.c, info, 2, sizeof *info), 1);
  CHECK(info[0].joined == DBPOOL_JOINED_C_POOL);
  tu_pool_close(&p);
}

TEST(names_of_any_value)
{
  CHECK_STR(dbpool_joined_name(DBPOOL_JOINED_C_POOL), "c-pool");
  CHECK_STR(dbpool_joined_name(-1), "unknown");
  CHECK_STR(dbpool_joined_name(5), "unknown");
  CHECK_STR(dbpool_process_state_name(DBPOOL_PROCESS_STOPPED), "stopped");
  CHECK_STR(dbpool_process_state_name(-1), "unknown");
  CHECK_STR(dbpool_process_state_name(3), "unknown");
  CHECK_STR(dbpool_file_state_name(DBPOOL_FILE_UNKNOWN), "unknown");
  CHECK_STR(dbpool_file_state_name(DBPOOL_FILE_REPLACED), "replaced");
  CHECK_STR(dbpool_file_state_name(-1), "unknown");
  CHECK_STR(dbpool_file_state_name(5), "unknown");
}

TEST(histogram_bounds_and_percentiles)
{
  CHECK(dbpool_hist_lower_ns(0) == 0);
  uint64_t last = dbpool_hist_lower_ns(DBPOOL_HIST_BUCKETS);
  CHECK(last > dbpool_hist_lower_ns(DBPOOL_HIST_BUCKETS - 1));
  CHECK(dbpool_hist_lower_ns(DBPOOL_HIST_BUCKETS + 1) == last); /* clamped */
  CHECK(dbpool_hist_lower_ns(UINT32_MAX) == last);
  for (unsigned b = 1; b < DBPOOL_HIST_BUCKETS; b++)
    CHECK(dbp_hist_bucket(dbpool_hist_lower_ns(b)) == b);

  uint64_t counts[DBPOOL_HIST_BUCKETS] = {0};
  counts[0] = 1;
  counts[5] = 1;
  CHECK(dbp_percentile(counts, 0, 0.5, 99) == 0);
  CHECK(dbp_percentile(counts, 2, 0.0, 1u << 30) == 0); /* rank 1: bucket 0 */
  uint64_t mid5 = dbpool_hist_lower_ns(5) + (dbpool_hist_lower_ns(6) - dbpool_hist_lower_ns(5)) / 2;
  CHECK(dbp_percentile(counts, 2, 1.0, UINT64_MAX) == mid5);
  CHECK(dbp_percentile(counts, 2, 1.0, 3) == 3); /* never above the largest wait */
  /* A total above the counts' sum (they are read one by one while others
  ** add): the largest wait. */
  CHECK(dbp_percentile(counts, 10, 0.99, 777) == 777);

  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(tu_db("hist.db"), 0, &c), 0);
  uint64_t got[4] = {9, 9, 9, 9};
  CHECK_RC(dbpool_coord_histogram(NULL, got, 4), -EINVAL);
  CHECK_RC(dbpool_coord_histogram(c, NULL, 4), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "histogram: NULL argument") != NULL);
  CHECK_RC(dbpool_coord_histogram(c, NULL, 0), DBPOOL_HIST_BUCKETS);
  CHECK_RC(dbpool_coord_histogram(c, got, 4), DBPOOL_HIST_BUCKETS);
  CHECK(got[0] == 0 && got[1] == 0 && got[3] == 0);
  dbpool_coord_close(c);
}

TEST(stats_and_holders_refuse_null)
{
  dbpool_coord *c;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[1];
  CHECK_RC(dbpool_coord_open(tu_db("statsnull.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_stats(NULL, &st), -EINVAL);
  CHECK_RC(dbpool_coord_stats(c, NULL), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "stats: NULL argument") != NULL);
  CHECK_RC(dbpool_coord_holders(NULL, info, 1, sizeof *info), -EINVAL);
  CHECK_RC(dbpool_coord_holders(c, NULL, 1, sizeof *info), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "holders: NULL argument") != NULL);
  CHECK_RC(dbpool_coord_holders(c, NULL, 0, sizeof *info), 0);
  dbpool_coord_close(c);
}

/* A read-only attachment neither listens for waiters nor wakes listeners:
** it may not write the counters they use. */
TEST(readonly_attachment_does_not_listen)
{
  dbpool_coord *rw, *ro;
  const char *db = tu_db("rolisten.db");
  CHECK_RC(dbpool_coord_open(db, 0, &rw), 0);
  CHECK_RC(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &ro), 0);
  uint32_t before = atomic_load(&rw->hdr->waiter_event);
  dbp_coord_wake_listeners(ro);
  CHECK(atomic_load(&rw->hdr->waiter_event) == before);
  double t0 = tu_now_ms();
  CHECK(dbp_coord_wait_for_waiter(ro, 5000) == 0); /* returns at once */
  CHECK(tu_now_ms() - t0 < 4000);
  CHECK(atomic_load(&rw->hdr->event_listeners) == 0);
  CHECK_RC(dbpool_coord_reap(ro), -EROFS);
  dbp_coord_wake_listeners(rw);
  CHECK(atomic_load(&rw->hdr->waiter_event) == before + 1);
  dbpool_coord_close(ro);
  dbpool_coord_close(rw);
}

/* Who uses the records, for the message of a pool whose records ran out:
** owners out of range (garbage) are not counted, and the text is cut at
** the buffer's size. */
TEST(record_users_ignore_garbage_owners)
{
  tu_pool p = tu_pool_open("users.db", 4, 4, 0);
  char buf[256];
  dbp_record_users(p.c, buf, sizeof buf);
  char want[64];
  snprintf(want, sizeof want, "; most by pid %d (", (int)getpid());
  CHECK(strncmp(buf, want, strlen(want)) == 0);
  CHECK(strstr(buf, "): 4") != NULL);
  uint32_t r1 = dbp_holder_record(p.h[1]), r2 = dbp_holder_record(p.h[2]);
  uint32_t o1 = atomic_load(&p.c->recs[r1].owner), o2 = atomic_load(&p.c->recs[r2].owner);
  atomic_store(&p.c->recs[r1].owner, DBP_PROCESSES + 1);
  atomic_store(&p.c->recs[r2].owner, 0xffffffffu);
  dbp_record_users(p.c, buf, sizeof buf);
  CHECK(strstr(buf, "): 2") != NULL && strstr(buf, ",") == NULL);
  /* Only the three processes owning the most are named. */
  uint32_t r3 = dbp_holder_record(p.h[3]), o3 = atomic_load(&p.c->recs[r3].owner);
  atomic_store(&p.c->recs[r1].owner, 5);
  atomic_store(&p.c->recs[r2].owner, 6);
  atomic_store(&p.c->recs[r3].owner, 7);
  dbp_record_users(p.c, buf, sizeof buf);
  CHECK(strstr(buf, "): 1, pid 0 (): 1, pid 0 (): 1") != NULL);
  CHECK(strstr(buf, "): 1, pid 0 (): 1, pid 0 (): 1,") == NULL);
  atomic_store(&p.c->recs[r1].owner, 0);
  atomic_store(&p.c->recs[r2].owner, 0xffffffffu);
  atomic_store(&p.c->recs[r3].owner, o3);
  dbp_record_users(p.c, buf, 8); /* cut short, still terminated */
  CHECK(strlen(buf) == 7 && strncmp(buf, "; most ", 7) == 0);
  /* A holder whose owner is garbage is no live process's: not shown. */
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_holder_acquire(p.h[1], 0), 0);
  CHECK_RC(dbpool_coord_holders(p.c, info, 4, sizeof *info), 0);
  atomic_store(&p.c->recs[r1].owner, o1);
  atomic_store(&p.c->recs[r2].owner, o2);
  CHECK_RC(dbpool_coord_holders(p.c, info, 4, sizeof *info), 1);
  CHECK(info[0].pid == getpid());
  tu_pool_close(&p);
}

TEST(file_identity_from_statx)
{
  struct statx sx;
  memset(&sx, 0, sizeof sx);
  sx.stx_mask = STATX_BASIC_STATS; /* no birth time */
  sx.stx_mode = S_IFREG | 0640;
  sx.stx_ino = 77;
  sx.stx_dev_major = 8;
  sx.stx_dev_minor = 1;
  sx.stx_btime.tv_sec = 5;
  dbp_file_id id;
  CHECK(dbp_file_id_from_statx(&sx, &id) == 0);
  CHECK(id.birth == 0 && id.ino == 77 && id.dev == makedev(8, 1));
  sx.stx_mask |= STATX_BTIME;
  CHECK(dbp_file_id_from_statx(&sx, &id) == 0);
  CHECK(id.birth == 5000000000ull);
  sx.stx_mask = STATX_BTIME | STATX_INO; /* lacks the type, owner, ... */
  CHECK(dbp_file_id_from_statx(&sx, &id) == -1);

  dbp_key a = {1, 2, 3}, b = a;
  CHECK(dbp_key_equal(&a, &b));
  b.dev = 9;
  CHECK(!dbp_key_equal(&a, &b));
  b = a;
  b.ino = 9;
  CHECK(!dbp_key_equal(&a, &b));
  b = a;
  b.birth = 9;
  CHECK(!dbp_key_equal(&a, &b));
}

TEST(database_paths_that_are_not_files)
{
  dbpool_coord *c = (dbpool_coord *)1;
  CHECK_RC(dbpool_coord_open(tu_dir, 0, &c), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "is not a regular file") != NULL);
  CHECK(c == NULL);
  char below[600];
  snprintf(below, sizeof below, "%s/x", tu_db("plain.db"));
  CHECK_RC(dbpool_coord_open(below, 0, &c), -ENOENT); /* ENOTDIR */
  CHECK(strstr(dbpool_last_error(), "does not exist") != NULL);
  /* Opened for SQLite: not a file is 1 (not counted), without a message. */
  CHECK_RC(dbp_coord_open_file(below, NULL, &c), 1);
  CHECK_RC(dbp_coord_open_file(tu_dir, NULL, &c), 1);
}

int main(void)
{
  tu_init("argchecks");
  RUN(setting_text_rule);
  RUN(setting_lookup_and_description);
  RUN(get_and_set_refuse_bad_arguments);
  RUN(empty_environment_setting_means_the_default);
  RUN(holder_calls_refuse_null);
  RUN(joined_kinds_are_checked);
  RUN(names_of_any_value);
  RUN(histogram_bounds_and_percentiles);
  RUN(stats_and_holders_refuse_null);
  RUN(readonly_attachment_does_not_listen);
  RUN(record_users_ignore_garbage_owners);
  RUN(file_identity_from_statx);
  RUN(database_paths_that_are_not_files);
  return tu_finish();
}
