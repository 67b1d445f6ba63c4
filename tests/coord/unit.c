/*
** unit.c -- the coordinator's API, one behaviour per test, in one process
** (multi-process behaviour has its own programs).
*/
#include <pthread.h>

#include "testutil.h"

TEST(missing_database_is_an_error)
{
  dbpool_coord *c = NULL;
  char path[512];
  snprintf(path, sizeof path, "%s/nope.db", tu_dir);
  CHECK_RC(dbpool_coord_open(path, 0, &c), -ENOENT);
  CHECK(c == NULL);
  CHECK(strstr(dbpool_last_error(), "nope.db does not exist") != NULL);
  CHECK(tu_count_segments() == 0);
}

TEST(acquire_release_counts)
{
  dbpool_coord *c;
  dbpool_holder *a, *b;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_open(tu_db("counts.db"), 0, &c), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbpool_holder_new(c, &b), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), -EALREADY);
  CHECK_RC(dbpool_holder_acquire(b, 0), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 2 && st.total_acquired == 2 && st.peak_active == 2);
  CHECK(st.max_connections == 10 && st.acquire_timeout_ms == 5000);
  CHECK(st.processes == 1 && st.waiting == 0 && st.paused == 0);
  CHECK_RC(dbpool_holder_release(a), 0);
  CHECK_RC(dbpool_holder_release(a), -ENOENT);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 1 && st.total_released == 1 && st.peak_active == 2);
  dbpool_holder_free(b); /* releases */
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 0 && st.total_released == 2 && st.total_acquired == 2);
  dbpool_holder_free(a);
  dbpool_coord_close(c);
}

