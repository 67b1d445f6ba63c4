/*
** identity.c -- a pool belongs to one database file, and its settings
** follow the database (docs/protocol.md, "Which file a pool belongs to";
** coordinator/dbfile.c, naming.c, admin.c).
**
** Checks:
**   - a new file that reuses a deleted file's inode number (ext4 does at
**     once) gets a fresh pool: default settings, no statistics;
**   - a renamed database keeps its pool and settings; reading (stats,
**     holders, listing) never deletes anything; collection finds the rename
**     and keeps the pool, recording the new path;
**   - a database replaced at its path (restore by mv) gets a pool that starts
**     with the settings of the pool last used at that path, and clean
**     statistics; connections still open to the old file keep their slots in
**     the old pool, shown as replaced, removed when its last holder leaves;
**   - the pool of a deleted database goes when its last holder leaves, not
**     before; the pool of a renamed one stays;
**   - gc (dry run first) removes pools of deleted databases nobody uses,
**     keeps those in use, and says why for each.
*/
#include <stdatomic.h>

#include "testutil.h"

typedef struct {
  _Atomic int ready, go;
} shared;
static shared *S;

static int64_t setting(dbpool_coord *c, int s)
{
  int64_t v = -1;
  dbpool_coord_get(c, s, &v);
  return v;
}

static uint64_t ino_of(const char *path)
{
  struct stat st;
  return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

static int count_cb(const char *name, void *arg)
{
  (void)name;
  ++*(int *)arg;
  return 0;
}

static int listed(void)
{
  int n = 0;
  CHECK_RC(dbpool_coord_list(count_cb, &n), 0);
  return n;
}

static int seg_exists(const char *segment)
{
  char path[300];
  snprintf(path, sizeof path, "/dev/shm%s", segment);
  return access(path, F_OK) == 0;
}

/* A child that opens db, holds a slot until S->go, then exits without
** releasing (or releasing, if tidy). */
static pid_t holder_child(const char *db, int tidy)
{
  atomic_store(&S->ready, 0);
  atomic_store(&S->go, 0);
  fflush(NULL);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    alarm(tu_sec(30));
    dbpool_holder *h = tu_child_take_slot(db, NULL);
    atomic_store(&S->ready, 1);
    while (!atomic_load(&S->go)) tu_sleep_ms(1);
    if (tidy) {
      dbpool_coord *c = dbp_holder_coord(h);
      dbpool_holder_free(h);
      dbpool_coord_close(c);
    }
    _exit(0);
  }
  for (long i = 0; i < tu_polls(20000) && !atomic_load(&S->ready); i++) tu_sleep_ms(1);
  REQUIRE(atomic_load(&S->ready));
  return pid;
}

TEST(inode_reuse_starts_a_fresh_pool)
{
  const char *old = tu_db("old.db");
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(old, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 123) == 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  CHECK_RC(dbpool_holder_release(h), 0);
  dbpool_holder_free(h);
  char old_seg[200];
  snprintf(old_seg, sizeof old_seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  uint64_t ino = ino_of(old);
  REQUIRE(unlink(old) == 0);
  /* ext4 hands the freed inode number to the next file at once. */
  const char *fresh = NULL;
  char name[64];
  for (int i = 0; i < 50 && !fresh; i++) {
    snprintf(name, sizeof name, "new-%d.db", i);
    const char *p = tu_db(name);
    if (ino_of(p) == ino) fresh = p;
    else unlink(p);
  }
  if (!fresh) {
    printf("   note: the file system did not reuse the inode; checking a new file\n");
    fresh = tu_db("new.db");
  }
  REQUIRE(dbpool_coord_open(fresh, 0, &c) == 0);
  CHECK(strcmp(dbpool_coord_segment_name(c), old_seg) != 0);
  CHECK_RC(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS), 10);
  CHECK_RC(setting(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS), 5000);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_acquired == 0 && st.peak_active == 0);
  dbpool_coord_close(c);
}

TEST(rename_keeps_the_pool_and_reading_deletes_nothing)
{
  const char *a = tu_db("before-mv.db");
  char b[600];
  snprintf(b, sizeof b, "%s/after-mv.db", tu_dir);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(a, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 4) == 0);
  char seg[200];
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  REQUIRE(rename(a, b) == 0);
  /* Monitoring reads, in this process and through fresh attachments. */
  int n = listed();
  dbpool_coord *ro;
  CHECK_RC(dbpool_coord_open_segment(seg, DBPOOL_OPEN_READONLY, &ro), 0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(ro, &st), 0);
  CHECK_RC(dbpool_coord_file_state(ro), DBPOOL_FILE_GONE);
  dbpool_coord_close(ro);
  CHECK_RC(listed(), n);
  CHECK(seg_exists(seg));
  /* Opened under its new name: the same pool, the same settings, and the
  ** path follows. */
  REQUIRE(dbpool_coord_open(b, 0, &c) == 0);
  CHECK_STR(dbpool_coord_segment_name(c), seg);
  CHECK_RC(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS), 4);
  char path[600];
  dbpool_coord_database(c, path, sizeof path);
  CHECK_STR(path, b);
  CHECK_RC(dbpool_coord_file_state(c), DBPOOL_FILE_OK);
  dbpool_coord_close(c);
}

