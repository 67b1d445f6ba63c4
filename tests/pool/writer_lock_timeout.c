/*
** writer_lock_timeout.c -- the writer queue when the application gives a
** lock timeout (SQLITE_FCNTL_LOCK_TIMEOUT, which SQLite builds with
** SQLITE_ENABLE_SETLK_TIMEOUT send themselves): a write-lock request that
** holds no read mark then waits for its turn in the gate (ext/writer_gate.c):
**   - a FULL checkpoint with a lock timeout of -1 (no limit) waits while
**     another process holds the turn, shows as a waiting writer, and
**     completes once the turn is free;
**   - with a short timeout it gives up: the checkpoint is reported busy,
**     and the holder's transaction is untouched;
**   - a reader whose wal-index header is unset (recovery) or whose two
**     header copies disagree passes straight through, lock timeout or not.
*/
#include <limits.h>

#include "poolutil.h"

static char ext_path[PATH_MAX];

static void load_ext(void)
{
  sqlite3 *boot;
  char *err = NULL;
  sqlite3_open(":memory:", &boot);
  sqlite3_enable_load_extension(boot, 1);
  if (sqlite3_load_extension(boot, ext_path, NULL, &err) != SQLITE_OK) {
    fprintf(stderr, "load %s: %s\n", ext_path, err ? err : "?");
    _exit(90);
  }
}

static sqlite3 *open_db(const char *path)
{
  sqlite3 *db = NULL;
  if (sqlite3_open(path, &db) != SQLITE_OK) _exit(91);
  return db;
}

static void make_wal_db(const char *path)
{
  sqlite3 *db;
  sqlite3_open(path, &db);
  sqlite3_exec(db, "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t(x)", 0, 0, 0);
  sqlite3_close(db);
}

typedef struct shared {
  _Atomic int step;
  _Atomic int rc;
  _Atomic int busy, log, ckpt;
} shared;

static void wait_step(shared *s, int want)
{
  double end = tu_now_ms() + 20000;
  while (atomic_load(&s->step) < want && tu_now_ms() < end) tu_sleep_ms(1);
}