TEST(try_once_and_timeout)
{
  dbpool_coord *c;
  dbpool_holder *a, *b;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_open(tu_db("timeout.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbpool_holder_new(c, &b), 0);
  CHECK_RC(dbpool_holder_acquire(a, -1), 0);
  CHECK_RC(dbpool_holder_acquire(b, 0), -EAGAIN);
  CHECK(strstr(dbpool_last_error(), "all 1 connections to ") != NULL);
  double t0 = tu_now_ms();
  CHECK_RC(dbpool_holder_acquire(b, 120), -ETIMEDOUT);
  double took = tu_now_ms() - t0;
  CHECK(took >= 119.0);
  CHECK(strstr(dbpool_last_error(), "timeout.db are in use (waited 1") != NULL);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_timeouts == 2 && st.waiting == 0 && st.active == 1);
  CHECK_RC(dbpool_holder_release(a), 0);
  CHECK_RC(dbpool_holder_acquire(b, 0), 0);
  dbpool_holder_free(a);
  dbpool_holder_free(b);
  dbpool_coord_close(c);
}

TEST(same_file_same_pool)
{
  const char *db = tu_db("same.db");
  char link_path[512], hard[512], rel[512];
  snprintf(link_path, sizeof link_path, "%s/symlink.db", tu_dir);
  snprintf(hard, sizeof hard, "%s/hard.db", tu_dir);
  CHECK(symlink(db, link_path) == 0);
  CHECK(link(db, hard) == 0);
  dbpool_coord *a, *b, *c, *d;
  int before = tu_count_segments();
  CHECK_RC(dbpool_coord_open(db, 0, &a), 0);
  CHECK_RC(dbpool_coord_open(link_path, 0, &b), 0);
  CHECK_RC(dbpool_coord_open(hard, 0, &c), 0);
  char cwd[512];
  CHECK(getcwd(cwd, sizeof cwd) != NULL);
  CHECK(chdir(tu_dir) == 0);
  snprintf(rel, sizeof rel, "./same.db");
  CHECK_RC(dbpool_coord_open(rel, 0, &d), 0);
  CHECK(chdir(cwd) == 0);
  CHECK_STR(dbpool_coord_segment_name(a), dbpool_coord_segment_name(b));
  CHECK_STR(dbpool_coord_segment_name(a), dbpool_coord_segment_name(c));
  CHECK_STR(dbpool_coord_segment_name(a), dbpool_coord_segment_name(d));
  CHECK_RC(dbpool_coord_set(b, DBPOOL_SETTING_MAX_CONNECTIONS, 7), 0);
  int64_t v = 0;
  CHECK_RC(dbpool_coord_get(d, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK(v == 7);
  char recorded[1024];
  dbpool_coord_database(a, recorded, sizeof recorded);
  CHECK(recorded[0] == '/' && strstr(recorded, "same.db") != NULL);
  CHECK(tu_count_segments() == before + 1);
  dbpool_coord_close(a);
  dbpool_coord_close(b);
  dbpool_coord_close(c);
  dbpool_coord_close(d);
}

/* A path too long to record is named in full, and the limit after it: the
** message is not cut short (it once was, at 512 bytes), and a short
** symlink does not help (the path is resolved). */
TEST(a_long_path_is_refused_with_the_whole_message)
{
  char deep[1400], link_path[512], db[1500];
  snprintf(deep, sizeof deep, "%s", tu_dir);
  while (strlen(deep) < 1100) {
    strcat(deep, "/");
    memset(deep + strlen(deep) + 100, 0, 1);
    memset(deep + strlen(deep), 'd', 100);
    REQUIRE(mkdir(deep, 0755) == 0);
  }
  snprintf(db, sizeof db, "%s/long.db", deep);
  int fd = open(db, O_CREAT | O_RDWR, 0644);
  REQUIRE(fd >= 0);
  close(fd);
  snprintf(link_path, sizeof link_path, "%s/short", tu_dir);
  REQUIRE(symlink(deep, link_path) == 0);
  strcat(link_path, "/long.db");
  dbpool_coord *c = NULL;
  char want[1600];
  snprintf(want, sizeof want, "dbpool: database path %s is longer than 1023 bytes", db);
  CHECK_RC(dbpool_coord_open(db, 0, &c), -ENAMETOOLONG);
  CHECK_STR(dbpool_last_error(), want);
  CHECK_RC(dbpool_coord_open(link_path, 0, &c), -ENAMETOOLONG);
  CHECK_STR(dbpool_last_error(), want);
  CHECK(c == NULL);
}

TEST(settings_validation)
{
  dbpool_coord *c;
  int64_t v;
  CHECK_RC(dbpool_coord_open(tu_db("settings.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 0), -ERANGE);
  CHECK_STR(dbpool_last_error(), "dbpool: max_connections=0 is out of range (1..4096)");
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 4097), -ERANGE);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, -1), -ERANGE);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 2), -ERANGE);
  CHECK_RC(dbpool_coord_set(c, 99, 1), -EINVAL);
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK(v == 10);
  CHECK_RC(dbpool_setting_lookup("max_connections"), DBPOOL_SETTING_MAX_CONNECTIONS);
  CHECK_RC(dbpool_setting_lookup("max_conections"), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "unknown setting 'max_conections'") != NULL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "abc", &v), -EINVAL);
  CHECK_STR(dbpool_last_error(),
            "dbpool: invalid value 'abc' for max_connections: expected an integer from 1 to 4096");
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "12x", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "-3", &v), -ERANGE);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "99999999999999999999", &v), -ERANGE);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "20", &v), 0);
  CHECK(v == 20);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_PAUSED, "on", &v), 0);
  CHECK(v == 1);
  /* One rule: surrounding whitespace is ignored, an integral REAL is an
  ** integer, anything with a fraction is invalid. */
  static const struct { const char *text; long want; } ok[] = {
      {" 5", 5}, {"5 ", 5}, {"\t7\n", 7}, {"3.0", 3}, {"3.", 3}, {" 3.00 ", 3},
      {"30e-1", 3}, {"1e3", 1000}, {"+8", 8}, {"4096.0", 4096}};
  for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
    v = -1;
    CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, ok[i].text, &v), 0);
    CHECK_RC(v, ok[i].want);
  }
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "3.5", &v), -EINVAL);
  CHECK_STR(dbpool_last_error(),
            "dbpool: invalid value '3.5' for max_connections: expected an integer from 1 to 4096");
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, " ", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "1 2", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "0x10", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "inf", &v), -EINVAL);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "4097.0", &v), -ERANGE);
  CHECK_STR(dbpool_last_error(), "dbpool: max_connections=4097 is out of range (1..4096)");
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_MAX_CONNECTIONS, "1e20", &v), -ERANGE);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_PAUSED, " off ", &v), 0);
  CHECK(v == 0);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_PAUSED, "1.0", &v), 0);
  CHECK(v == 1);
  CHECK_RC(dbpool_setting_parse(DBPOOL_SETTING_PAUSED, "0.5", &v), -EINVAL);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) {
    const dbpool_setting_info *d = dbpool_setting_describe(s);
    CHECK(d && d->name && d->description && d->min_value <= d->default_value &&
          d->default_value <= d->max_value);
    if (s > 0) CHECK(strcmp(dbpool_setting_describe(s - 1)->name, d->name) < 0);
  }
  CHECK(dbpool_setting_describe(DBPOOL_SETTING_COUNT) == NULL);
  dbpool_coord_close(c);
}

