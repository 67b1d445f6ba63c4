/*
** admin_edges.c -- removing and collecting pools at the edges
** (coordinator/admin.c; docs/protocol.md "Removal"; docs/operations.md).
**
** Checks:
**   - a forced removal deletes a segment that fails validation, by database
**     path or by segment name (with or without its leading slash); without
**     force it is refused;
**   - a user who can neither open nor delete a segment is refused a forced
**     removal with the system's reason, and the segment stays;
**   - a segment whose name cannot be deleted (a mount point) is marked
**     removed and the caller told why, by remove and by gc;
**   - a refusal lists at most eight pids, then "...";
**   - gc keeps, saying why, a pool its caller may not remove (no write
**     permission on a database that is gone), may only map read-only, that
**     live processes use, or whose name only its owner may delete; it
**     removes a pool owned by a user who can no longer read the database;
**     it finds a renamed database without changing anything in a dry run;
**     garbage recorded paths (no directory, the root, a missing directory)
**     read as a database that is gone;
**   - the file state follows what is at the path: a directory (replaced), a
**     path through a file (gone), nothing at all (NULL handle);
**   - when the last holder of a deleted database leaves, a process that died
**     holding a slot keeps the pool until it is reaped.
** Multi-user cases run as root (skipped otherwise) in children that drop to
** nobody (65534).
*/
#include <grp.h>
#include <sched.h>
#include <stddef.h>
#include <sys/mount.h>

#include "testutil.h"
#include "coordinator/layout.h"

#define NOBODY 65534

static int has(const char *hay, const char *needle) { return strstr(hay, needle) != NULL; }

static void shm_path_of(const char *db, char *out, size_t cap)
{
  char name[200];
  tu_pool_name(db, name, sizeof name);
  snprintf(out, cap, "/dev/shm%s", name);
}

/* Make db's pool (as this process) and close it. */
static void make_pool(const char *db)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  dbpool_coord_close(c);
}

static void become_nobody(void)
{
  if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
      setresuid(NOBODY, NOBODY, NOBODY) != 0)
    _exit(3);
}

static int root_or_skip(void)
{
  if (geteuid() == 0) return 1;
  printf("   skipped: needs root to act as another user\n");
  return 0;
}

/* What gc said about one segment. */
typedef struct {
  const char *segment; /* without the leading slash or with: compared both ways */
  int seen;
  dbpool_gc_action action;
  char reason[512];
  char database[512];
} gc_seen;

static int gc_cb(const dbpool_gc_entry *e, void *arg)
{
  gc_seen *s = arg;
  const char *a = e->segment[0] == '/' ? e->segment + 1 : e->segment;
  const char *b = s->segment[0] == '/' ? s->segment + 1 : s->segment;
  if (strcmp(a, b) != 0) return 0;
  s->seen++;
  s->action = e->action;
  snprintf(s->reason, sizeof s->reason, "%s", e->reason);
  snprintf(s->database, sizeof s->database, "%s", e->database);
  return 0;
}

static gc_seen gc_about_name(const char *name, int dry_run)
{
  gc_seen s = {.segment = name};
  dbpool_coord_gc(dry_run, gc_cb, &s);
  return s;
}

static gc_seen gc_about(const char *db, int dry_run)
{
  static char name[200];
  tu_pool_name(db, name, sizeof name);
  return gc_about_name(name, dry_run);
}

/* ------------------------------------------------------------- removal */

static void corrupt_magic(const char *db)
{
  char path[256];
  shm_path_of(db, path, sizeof path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  uint64_t bad = 0x0badc0de0badc0deull;
  REQUIRE(pwrite(fd, &bad, sizeof bad, 0) == (ssize_t)sizeof bad);
  close(fd);
}

TEST(a_forced_removal_deletes_a_segment_that_fails_validation)
{
  char path[256], name[200];
  const char *db = tu_db("corrupt_by_path.db");
  make_pool(db);
  corrupt_magic(db);
  shm_path_of(db, path, sizeof path);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -EBADMSG);
  CHECK(access(path, F_OK) == 0);
  CHECK_RC(dbpool_coord_remove(db, NULL, 1), 0);
  CHECK(access(path, F_OK) != 0 && errno == ENOENT);
  /* By name, as listed (with its slash) and without. */
  const char *db2 = tu_db("corrupt_by_name.db"), *db3 = tu_db("corrupt_no_slash.db");
  make_pool(db2);
  make_pool(db3);
  corrupt_magic(db2);
  corrupt_magic(db3);
  tu_pool_name(db2, name, sizeof name);
  CHECK_RC(dbpool_coord_remove(NULL, name, 1), 0);
  shm_path_of(db2, path, sizeof path);
  CHECK(access(path, F_OK) != 0);
  tu_pool_name(db3, name, sizeof name);
  CHECK_RC(dbpool_coord_remove(NULL, name + 1, 1), 0);
  shm_path_of(db3, path, sizeof path);
  CHECK(access(path, F_OK) != 0);
}