/* A child that takes the turn (BEGIN IMMEDIATE; INSERT), says so (step 1),
** and commits at step `release`. */
static pid_t spawn_holder(const char *path, shared *s, int release)
{
  pid_t pid = fork();
  if (pid != 0) return pid;
  load_ext();
  sqlite3 *db = open_db(path);
  if (sqlite3_exec(db, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1)", 0, 0, 0) != SQLITE_OK)
    _exit(3);
  atomic_store(&s->step, 1);
  wait_step(s, release);
  int rc = sqlite3_exec(db, "COMMIT", 0, 0, 0);
  sqlite3_close(db);
  _exit(rc == SQLITE_OK ? 0 : 4);
}

/* A child that reads (maps the wal-index), sets a lock timeout, and runs
** a FULL checkpoint; says step 2 just before. */
static pid_t spawn_checkpointer(const char *path, shared *s, int timeout_ms)
{
  pid_t pid = fork();
  if (pid != 0) return pid;
  load_ext();
  sqlite3 *db = open_db(path);
  if (pu_int(db, "SELECT count(*) FROM t") < 0) _exit(5);
  int t = timeout_ms;
  /* the unix VFS of this SQLite does not know the op: the gate does */
  sqlite3_file_control(db, "main", SQLITE_FCNTL_LOCK_TIMEOUT, &t);
  sqlite3_file_control(db, "main", SQLITE_FCNTL_LOCK_TIMEOUT, NULL); /* ignored */
  atomic_store(&s->step, 2);
  int busy = -1, log = -1, ckpt = -1;
  int rc = sqlite3_wal_checkpoint_v2(db, "main", SQLITE_CHECKPOINT_FULL, &log, &ckpt);
  busy = rc == SQLITE_BUSY;
  atomic_store(&s->rc, rc);
  atomic_store(&s->busy, busy);
  atomic_store(&s->log, log);
  atomic_store(&s->ckpt, ckpt);
  sqlite3_close(db);
  _exit(0);
}

static int writer_waiting(const char *path, pid_t pid)
{
  dbpool_coord *c;
  dbpool_writer_info w[64];
  int found = 0;
  if (dbpool_coord_open(path, DBPOOL_OPEN_READONLY, &c) != 0) return -1;
  int n = dbpool_coord_writers(c, w, 64, sizeof *w);
  for (int i = 0; i < n && i < 64; i++)
    found |= w[i].pid == pid && w[i].state == DBPOOL_WRITER_WAITING;
  dbpool_coord_close(c);
  return found;
}

TEST(a_checkpoint_with_a_lock_timeout_waits_for_the_turn)
{
  const char *path = tu_db("wait.db");
  make_wal_db(path);
  shared *s = tu_shared(sizeof *s);
  pid_t h = spawn_holder(path, s, 3);
  wait_step(s, 1);
  pid_t c = spawn_checkpointer(path, s, -1);
  wait_step(s, 2);
  double end = tu_now_ms() + 20000;
  while (writer_waiting(path, c) != 1 && tu_now_ms() < end) tu_sleep_ms(1);
  CHECK_CMP(writer_waiting(path, c), ==, 1); /* queued behind the holder */
  atomic_store(&s->step, 3);                 /* the holder commits */
  CHECK_CMP(tu_wait_child(h, 30000), ==, 0);
  CHECK_CMP(tu_wait_child(c, 30000), ==, 0);
  CHECK_SQ(atomic_load(&s->rc), SQLITE_OK);
  CHECK_CMP(atomic_load(&s->log), ==, atomic_load(&s->ckpt)); /* all of the WAL */
  CHECK_CMP(atomic_load(&s->log), >, 0);
}

TEST(a_checkpoint_whose_lock_timeout_passes_is_busy)
{
  const char *path = tu_db("timeout.db");
  make_wal_db(path);
  shared *s = tu_shared(sizeof *s);
  pid_t h = spawn_holder(path, s, 3); /* holds until the checkpoint is over */
  wait_step(s, 1);
  pid_t c = spawn_checkpointer(path, s, 50);
  CHECK_CMP(tu_wait_child(c, 30000), ==, 0);
  CHECK_SQ(atomic_load(&s->rc), SQLITE_BUSY);
  atomic_store(&s->step, 3);
  CHECK_CMP(tu_wait_child(h, 30000), ==, 0); /* its commit went through */
  sqlite3 *db = open_db(path);
  CHECK_CMP(pu_int(db, "SELECT count(*) FROM t"), ==, 1);
  sqlite3_close(db);
}

/* Flip a byte of the second copy of the wal-index header (no process has
** the database open): the next reader finds the copies disagree. */
static void tear_header(const char *path)
{
  char shm[PATH_MAX];
  snprintf(shm, sizeof shm, "%s-shm", path);
  int fd = open(shm, O_RDWR);
  REQUIRE(fd >= 0);
  unsigned char b;
  REQUIRE(pread(fd, &b, 1, 48 + 16) == 1);
  b ^= 0x5a;
  REQUIRE(pwrite(fd, &b, 1, 48 + 16) == 1);
  close(fd);
}

static void reader_body(const char *path, int expect)
{
  load_ext();
  sqlite3 *db = open_db(path);
  int t = 10000;
  sqlite3_file_control(db, "main", SQLITE_FCNTL_LOCK_TIMEOUT, &t);
  CCHECK(pu_int(db, "SELECT count(*) FROM t") == expect);
  CCHECK(pu_int(db, "SELECT count(*) FROM pragma_integrity_check WHERE integrity_check = 'ok'") ==
         1);
  CCHECK(sqlite3_exec(db, "INSERT INTO t VALUES (3)", 0, 0, 0) == SQLITE_OK);
  sqlite3_close(db);
}

TEST(readers_recovering_the_wal_index_pass_the_gate)
{
  const char *path = tu_db("recover.db");
  make_wal_db(path);
  /* a fresh wal-index: its header is unset; the reader recovers it */
  pid_t p = fork();
  if (p == 0) {
    reader_body(path, 0);
    CHILD_EXIT();
  }
  CHECK_CMP(tu_wait_child(p, 30000), ==, 0);
  /* a wal-index in use by an idle connection (outside dbpool), torn */
  sqlite3 *keep = open_db(path);
  sqlite3_exec(keep, "PRAGMA wal_autocheckpoint = 0; INSERT INTO t VALUES (1)", 0, 0, 0);
  tear_header(path);
  p = fork();
  if (p == 0) {
    reader_body(path, 2);
    CHILD_EXIT();
  }
  CHECK_CMP(tu_wait_child(p, 30000), ==, 0);
  CHECK_CMP(pu_int(keep, "SELECT count(*) FROM t"), ==, 3);
  sqlite3_close(keep);
}

int main(void)
{
  tu_init("writer-lock-timeout");
  if (pu_ext_path(ext_path, sizeof ext_path) != 0) return 2;
  RUN(a_checkpoint_with_a_lock_timeout_waits_for_the_turn);
  RUN(a_checkpoint_whose_lock_timeout_passes_is_busy);
  RUN(readers_recovering_the_wal_index_pass_the_gate);
  return tu_finish();
}