TEST(environment_defaults)
{
  dbpool_coord *c;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  setenv("DBPOOL_MAX_CONNECTIONS", "3", 1);
  setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", "250", 1);
  CHECK_RC(dbpool_coord_open(tu_db("env.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.max_connections == 3 && st.acquire_timeout_ms == 250);
  dbpool_coord_close(c);
  /* The values of the variables follow the settings' rule. */
  setenv("DBPOOL_MAX_CONNECTIONS", " 4 ", 1);
  setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", "250.0", 1);
  CHECK_RC(dbpool_coord_open(tu_db("env-spaces.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.max_connections == 4 && st.acquire_timeout_ms == 250);
  dbpool_coord_close(c);
  setenv("DBPOOL_MAX_CONNECTIONS", "0", 1);
  CHECK_RC(dbpool_coord_open(tu_db("env-bad.db"), 0, &c), -ERANGE);
  CHECK(strstr(dbpool_last_error(), "DBPOOL_MAX_CONNECTIONS='0' is invalid") != NULL);
  setenv("DBPOOL_MAX_CONNECTIONS", "2.5", 1);
  CHECK_RC(dbpool_coord_open(tu_db("env-bad.db"), 0, &c), -EINVAL);
  CHECK_STR(dbpool_last_error(), "dbpool: environment variable DBPOOL_MAX_CONNECTIONS='2.5' "
                                 "is invalid: expected an integer from 1 to 4096");
  /* An explicit value never needs its variable; the other one is still
  ** read, and still checked, when the pool is created. */
  int64_t given[DBPOOL_SETTING_COUNT];
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) given[s] = DBPOOL_SETTING_UNSET;
  given[DBPOOL_SETTING_MAX_CONNECTIONS] = 5;
  CHECK_RC(dbpool_coord_open_with(tu_db("env-given.db"), given, &c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.max_connections == 5 && st.acquire_timeout_ms == 250);
  dbpool_coord_close(c);
  setenv("DBPOOL_ACQUIRE_TIMEOUT_MS", "soon", 1);
  CHECK_RC(dbpool_coord_open_with(tu_db("env-given2.db"), given, &c), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "DBPOOL_ACQUIRE_TIMEOUT_MS='soon' is invalid") != NULL);
  given[DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS] = 700;
  CHECK_RC(dbpool_coord_open_with(tu_db("env-given2.db"), given, &c), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.max_connections == 5 && st.acquire_timeout_ms == 700);
  dbpool_coord_close(c);
  given[DBPOOL_SETTING_MAX_CONNECTIONS] = 0;
  CHECK_RC(dbpool_coord_open_with(tu_db("env-given3.db"), given, &c), -ERANGE);
  unsetenv("DBPOOL_MAX_CONNECTIONS");
  unsetenv("DBPOOL_ACQUIRE_TIMEOUT_MS");
  setenv("DBPOOL_NAMESPACE", "bad/namespace", 1);
  CHECK_RC(dbpool_coord_open(tu_db("env-ns.db"), 0, &c), -EINVAL);
  CHECK(strstr(dbpool_last_error(), "DBPOOL_NAMESPACE='bad/namespace' is invalid") != NULL);
  setenv("DBPOOL_NAMESPACE", tu_ns, 1);
}

TEST(lower_limit_revokes_nothing)
{
  dbpool_coord *c;
  dbpool_holder *h[4];
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_open(tu_db("lower.db"), 0, &c), 0);
  for (int i = 0; i < 4; i++) CHECK_RC(dbpool_holder_new(c, &h[i]), 0);
  for (int i = 0; i < 3; i++) CHECK_RC(dbpool_holder_acquire(h[i], 0), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1), 0);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 3 && st.max_connections == 1);
  CHECK_RC(dbpool_holder_acquire(h[3], 0), -EAGAIN);
  CHECK_RC(dbpool_holder_release(h[0]), 0);
  CHECK_RC(dbpool_holder_acquire(h[3], 0), -EAGAIN); /* 2 held > 1 */
  CHECK_RC(dbpool_holder_release(h[1]), 0);
  CHECK_RC(dbpool_holder_acquire(h[3], 0), -EAGAIN); /* 1 held = 1 */
  CHECK_RC(dbpool_holder_release(h[2]), 0);
  CHECK_RC(dbpool_holder_acquire(h[3], 0), 0);
  for (int i = 0; i < 4; i++) dbpool_holder_free(h[i]);
  dbpool_coord_close(c);
}

typedef struct {
  dbpool_holder *h;
  int timeout;
  int rc;
  double took;
} waiter_arg;

static void *waiter_thread(void *p)
{
  waiter_arg *w = p;
  double t0 = tu_now_ms();
  w->rc = dbpool_holder_acquire(w->h, w->timeout);
  w->took = tu_now_ms() - t0;
  return NULL;
}

static unsigned wait_for_waiters(dbpool_coord *c, unsigned n)
{
  for (long i = 0; i < tu_polls(5000) && dbp_coord_waiting(c) < n; i++) tu_sleep_ms(1);
  return dbp_coord_waiting(c);
}

TEST(raise_limit_and_resume_let_waiters_in)
{
  dbpool_coord *c;
  dbpool_holder *a, *b;
  pthread_t t;
  CHECK_RC(dbpool_coord_open(tu_db("raise.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbpool_holder_new(c, &b), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);
  waiter_arg w = {b, (int)tu_ms(10000), 1, 0};
  pthread_create(&t, NULL, waiter_thread, &w);
  CHECK(wait_for_waiters(c, 1) == 1);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2), 0);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, 0);
  CHECK(w.took < tu_ms(5000));
  CHECK_RC(dbpool_holder_release(b), 0);

  /* Paused: even with room, acquires wait; resume lets them in. */
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 1), 0);
  CHECK_RC(dbpool_holder_acquire(b, 0), -EAGAIN);
  char want[600];
  snprintf(want, sizeof want, "dbpool: pool full: the pool of %s is paused (1 of 2 connections "
           "in use; waited 0 ms)", tu_db("raise.db"));
  CHECK_STR(dbpool_last_error(), want);
  CHECK_RC(dbpool_holder_acquire(b, 40), -ETIMEDOUT);
  CHECK(strstr(dbpool_last_error(), "raise.db is paused (1 of 2 connections in use; "
                                    "waited ") != NULL);
  w = (waiter_arg){b, (int)tu_ms(10000), 1, 0};
  pthread_create(&t, NULL, waiter_thread, &w);
  CHECK(wait_for_waiters(c, 1) == 1);
  tu_sleep_ms(30);
  CHECK(!dbpool_holder_held(b));
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 0), 0);
  pthread_join(t, NULL);
  CHECK_RC(w.rc, 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.active == 2 && st.waiting == 0 && st.max_wait_ns >= 30000000u);
  /* 3 acquires, 2 of them waited: p50 is the short wait, p99 the paused one. */
  CHECK(st.total_acquired == 3 && st.p50_wait_ns > 0 && st.p99_wait_ns >= 25000000u);
  dbpool_holder_free(a);
  dbpool_holder_free(b);
  dbpool_coord_close(c);
}