TEST(a_user_who_cannot_open_a_segment_cannot_force_its_removal)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("private.db");
  REQUIRE(chmod(db, 0600) == 0);
  make_pool(db); /* root's, 0600: closed to others */
  char path[256], name[200];
  shm_path_of(db, path, sizeof path);
  tu_pool_name(db, name, sizeof name);
  char *msg = tu_shared(512);
  pid_t pid = fork();
  if (pid == 0) {
    become_nobody();
    int rc = dbpool_coord_remove(NULL, name, 1);
    snprintf(msg, 512, "%s", dbpool_last_error());
    _exit(rc == -EPERM ? 0 : 1);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(has(msg, "cannot remove /dev/shm/") && has(msg, strerror(EPERM)));
  CHECK(access(path, F_OK) == 0);
  munmap(msg, 512);
}

/* In a private mount namespace, db's segment is made a mount point (bound
** onto itself): its name cannot be deleted (EBUSY), the file is the same. */
static void undeletable_name(const char *db, char *msg)
{
  char path[256];
  shm_path_of(db, path, sizeof path);
  if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
      mount(path, path, NULL, MS_BIND, NULL) != 0) {
    printf("   skipped: cannot bind-mount in a namespace (%s)\n", strerror(errno));
    _exit(77);
  }
  int rc = dbpool_coord_remove(db, NULL, 0);
  CCHECK(rc == 1); /* marked removed, name left */
  CCHECK(has(dbpool_last_error(), "its name could not be deleted"));
  snprintf(msg, 512, "%s", dbpool_last_error());
  CCHECK(access(path, F_OK) == 0);
  gc_seen s = gc_about(db, 0);
  CCHECK(s.seen == 1 && s.action == DBPOOL_GC_KEPT);
  CCHECK(has(s.reason, "removed; marked removed, but its name could not be deleted"));
  CHILD_EXIT();
}

TEST(a_segment_whose_name_cannot_be_deleted_is_marked_removed)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("mountpoint.db");
  make_pool(db);
  char *msg = tu_shared(512);
  pid_t pid = fork();
  if (pid == 0) undeletable_name(db, msg);
  int st = tu_wait_child(pid, 20000);
  CHECK(st == 0 || st == 77);
  if (st == 0) {
    CHECK(has(msg, strerror(EBUSY)));
    /* Out here the name can go: gc collects the removed pool. */
    gc_seen s = gc_about(db, 0);
    CHECK(s.seen == 1 && s.action == DBPOOL_GC_REMOVED && has(s.reason, "removed"));
  }
  munmap(msg, 512);
}

TEST(a_refusal_lists_at_most_eight_pids)
{
  const char *db = tu_db("crowd.db");
  enum { N = 9 };
  pid_t pids[N];
  int go[2];
  REQUIRE(pipe(go) == 0);
  int *ready = tu_shared(sizeof(int) * N);
  for (int i = 0; i < N; i++) {
    pids[i] = fork();
    if (pids[i] == 0) {
      close(go[1]);
      tu_child_take_slot(db, NULL);
      __atomic_store_n(&ready[i], 1, __ATOMIC_RELEASE);
      char b;
      while (read(go[0], &b, 1) < 0 && errno == EINTR) {
      }
      _exit(0);
    }
  }
  close(go[0]);
  for (int i = 0; i < N; i++)
    for (int k = 0; k < 10000 && !__atomic_load_n(&ready[i], __ATOMIC_ACQUIRE); k++)
      tu_sleep_ms(1);
  CHECK_RC(dbpool_coord_remove(db, NULL, 0), -EBUSY);
  const char *m = dbpool_last_error();
  CHECK(has(m, "in use by 9 live processes") && has(m, ", ...)"));
  int listed = 0;
  for (int i = 0; i < N; i++) {
    char p[16];
    snprintf(p, sizeof p, "%d", (int)pids[i]);
    listed += has(m, p);
  }
  CHECK(listed == 8);
  /* The database goes while they use it: gc keeps the pool, saying so. */
  char name[200];
  tu_pool_name(db, name, sizeof name);
  char moved[512];
  snprintf(moved, sizeof moved, "%s/crowd-elsewhere", tu_dir);
  REQUIRE(mkdir(moved, 0755) == 0);
  snprintf(moved + strlen(moved), sizeof moved - strlen(moved), "/crowd.db");
  REQUIRE(rename(db, moved) == 0); /* another directory: not found as renamed */
  gc_seen s = gc_about_name(name, 0);
  CHECK(s.seen == 1 && s.action == DBPOOL_GC_KEPT);
  CHECK(has(s.reason, "database file is gone, but 9 live processes use it"));
  close(go[1]);
  for (int i = 0; i < N; i++) CHECK(tu_wait_child(pids[i], 10000) == 0);
  munmap(ready, sizeof(int) * N);
}