typedef struct {
  int removed, kept, would;
  char why[8192];
} gc_tally;

static int gc_cb(const dbpool_gc_entry *e, void *arg)
{
  gc_tally *t = arg;
  if (e->action == DBPOOL_GC_REMOVED) t->removed++;
  if (e->action == DBPOOL_GC_KEPT) t->kept++;
  if (e->action == DBPOOL_GC_WOULD_REMOVE) t->would++;
  size_t len = strlen(t->why);
  snprintf(t->why + len, sizeof t->why - len, "%s[%d %s];", e->database, (int)e->action,
           e->reason);
  return 0;
}

/* Renamed and never opened under the new name: gc finds the file in the
** same directory and keeps the pool, recording the new path. */
TEST(gc_finds_a_rename_and_keeps_the_pool)
{
  const char *a = tu_db("gc-mv-a.db");
  char b[600];
  snprintf(b, sizeof b, "%s/gc-mv-b.db", tu_dir);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(a, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 6) == 0);
  char seg[200];
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  REQUIRE(rename(a, b) == 0);
  gc_tally t = {0};
  CHECK(dbpool_coord_gc(0, gc_cb, &t) >= 0);
  CHECK(seg_exists(seg));
  CHECK(strstr(t.why, "renamed to") != NULL);
  REQUIRE(dbpool_coord_open_segment(seg, DBPOOL_OPEN_READONLY, &c) == 0);
  char path[600];
  dbpool_coord_database(c, path, sizeof path);
  CHECK_STR(path, b);
  CHECK_RC(dbpool_coord_file_state(c), DBPOOL_FILE_OK);
  dbpool_coord_close(c);
}

/* Restore from a backup: mv puts a new file (new inode) at the path while a
** connection to the old file is still open. */
TEST(replacement_takes_over_settings_and_the_old_pool_goes_with_its_holders)
{
  const char *db = tu_db("restore.db");
  char backup[600];
  snprintf(backup, sizeof backup, "%s/backup.db", tu_dir);
  int fd = open(backup, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  close(fd);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 3) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 777) == 0);
  char old_seg[200];
  snprintf(old_seg, sizeof old_seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  pid_t pid = holder_child(db, 1); /* a connection to the old file */
  REQUIRE(rename(backup, db) == 0);

  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  CHECK(strcmp(dbpool_coord_segment_name(c), old_seg) != 0);
  CHECK_RC(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS), 3);
  CHECK_RC(setting(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS), 777);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(c, &st), 0);
  CHECK(st.total_acquired == 0 && st.active == 0);
  dbpool_coord_close(c);

  dbpool_coord *old;
  REQUIRE(dbpool_coord_open_segment(old_seg, DBPOOL_OPEN_READONLY, &old) == 0);
  CHECK_RC(dbpool_coord_file_state(old), DBPOOL_FILE_REPLACED);
  CHECK_RC(dbpool_coord_stats(old, &st), 0);
  CHECK_RC(st.active, 1); /* the old file's connection, still counted */
  dbpool_coord_close(old);
  /* Its last holder leaves: the old file has no name left, its pool goes. */
  atomic_store(&S->go, 1);
  CHECK_RC(tu_wait_child(pid, 10000), 0);
  CHECK(!seg_exists(old_seg));
}

/* Replaced while nobody used it: the new pool takes over the settings; the
** old one waits for collection. */
TEST(replacement_while_idle_then_gc)
{
  const char *db = tu_db("idle-restore.db");
  char backup[600];
  snprintf(backup, sizeof backup, "%s/idle-backup.db", tu_dir);
  int fd = open(backup, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
  REQUIRE(fd >= 0);
  close(fd);
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 1) == 0);
  char old_seg[200];
  snprintf(old_seg, sizeof old_seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  REQUIRE(rename(backup, db) == 0);
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  CHECK_RC(setting(c, DBPOOL_SETTING_MAX_CONNECTIONS), 2);
  CHECK_RC(setting(c, DBPOOL_SETTING_PAUSED), 1); /* drained for maintenance */
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 0), 0);
  dbpool_coord_close(c);
  gc_tally t = {0};
  CHECK_RC(dbpool_coord_gc(1, gc_cb, &t), 1); /* dry run: says, does nothing */
  CHECK(t.would == 1 && strstr(t.why, "replaced") != NULL);
  CHECK(seg_exists(old_seg));
  memset(&t, 0, sizeof t);
  CHECK_RC(dbpool_coord_gc(0, gc_cb, &t), 1);
  CHECK_RC(t.removed, 1);
  CHECK(!seg_exists(old_seg));
}