TEST(holders_list_and_labels)
{
  dbpool_coord *c;
  dbpool_holder *a, *b, *w;
  dbpool_holder_info info[8];
  pthread_t t;
  CHECK_RC(dbpool_coord_open(tu_db("holders.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbpool_holder_new(c, &b), 0);
  CHECK_RC(dbpool_holder_new(c, &w), 0);
  CHECK_RC(dbpool_holder_set_label(a, "nightly-report"), 0);
  CHECK_RC(dbpool_holder_set_label(w, "a label that is far too long to fit in forty-seven bytes"), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);
  CHECK_RC(dbpool_holder_acquire(b, 0), 0);
  dbp_holder_set_idle(b, 1);
  waiter_arg wa = {w, (int)tu_ms(10000), 1, 0};
  pthread_create(&t, NULL, waiter_thread, &wa);
  CHECK(wait_for_waiters(c, 1) == 1);
  int n = dbpool_coord_holders(c, info, 8, sizeof *info);
  CHECK(n == 3);
  if (n == 3) {
    CHECK(info[0].state == DBPOOL_HOLDER_ACTIVE && info[0].pid == getpid());
    CHECK_STR(info[0].label, "nightly-report");
    CHECK(info[0].record == dbp_holder_record(a));
    CHECK(info[1].state == DBPOOL_HOLDER_IDLE);
    CHECK(info[2].state == DBPOOL_HOLDER_WAITING && info[2].record == dbp_holder_record(w));
    CHECK(strlen(info[2].label) == DBPOOL_LABEL_MAX - 1);
    CHECK(info[0].process[0] != 0 && info[0].tid > 0);
    CHECK(info[0].since_ns > 0);
  }
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.idle == 1 && st.waiting == 1 && st.active == 2);
  CHECK(dbp_coord_wait_for_waiter(c, 0) == 1);
  CHECK_RC(dbpool_coord_holders(c, info, 1, sizeof *info), 3); /* count beyond cap */
  CHECK_RC(dbpool_holder_release(b), 0);
  pthread_join(t, NULL);
  CHECK_RC(wa.rc, 0);
  dbpool_holder_free(a);
  dbpool_holder_free(b);
  dbpool_holder_free(w);
  dbpool_coord_close(c);
}

TEST(remove_refuses_while_in_use)
{
  const char *db = tu_db("remove.db");
  dbpool_coord *c;
  dbpool_holder *h;
  int before = tu_count_segments();
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_holder_new(c, &h), 0);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -EBUSY);
  CHECK(strstr(dbpool_last_error(), "in use by 1 live process") != NULL);
  CHECK(tu_count_segments() == before + 1);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), 0);
  CHECK(tu_count_segments() == before);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -ENOENT);
}