/* ------------------------------------------------------------------ gc */

TEST(gc_keeps_a_pool_its_caller_may_not_remove)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("gone_not_mine.db"); /* 0644: the segment is open to all */
  make_pool(db);
  char name[200];
  tu_pool_name(db, name, sizeof name);
  REQUIRE(unlink(db) == 0);
  gc_seen *s = tu_shared(sizeof *s);
  s->segment = name;
  pid_t pid = fork();
  if (pid == 0) {
    become_nobody();
    dbpool_coord_gc(0, gc_cb, s);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_KEPT);
  CHECK(has(s->reason, "database file is gone, but uid 65534 may not remove it"));
  s->seen = 0;
  dbpool_coord_gc(0, gc_cb, s); /* root may */
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_REMOVED);
  munmap(s, sizeof *s);
}

TEST(gc_keeps_a_pool_it_can_only_map_read_only)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("owner_ro.db");
  REQUIRE(chown(db, NOBODY, NOBODY) == 0);
  char name[200], path[256];
  tu_pool_name(db, name, sizeof name);
  shm_path_of(db, path, sizeof path);
  gc_seen *s = tu_shared(sizeof *s);
  s->segment = name;
  pid_t pid = fork();
  if (pid == 0) {
    become_nobody();
    dbpool_coord *c;
    if (dbpool_coord_open(db, 0, &c) != 0) _exit(4); /* nobody's segment */
    dbpool_coord_close(c);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  struct stat st;
  CHECK(stat(path, &st) == 0 && st.st_uid == NOBODY);
  REQUIRE(chmod(path, 0444) == 0); /* its owner may not write it (until it fixes that) */
  REQUIRE(unlink(db) == 0);
  pid = fork();
  if (pid == 0) {
    become_nobody();
    dbpool_coord_gc(0, gc_cb, s);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_KEPT);
  CHECK(has(s->reason, "database file is gone, but uid 65534 may not change it"));
  CHECK(access(path, F_OK) == 0);

  s->seen = 0;
  dbpool_coord_gc(0, gc_cb, s);
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_REMOVED);
  munmap(s, sizeof *s);
}

TEST(gc_through_a_read_only_mapping_records_no_rename)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("ro_rename.db");
  REQUIRE(chown(db, NOBODY, NOBODY) == 0);
  char name[200], path[256], to[512];
  tu_pool_name(db, name, sizeof name);
  shm_path_of(db, path, sizeof path);
  gc_seen *s = tu_shared(sizeof *s);
  s->segment = name;
  pid_t pid = fork();
  if (pid == 0) {
    become_nobody();
    dbpool_coord *c;
    if (dbpool_coord_open(db, 0, &c) != 0) _exit(4);
    dbpool_coord_close(c);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  REQUIRE(chmod(path, 0444) == 0);
  snprintf(to, sizeof to, "%s/ro_renamed.db", tu_dir);
  REQUIRE(rename(db, to) == 0);
  pid = fork();
  if (pid == 0) {
    become_nobody();
    dbpool_coord_gc(0, gc_cb, s);
    _exit(0);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_KEPT);
  CHECK(has(s->reason, "database renamed to ") && has(s->reason, "ro_renamed.db"));
  dbpool_coord *c;
  char rec[600];
  CHECK_RC(dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c), 0);
  dbpool_coord_database(c, rec, sizeof rec);
  CHECK(has(rec, "/ro_rename.db")); /* it could not write the new one */
  dbpool_coord_close(c);
  munmap(s, sizeof *s);
}