TEST(a_deleted_databases_pool_goes_with_its_last_holder)
{
  const char *db = tu_db("deleted.db");
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  char seg[200];
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  pid_t pid = holder_child(db, 1);
  REQUIRE(unlink(db) == 0);
  dbpool_holder_free(h); /* not the last: the child still holds */
  CHECK(seg_exists(seg));
  atomic_store(&S->go, 1);
  CHECK_RC(tu_wait_child(pid, 10000), 0);
  CHECK(!seg_exists(seg));
  dbpool_coord_close(c);

  /* A renamed database's pool stays when its holders leave. */
  const char *a = tu_db("moved.db");
  char b[600];
  snprintf(b, sizeof b, "%s/moved-away.db", tu_dir);
  REQUIRE(dbpool_coord_open(a, 0, &c) == 0);
  snprintf(seg, sizeof seg, "%s", dbpool_coord_segment_name(c));
  REQUIRE(dbpool_holder_new(c, &h) == 0);
  REQUIRE(rename(a, b) == 0);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
  CHECK(seg_exists(seg));
}

TEST(gc_keeps_what_is_in_use_and_says_why)
{
  const char *gone = tu_db("gc-gone.db"), *busy = tu_db("gc-busy.db");
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(gone, 0, &c) == 0);
  char gone_seg[200], busy_seg[200];
  snprintf(gone_seg, sizeof gone_seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  REQUIRE(dbpool_coord_open(busy, 0, &c) == 0);
  snprintf(busy_seg, sizeof busy_seg, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  pid_t pid = holder_child(busy, 0);
  REQUIRE(unlink(gone) == 0 && unlink(busy) == 0);
  gc_tally t = {0};
  CHECK(dbpool_coord_gc(0, gc_cb, &t) >= 1);
  CHECK(!seg_exists(gone_seg));
  CHECK(seg_exists(busy_seg));
  CHECK(strstr(t.why, "live process") != NULL);
  if (!strstr(t.why, "live process")) fprintf(stderr, "  gc said: %s\n", t.why);
  /* The holder dies without a word: nobody leaves, so gc collects it. */
  kill(pid, SIGKILL);
  CHECK_RC(tu_wait_child(pid, 10000), 128 + SIGKILL);
  memset(&t, 0, sizeof t);
  CHECK(dbpool_coord_gc(0, gc_cb, &t) >= 1);
  CHECK(!seg_exists(busy_seg));
}

/* rm --force while a holder lives: a setting changed through the old
** handle says the pool was removed (instead of changing nothing), and the
** holder's slot moves into the new pool, counted even above its limit
** (private.h: what the extension does at a connection's next use). */
TEST(force_removal_moves_holders_to_the_new_pool)
{
  tu_pool t = tu_pool_open("forced.db", 1, 1, 0);
  const char *db = t.db;
  dbpool_coord *c = t.c;
  dbpool_holder *h = t.h[0];
  CHECK_RC(dbpool_holder_acquire(h, 0), 0);
  CHECK_RC(dbpool_holder_set_label(h, "old-connection"), 0);
  CHECK_RC(dbp_holder_rejoin(&h, db), 0); /* nothing removed: nothing to do */
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -EBUSY);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 5), -ESTALE);
  CHECK(strstr(dbpool_last_error(), "was removed") != NULL);
  CHECK_RC(dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 5), -ESTALE);
  /* Someone else fills the new pool first (limit 1 again, by settings
  ** taken over from nothing: defaults, then set to 1). */
  dbpool_coord *fresh;
  dbpool_holder *other;
  REQUIRE(dbpool_coord_open(db, 0, &fresh) == 0);
  REQUIRE(dbpool_coord_set(fresh, DBPOOL_SETTING_MAX_CONNECTIONS, 1) == 0);
  REQUIRE(dbpool_holder_new(fresh, &other) == 0);
  CHECK_RC(dbpool_holder_acquire(other, 0), 0);
  CHECK_RC(dbp_holder_rejoin(&h, db), 1);
  CHECK(dbpool_holder_held(h));
  CHECK(dbp_holder_coord(h) != c);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(fresh, &st), 0);
  CHECK(st.active == 2 && st.max_connections == 1); /* counted, above the limit */
  dbpool_holder_info info[4];
  int n = dbpool_coord_holders(fresh, info, 4, sizeof *info), labelled = 0;
  for (int i = 0; i < n && i < 4; i++) labelled += strcmp(info[i].label, "old-connection") == 0;
  CHECK_RC(labelled, 1);
  CHECK_RC(dbpool_holder_release(h), 0);
  CHECK_RC(dbpool_coord_stats(fresh, &st), 0);
  CHECK_RC(st.active, 1);
  dbpool_holder_free(h);
  dbpool_holder_free(other);
  dbpool_coord_close(fresh);
  dbpool_coord_close(c);
}

int main(void)
{
  tu_init("identity");
  S = tu_shared(sizeof *S);
  RUN(inode_reuse_starts_a_fresh_pool);
  RUN(rename_keeps_the_pool_and_reading_deletes_nothing);
  RUN(gc_finds_a_rename_and_keeps_the_pool);
  RUN(replacement_takes_over_settings_and_the_old_pool_goes_with_its_holders);
  RUN(replacement_while_idle_then_gc);
  RUN(a_deleted_databases_pool_goes_with_its_last_holder);
  RUN(gc_keeps_what_is_in_use_and_says_why);
  RUN(force_removal_moves_holders_to_the_new_pool);
  return tu_finish();
}