TEST(settings_outlive_processes)
{
  const char *db = tu_db("persist.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 4), 0);
  dbpool_coord_close(c);
  pid_t pid = fork();
  if (pid == 0) {
    dbpool_coord *cc;
    int64_t v = 0;
    _exit(dbpool_coord_open(db, 0, &cc) == 0 &&
                  dbpool_coord_get(cc, DBPOOL_SETTING_MAX_CONNECTIONS, &v) == 0 && v == 4
              ? 0 : 1);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
}

TEST(a_segment_deleted_by_hand_is_not_reused)
{
  const char *db = tu_db("by-hand.db");
  dbpool_coord *c;
  int64_t v = 0;
  char path[256];
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 5), 0);
  snprintf(path, sizeof path, "/dev/shm%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c); /* the mapping stays cached in this process */
  CHECK(unlink(path) == 0);
  tu_sleep_ms(1100); /* noticed within a second (no stat on every open) */
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0); /* a new pool, not the cache */
  CHECK_RC(dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &v), 0);
  CHECK(v == 10);
  CHECK(access(path, F_OK) == 0);
  dbpool_coord_close(c);
}

static int count_cb(const char *name, void *arg)
{
  (void)name;
  ++*(int *)arg;
  return 0;
}

/* Listing only reads: the pool of a deleted database stays listed until
** collected (identity.c tests collection). */
TEST(list_never_removes_anything)
{
  const char *keep = tu_db("keep.db"), *gone = tu_db("gone.db");
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(keep, 0, &c), 0);
  dbpool_coord_close(c);
  CHECK_RC(dbpool_coord_open(gone, 0, &c), 0);
  dbpool_coord_close(c);
  int before = tu_count_segments();
  CHECK(unlink(gone) == 0);
  int n = 0;
  CHECK_RC(dbpool_coord_list(count_cb, &n), 0);
  CHECK_RC(tu_count_segments(), before);
  CHECK_RC(n, before);
}