TEST(gc_leaves_a_removed_name_only_its_owner_may_delete)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("writable.db");
  REQUIRE(chmod(db, 0666) == 0);
  make_pool(db); /* root's segment, open to all */
  char name[200], path[256];
  tu_pool_name(db, name, sizeof name);
  shm_path_of(db, path, sizeof path);
  gc_seen *s = tu_shared(sizeof *s);
  s->segment = name;
  char *msg = tu_shared(512);
  pid_t pid = fork();
  if (pid == 0) {
    become_nobody();
    /* nobody may write the database, so may remove its pool: marked
    ** removed, but /dev/shm is sticky: only root may delete the name. */
    int rc = dbpool_coord_remove(db, NULL, 0);
    snprintf(msg, 512, "%s", dbpool_last_error());
    dbpool_coord_gc(0, gc_cb, s);
    _exit(rc == 1 ? 0 : 1);
  }
  CHECK(tu_wait_child(pid, 10000) == 0);
  CHECK(has(msg, "only the segment's owner or root can delete it"));
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_KEPT);
  CHECK(has(s->reason, "removed; marked removed, but only its owner or root can delete it"));
  CHECK(access(path, F_OK) == 0);
  s->seen = 0;
  dbpool_coord_gc(0, gc_cb, s);
  CHECK(s->seen == 1 && s->action == DBPOOL_GC_REMOVED && has(s->reason, "removed"));
  munmap(s, sizeof *s);
  munmap(msg, 512);
}

TEST(gc_removes_a_pool_whose_owner_can_no_longer_read_the_database)
{
  if (!root_or_skip()) return;
  const char *db = tu_db("narrowed.db");
  make_pool(db);
  char path[256];
  shm_path_of(db, path, sizeof path);
  REQUIRE(chown(path, NOBODY, NOBODY) == 0); /* as if nobody had made it */
  REQUIRE(chmod(db, 0600) == 0);             /* ... and then lost read access */
  gc_seen s = gc_about(db, 0);
  CHECK(s.seen == 1 && s.action == DBPOOL_GC_REMOVED);
  CHECK_STR(s.reason, "owned by a user who cannot read the database");
  CHECK(access(path, F_OK) != 0);
}

TEST(a_dry_run_finds_a_renamed_database_and_changes_nothing)
{
  const char *db = tu_db("before_rename.db");
  make_pool(db);
  char to[512];
  snprintf(to, sizeof to, "%s/after_rename.db", tu_dir);
  REQUIRE(rename(db, to) == 0);
  gc_seen s = gc_about(to, 1); /* the name is the file's: same key */
  CHECK(s.seen == 1 && s.action == DBPOOL_GC_KEPT);
  CHECK(has(s.reason, "database renamed to ") && has(s.reason, "after_rename.db"));
  dbpool_coord *c;
  char name[200], rec[512];
  tu_pool_name(to, name, sizeof name);
  CHECK_RC(dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c), 0);
  dbpool_coord_database(c, rec, sizeof rec);
  CHECK(has(rec, "before_rename.db")); /* a dry run writes nothing */
  dbpool_coord_close(c);
}