/* Mappings of pool segments in this process (/proc/self/maps). */
static int mapped_pools(void)
{
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) n += strstr(line, "/dev/shm/dbpool.") != NULL;
  if (f) fclose(f);
  return n;
}

static int open_fds(void)
{
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  while (d && (e = readdir(d))) n += e->d_name[0] != '.';
  if (d) closedir(d);
  return n;
}

/* A process that opens and closes many databases keeps a bounded number
** of pools mapped (issue 10, item 4): 400 databases, each opened, used and
** closed in turn. */
TEST(a_process_keeps_a_bounded_number_of_pools_mapped)
{
  int fds_before = open_fds();
  for (int i = 0; i < 400; i++) {
    char name[32];
    snprintf(name, sizeof name, "many-%d.db", i);
    const char *db = tu_db(name);
    dbpool_coord *c;
    dbpool_holder *h;
    REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
    REQUIRE(dbpool_holder_new(c, &h) == 0);
    CHECK_RC(dbpool_holder_acquire(h, 0), 0);
    dbpool_holder_free(h);
    dbpool_coord_close(c);
    REQUIRE(dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c) == 0);
    dbpool_coord_close(c);
    if (mapped_pools() > 16) break;
  }
  CHECK(mapped_pools() <= 16); /* at most 8 unused, each rw and ro */
  CHECK(open_fds() <= fds_before + 16);
}

TEST(strerror_names_every_error)
{
  int errs[] = {EAGAIN, ETIMEDOUT, ENOENT, EACCES, EPERM, EBADMSG, EINVAL,
                ERANGE, ENOSPC, EBUSY, EALREADY, EROFS, ESTALE};
  for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
    CHECK(dbpool_strerror(-errs[i])[0] != 0);
  CHECK_STR(dbpool_strerror(-ETIMEDOUT), "timed out waiting for a slot");
  CHECK_STR(dbpool_strerror(0), "success");
  CHECK_STR(dbpool_version(), DBPOOL_VERSION);
}

TEST(histogram_buckets_are_contiguous)
{
  CHECK(dbpool_hist_lower_ns(0) == 0 && dbpool_hist_lower_ns(1) == 1024);
  for (unsigned b = 1; b + 1 < DBPOOL_HIST_BUCKETS; b++) {
    uint64_t lo = dbpool_hist_lower_ns(b), hi = dbpool_hist_lower_ns(b + 1);
    CHECK(hi > lo);
    CHECK((double)(hi - lo) / (double)lo <= 0.125 + 1e-9);
  }
}