/* Write a garbage recorded path into db's segment. */
static void set_recorded_path(const char *db, const char *garbage)
{
  char path[256];
  shm_path_of(db, path, sizeof path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  char buf[DBPOOL_PATH_MAX];
  memset(buf, 0, sizeof buf);
  snprintf(buf, sizeof buf, "%s", garbage);
  REQUIRE(pwrite(fd, buf, sizeof buf, offsetof(dbp_header, path)) == (ssize_t)sizeof buf);
  close(fd);
}

TEST(gc_reads_a_garbage_recorded_path_as_a_database_that_is_gone)
{
  static const char *garbage[] = {"no-directory.db", "/dbpool-no-such-file-in-root.db",
                                  "/dbpool-no-such-directory/x.db"};
  for (int i = 0; i < 3; i++) {
    char n[64];
    snprintf(n, sizeof n, "garbage_path_%d.db", i);
    const char *db = tu_db(n);
    make_pool(db);
    set_recorded_path(db, garbage[i]);
    gc_seen s = gc_about(db, 0);
    CHECK(s.seen == 1 && s.action == DBPOOL_GC_REMOVED);
    CHECK_STR(s.reason, "database file is gone");
    CHECK_STR(s.database, garbage[i]);
  }
}

/* ---------------------------------------------------------- file state */

TEST(the_file_state_follows_what_is_at_the_path)
{
  char dir[512], db[600];
  snprintf(dir, sizeof dir, "%s/statedir", tu_dir);
  REQUIRE(mkdir(dir, 0755) == 0);
  snprintf(db, sizeof db, "%s/x.db", dir);
  int fd = open(db, O_CREAT | O_RDWR, 0644);
  REQUIRE(fd >= 0);
  close(fd);
  dbpool_coord *c;
  CHECK_RC(dbpool_coord_open(db, 0, &c), 0);
  CHECK(dbpool_coord_file_state(c) == DBPOOL_FILE_OK);
  REQUIRE(unlink(db) == 0 && mkdir(db, 0755) == 0);
  CHECK(dbpool_coord_file_state(c) == DBPOOL_FILE_REPLACED); /* a directory now */
  REQUIRE(rmdir(db) == 0 && rmdir(dir) == 0);
  fd = open(dir, O_CREAT | O_RDWR, 0644); /* a file where the directory was */
  REQUIRE(fd >= 0);
  close(fd);
  CHECK(dbpool_coord_file_state(c) == DBPOOL_FILE_GONE);
  CHECK(dbpool_coord_file_state(NULL) == DBPOOL_FILE_GONE);
  dbpool_coord_close(c);
}

static int stop_at_first(const char *name, void *arg)
{
  (void)name;
  ++*(int *)arg;
  return 42;
}

TEST(listing_stops_when_its_callback_says_so)
{
  make_pool(tu_db("list_a.db"));
  make_pool(tu_db("list_b.db"));
  int n = 0;
  CHECK_RC(dbpool_coord_list(stop_at_first, &n), 42);
  CHECK(n == 1);
  CHECK_RC(dbpool_coord_list(NULL, NULL), -EINVAL);
  CHECK(dbp_list_skips(-ENOENT) && dbp_list_skips(-EACCES) && dbp_list_skips(-EBADMSG));
  CHECK(!dbp_list_skips(-EIO) && !dbp_list_skips(0));
}

/* ------------------------------------------------- when the last leaves */

TEST(a_dead_holder_keeps_a_deleted_databases_pool_until_reaped)
{
  const char *db = tu_db("deleted_with_dead.db");
  char path[256];
  shm_path_of(db, path, sizeof path);
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
  int *ready = tu_shared(sizeof(int));
  pid_t pid = fork();
  if (pid == 0) {
    tu_child_take_slot(db, NULL);
    __atomic_store_n(ready, 1, __ATOMIC_RELEASE);
    for (;;) pause();
  }
  for (int k = 0; k < 10000 && !__atomic_load_n(ready, __ATOMIC_ACQUIRE); k++) tu_sleep_ms(1);
  kill(pid, SIGKILL);
  CHECK(tu_wait_child(pid, 10000) == 128 + SIGKILL);
  REQUIRE(unlink(db) == 0);
  dbpool_holder_free(h); /* our last: the dead one's slot still counts */
  dbpool_coord_close(c);
  CHECK(access(path, F_OK) == 0);
  CHECK_RC(dbpool_coord_remove(NULL, path + strlen("/dev/shm"), 0), 0); /* reaped, gone */
  CHECK(access(path, F_OK) != 0);
  munmap(ready, sizeof(int));
}

TEST(a_deleted_databases_pool_never_deletes_a_file_that_took_its_name)
{
  const char *db = tu_db("name_taken.db");
  char path[256];
  shm_path_of(db, path, sizeof path);
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_holder_new(c, &h) == 0 && dbpool_holder_acquire(h, 0) == 0);
  /* Someone deletes the segment's name by hand and puts a file there. */
  REQUIRE(unlink(path) == 0);
  int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, "not ours", 8) == 8);
  close(fd);
  REQUIRE(unlink(db) == 0);
  dbpool_holder_free(h); /* our last: the pool goes, the name is not its own */
  dbpool_coord_close(c);
  struct stat st;
  CHECK(stat(path, &st) == 0 && st.st_size == 8);
  unlink(path);
}

int main(void)
{
  tu_init("admin_edges");
  RUN(a_forced_removal_deletes_a_segment_that_fails_validation);
  RUN(a_user_who_cannot_open_a_segment_cannot_force_its_removal);
  RUN(a_segment_whose_name_cannot_be_deleted_is_marked_removed);
  RUN(a_refusal_lists_at_most_eight_pids);
  RUN(gc_keeps_a_pool_its_caller_may_not_remove);
  RUN(gc_keeps_a_pool_it_can_only_map_read_only);
  RUN(gc_through_a_read_only_mapping_records_no_rename);
  RUN(gc_leaves_a_removed_name_only_its_owner_may_delete);
  RUN(gc_removes_a_pool_whose_owner_can_no_longer_read_the_database);
  RUN(a_dry_run_finds_a_renamed_database_and_changes_nothing);
  RUN(gc_reads_a_garbage_recorded_path_as_a_database_that_is_gone);
  RUN(the_file_state_follows_what_is_at_the_path);
  RUN(listing_stops_when_its_callback_says_so);
  RUN(a_dead_holder_keeps_a_deleted_databases_pool_until_reaped);
  RUN(a_deleted_databases_pool_never_deletes_a_file_that_took_its_name);
  return tu_finish();
}