/* Acquires that time out are in the wait figures, with the time they
** waited: a pool that timed callers out must not show a p99 of 0. */
TEST(timed_out_waits_are_in_the_wait_figures)
{
  dbpool_coord *c;
  dbpool_holder *a, *b;
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  uint64_t counts[DBPOOL_HIST_BUCKETS], n = 0, slow = 0;
  CHECK_RC(dbpool_coord_open(tu_db("timedwait.db"), 0, &c), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbpool_holder_new(c, &b), 0);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);   /* granted at once */
  CHECK_RC(dbpool_holder_acquire(b, 0), -EAGAIN); /* fails at once */
  for (int i = 0; i < 2; i++) CHECK_RC(dbpool_holder_acquire(b, 150), -ETIMEDOUT);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_acquired == 1 && st.total_timeouts == 3);
  /* 4 attempts: two waited about 150 ms, two not at all. */
  CHECK(st.max_wait_ns >= 149000000u && st.max_wait_ns < 60000000000u);
  CHECK(st.total_wait_ns >= 298000000u);
  CHECK(st.p99_wait_ns >= 130000000u && st.p99_wait_ns <= st.max_wait_ns);
  CHECK(st.p50_wait_ns < 1000000u);
  CHECK(st.avg_wait_ns == st.total_wait_ns / 4);
  CHECK_RC(dbpool_coord_histogram(c, counts, DBPOOL_HIST_BUCKETS), DBPOOL_HIST_BUCKETS);
  for (unsigned k = 0; k < DBPOOL_HIST_BUCKETS; k++) {
    n += counts[k];
    if (dbpool_hist_lower_ns(k) >= 130000000u) slow += counts[k];
  }
  CHECK(n == 4 && slow == 2);
  dbpool_holder_free(a);
  dbpool_holder_free(b);
  dbpool_coord_close(c);
}

/* How a holder came is shown with it; a reused record starts as "api". */
TEST(holders_show_how_they_joined)
{
  dbpool_coord *c;
  dbpool_holder *a, *b;
  dbpool_holder_info info[4];
  CHECK_RC(dbpool_coord_open(tu_db("joined.db"), 0, &c), 0);
  CHECK_RC(dbpool_holder_new(c, &a), 0);
  CHECK_RC(dbp_holder_set_joined(a, DBPOOL_JOINED_PRELOAD), 0);
  CHECK_RC(dbp_holder_set_joined(a, 99), -EINVAL);
  CHECK_RC(dbpool_holder_acquire(a, 0), 0);
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 1);
  CHECK(info[0].joined == DBPOOL_JOINED_PRELOAD);
  CHECK_STR(dbpool_joined_name(info[0].joined), "preload");
  dbpool_holder_free(a);
  CHECK_RC(dbpool_holder_new(c, &b), 0); /* gets the freed record */
  CHECK_RC(dbpool_holder_acquire(b, 0), 0);
  CHECK_RC(dbpool_coord_holders(c, info, 4, sizeof *info), 1);
  CHECK_STR(dbpool_joined_name(info[0].joined), "api");
  CHECK_STR(dbpool_joined_name(DBPOOL_JOINED_C_POOL), "c-pool");
  CHECK_STR(dbpool_joined_name(-1), "unknown");
  CHECK_STR(dbpool_joined_name(5), "unknown");
  dbpool_holder_free(b);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("unit");
  RUN(missing_database_is_an_error);
  RUN(acquire_release_counts);
  RUN(try_once_and_timeout);
  RUN(same_file_same_pool);
  RUN(a_long_path_is_refused_with_the_whole_message);
  RUN(settings_validation);
  RUN(environment_defaults);
  RUN(lower_limit_revokes_nothing);
  RUN(raise_limit_and_resume_let_waiters_in);
  RUN(holders_list_and_labels);
  RUN(remove_refuses_while_in_use);
  RUN(settings_outlive_processes);
  RUN(a_segment_deleted_by_hand_is_not_reused);
  RUN(list_never_removes_anything);
  RUN(a_process_keeps_a_bounded_number_of_pools_mapped);
  RUN(strerror_names_every_error);
  RUN(histogram_buckets_are_contiguous);
  RUN(timed_out_waits_are_in_the_wait_figures);
  RUN(holders_show_how_they_joined);
  return tu_finish();
}
