/*
** corrupt.c -- corrupt and foreign pool segments.
**
** What is guaranteed, and tested here:
**
** 1. Validation (dbpool_coord_open: "a segment ... that fails validation is
**    refused", -EBADMSG). A segment whose identity is wrong -- magic, layout
**    version, header/segment/table sizes, mutex ABI size, key (dev, ino),
**    max_connections out of range, unterminated path, or a file size other
**    than the segment size -- is refused with -EBADMSG and a message naming
**    the segment and what failed. Refusing changes nothing: the file keeps
**    its bytes, size, inode and name; once the field is restored the pool
**    opens again with its settings.
**
** 2. Foreign files. A regular file of random bytes at the expected name
**    (of the segment's size or not, empty included), and a copy of a valid
**    segment made for another database, are refused with -EBADMSG by every
**    entry point (by path, by name, listing) without crashing; the other
**    database's pool is unaffected. A symlink at the name is not followed.
**
** 3. Robustness against garbage (layout.h: "Every byte here may be garbage
**    written by another process: readers validate indices and lengths before
**    use"). A fuzzer writes random bytes into the mutable parts of a live
**    segment -- the gate, the counters, the wait queue and free-list fields,
**    the statistics, the path, the process table and the holder records,
**    but not the identity fields (those only make validation fail, tested
**    above) nor the pthread mutex (opaque to us; garbage there is undefined
**    behaviour in libc itself) -- and then a child process exercises the
**    whole API on it (open, holder_new, acquire with timeouts 0 and short,
**    release, labels, idle marks, stats, holders, histogram, settings,
**    reap, wait_for_waiter, list, remove, close). Errors are fine; what must
**    not happen: a crash (death by a signal), a sanitizer report (ASan and
**    UBSan make the child exit non-zero), or a hang (every call made has a
**    bounded timeout, so a child still running after 20 s is a hang). Two
**    other processes attached to the segment while it is garbled (A holding
**    slots; B with two threads waiting in the queue, thus reaping every
**    25 ms, and reaping A when it is killed) must not crash either; B stops
**    cleanly so that a sanitizer report in it shows in its exit status.
**    First a targeted pass sets every index, link, count, clock and
**    sequence field to values at and past the ends of their ranges, one at
**    a time; then a random pass writes random bytes or field-aware values
**    (some iterations keep writing while the child runs). DBPOOL_FUZZ_ITERS
**    and DBPOOL_FUZZ_SEED (printed on failure) reproduce a random run; with
**    DBPOOL_FUZZ_ITERS set there is no time cap.
**
** The API calls that may crash run in child processes; refusals are checked
** by processes that never attached before (an attached process may keep its
** validated mapping and not look at the file again).
*/
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "testutil.h"
#include "coordinator/layout.h"

#define SEG_SIZE ((size_t)DBP_SEGMENT_SIZE)

static void shm_file(const char *name, char *out, size_t cap)
{
  snprintf(out, cap, "/dev/shm%s", name);
}

/* The segment name of db's pool (creating the pool). */
static void pool_name(const char *db, char *name, size_t cap)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  snprintf(name, cap, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
}

/* The name db's pool would have, without creating it. */
static void name_for(const char *db, char *name, size_t cap)
{
  tu_pool_name(db, name, cap);
}

static unsigned char *slurp(const char *path, size_t *size)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  struct stat st;
  fstat(fd, &st);
  *size = (size_t)st.st_size;
  unsigned char *b = malloc(*size + 1);
  size_t got = 0;
  while (b && got < *size) {
    ssize_t n = pread(fd, b + got, *size - got, (off_t)got);
    if (n <= 0) break;
    got += (size_t)n;
  }
  close(fd);
  if (b && got != *size) {
    free(b);
    return NULL;
  }
  return b;
}

static int spill(const char *path, const void *buf, size_t size, mode_t mode)
{
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return -1;
  int ok = ftruncate(fd, (off_t)size) == 0 && pwrite(fd, buf, size, 0) == (ssize_t)size &&
           fchmod(fd, mode) == 0;
  close(fd);
  return ok ? 0 : -1;
}

/* The file at path still has exactly these bytes (and this inode). */
static int unchanged(const char *path, const unsigned char *want, size_t size, ino_t ino)
{
  struct stat st;
  if (lstat(path, &st) != 0 || st.st_ino != ino || (size_t)st.st_size != size) return 0;
  size_t n;
  unsigned char *b = slurp(path, &n);
  int same = b && n == size && memcmp(b, want, size) == 0;
  free(b);
  return same;
}

/* In a child (a crash must not take the suite down): the by-name entry
** points on the segment named name. Returns 0 if they all returned without
** crashing, and *rc_open the result of dbpool_coord_open_segment. */
typedef struct {
  int rc_open, rc_open_ro, rc_list;
  char msg[512];
} byname_result;

static byname_result *BR;

static int list_cb(const char *name, void *arg)
{
  (void)name;
  (void)arg;
  return 0;
}

static int by_name_calls(const char *name)
{
  memset(BR, 0, sizeof *BR);
  pid_t pid = fork();
  if (pid == 0) {
    alarm(tu_sec(20));
    dbpool_coord *c = NULL;
    BR->rc_open = dbpool_coord_open_segment(name, 0, &c);
    snprintf(BR->msg, sizeof BR->msg, "%s", dbpool_last_error());
    if (c) dbpool_coord_close(c);
    c = NULL;
    BR->rc_open_ro = dbpool_coord_open_segment(name, DBPOOL_OPEN_READONLY, &c);
    if (c) dbpool_coord_close(c);
    BR->rc_list = dbpool_coord_list(list_cb, NULL);
    _exit(0);
  }
  return tu_wait_child(pid, 30000);
}

/* dbpool_coord_open in a fresh child process: a process that attached to a
** pool before may keep its (validated) mapping and not look at the file
** again, so refusals are checked by processes that never attached. Returns
** the open's result (1000 + status if the child failed); OR has details. */
typedef struct {
  int rc;
  int64_t max;
  char msg[512];
} open_result;

static open_result *OR;

static int fresh_open(const char *db, unsigned flags)
{
  memset(OR, 0, sizeof *OR);
  OR->rc = 1;
  pid_t pid = fork();
  if (pid == 0) {
    alarm(tu_sec(20));
    dbpool_coord *c = NULL;
    OR->rc = dbpool_coord_open(db, flags, &c);
    snprintf(OR->msg, sizeof OR->msg, "%s", dbpool_last_error());
    if (c) {
      dbpool_coord_get(c, DBPOOL_SETTING_MAX_CONNECTIONS, &OR->max);
      dbpool_coord_close(c);
    }
    _exit(0);
  }
  int st = tu_wait_child(pid, 20000);
  return st == 0 ? OR->rc : 1000 + st;
}

/* ------------------------------------------------------- header validation */

typedef enum { M_XOR8, M_ADD32, M_ADD64, M_GATE_MAX, M_FILL, M_TRUNC } mut_kind;

typedef struct {
  const char *what;
  mut_kind kind;
  size_t off;
  long long arg;
  const char *msg;
} mutation;

#define H(f) offsetof(dbp_header, f)

static const mutation mutations[] = {
    {"magic", M_XOR8, H(magic), 0x01, "bad magic number"},
    {"magic (last byte)", M_XOR8, H(magic) + 7, 0x80, "bad magic number"},
    {"layout version", M_ADD32, H(layout_version), 1, "unknown layout version"},
    {"header size", M_ADD32, H(header_size), 8, "header size differs"},
    {"segment size field", M_ADD64, H(segment_size), 4096, "segment size differs"},
    {"records", M_ADD32, H(records), -1, "table sizes differ"},
    {"processes", M_ADD32, H(processes), 1, "table sizes differ"},
    {"mutex size", M_ADD32, H(mutex_size), 8, "made by another ABI"},
    {"key dev", M_ADD64, H(key_dev), 1, "belongs to another database file"},
    {"key ino", M_ADD64, H(key_ino), 1, "belongs to another database file"},
    {"max_connections 0", M_GATE_MAX, 0, 0, "max_connections out of range"},
    {"max_connections 4097", M_GATE_MAX, 0, 4097, "max_connections out of range"},
    {"path unterminated", M_FILL, H(path), DBPOOL_PATH_MAX, "path not terminated"},
    {"file shorter", M_TRUNC, 0, -4096, "size"},
    {"file longer", M_TRUNC, 0, 4096, "size"},
    {"file one byte short", M_TRUNC, 0, -1, "size"},
    {"file empty", M_TRUNC, 0, -(long long)DBP_SEGMENT_SIZE, "size"},
};

static void apply(const char *path, const mutation *m)
{
  int fd = open(path, O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  if (m->kind == M_TRUNC) {
    REQUIRE(ftruncate(fd, (off_t)((long long)SEG_SIZE + m->arg)) == 0);
    close(fd);
    return;
  }
  unsigned char *p = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  REQUIRE(p != MAP_FAILED);
  close(fd);
  switch (m->kind) {
  case M_XOR8: p[m->off] ^= (unsigned char)m->arg; break;
  case M_ADD32: { uint32_t v; memcpy(&v, p + m->off, 4); v += (uint32_t)m->arg; memcpy(p + m->off, &v, 4); break; }
  case M_ADD64: { uint64_t v; memcpy(&v, p + m->off, 8); v += (uint64_t)m->arg; memcpy(p + m->off, &v, 8); break; }
  case M_GATE_MAX: {
    dbp_header *h = (dbp_header *)p;
    h->gate.half[1] = g_with(h->gate.half[1], G_MAX_SHIFT, (unsigned)m->arg);
    break;
  }
  case M_FILL: memset(p + m->off, 'A', (size_t)m->arg); break;
  default: break;
  }
  munmap(p, SEG_SIZE);
}

TEST(invalid_header_fields_are_refused_and_nothing_changes)
{
  const char *db = tu_db("header.db");
  char name[128], path[256];
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(db, 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 5) == 0);
  snprintf(name, sizeof name, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  shm_file(name, path, sizeof path);
  size_t orig_size;
  unsigned char *orig = slurp(path, &orig_size);
  REQUIRE(orig && orig_size == SEG_SIZE);
  struct stat st0;
  REQUIRE(stat(path, &st0) == 0);
  int segs = tu_count_segments();

  for (size_t i = 0; i < sizeof mutations / sizeof *mutations; i++) {
    const mutation *m = &mutations[i];
    tu_current = m->what;
    apply(path, m);
    size_t bad_size;
    unsigned char *bad = slurp(path, &bad_size);
    REQUIRE(bad);
    unsigned flags[3] = {0, DBPOOL_OPEN_READONLY, DBPOOL_OPEN_NOCREATE};
    for (int f = 0; f < 3; f++) {
      CHECK_RC(fresh_open(db, flags[f]), -EBADMSG);
      CHECK(strstr(OR->msg, name) != NULL);
      CHECK(strstr(OR->msg, "failed validation") != NULL);
      CHECK(strstr(OR->msg, m->msg) != NULL);
      if (!strstr(OR->msg, m->msg)) fprintf(stderr, "  message: %s\n", OR->msg);
    }
    CHECK(unchanged(path, bad, bad_size, st0.st_ino));
    CHECK_RC(tu_count_segments(), segs);
    /* The by-name entry points (and listing) refuse it too, in a child in
    ** case they crash (a file shorter than the header must not be mapped
    ** and read: SIGBUS). */
    CHECK_RC(by_name_calls(name), 0);
    CHECK_RC(BR->rc_open, -EBADMSG);
    CHECK(strstr(BR->msg, m->msg) != NULL);
    CHECK_RC(BR->rc_open_ro, -EBADMSG);
    CHECK(unchanged(path, bad, bad_size, st0.st_ino));
    free(bad);
    /* Restore: the pool is whole again, settings included. */
    REQUIRE(spill(path, orig, orig_size, st0.st_mode & 07777) == 0);
    CHECK_RC(fresh_open(db, 0), 0);
    CHECK(OR->max == 5);
  }
  free(orig);
}

/* ----------------------------------------------------------- foreign files */

static void random_bytes(unsigned char *b, size_t n, uint64_t *state)
{
  for (size_t i = 0; i < n; i++) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    b[i] = (unsigned char)(*state >> 24);
  }
}

TEST(random_file_at_the_name_is_refused)
{
  const char *db = tu_db("random.db");
  char name[128], path[256];
  name_for(db, name, sizeof name);
  shm_file(name, path, sizeof path);
  struct stat dbst;
  REQUIRE(stat(db, &dbst) == 0);
  mode_t mode = (dbst.st_mode & 0666) | 0600; /* what the pool would have */
  uint64_t rs = 0x9e3779b97f4a7c15u;
  size_t sizes[] = {SEG_SIZE, SEG_SIZE, 12345, 4096, 100};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    unsigned char *b = malloc(sizes[k]);
    REQUIRE(b);
    random_bytes(b, sizes[k], &rs);
    REQUIRE(spill(path, b, sizes[k], mode) == 0);
    struct stat st;
    REQUIRE(stat(path, &st) == 0);
    CHECK_RC(fresh_open(db, 0), -EBADMSG);
    CHECK(strstr(OR->msg, name) != NULL);
    CHECK(strstr(OR->msg, "failed validation") != NULL);
    CHECK(strstr(OR->msg, sizes[k] == SEG_SIZE ? "bad magic number" : "size"));
    CHECK_RC(fresh_open(db, DBPOOL_OPEN_READONLY), -EBADMSG);
    CHECK(unchanged(path, b, sizes[k], st.st_ino));
    CHECK_RC(by_name_calls(name), 0);
    CHECK_RC(BR->rc_open, -EBADMSG);
    CHECK(unchanged(path, b, sizes[k], st.st_ino));
    free(b);
    REQUIRE(unlink(path) == 0);
  }
}

/* Any user can create a file under a pool's name in /dev/shm. An empty one
** must be refused by every entry point -- by path, by name, and listing --
** without mapping it (reading a mapping past the end of a file is SIGBUS). */
TEST(empty_file_at_a_pool_name_is_refused_everywhere)
{
  const char *db = tu_db("empty.db");
  char name[128], path[256];
  name_for(db, name, sizeof name);
  shm_file(name, path, sizeof path);
  REQUIRE(spill(path, "", 0, 0644) == 0);
  struct stat st;
  REQUIRE(stat(path, &st) == 0);
  CHECK_RC(fresh_open(db, 0), -EBADMSG);
  CHECK(strstr(OR->msg, name) != NULL && strstr(OR->msg, "size") != NULL);
  CHECK_RC(fresh_open(db, DBPOOL_OPEN_READONLY), -EBADMSG);
  CHECK_RC(by_name_calls(name), 0); /* open by name, read-only, list */
  CHECK_RC(BR->rc_open, -EBADMSG);
  CHECK_RC(BR->rc_open_ro, -EBADMSG);
  CHECK_RC(BR->rc_list, 0);
  CHECK(unchanged(path, (const unsigned char *)"", 0, st.st_ino));
  unlink(path);
}

TEST(copy_of_another_databases_segment_is_refused)
{
  const char *a = tu_db("owner-a.db"), *b = tu_db("owner-b.db");
  char name_a[128], name_b[128], path_a[256], path_b[256];
  dbpool_coord *ca;
  dbpool_holder *ha;
  REQUIRE(dbpool_coord_open(a, 0, &ca) == 0);
  REQUIRE(dbpool_coord_set(ca, DBPOOL_SETTING_MAX_CONNECTIONS, 3) == 0);
  REQUIRE(dbpool_holder_new(ca, &ha) == 0);
  REQUIRE(dbpool_holder_acquire(ha, 0) == 0);
  snprintf(name_a, sizeof name_a, "%s", dbpool_coord_segment_name(ca));
  name_for(b, name_b, sizeof name_b);
  shm_file(name_a, path_a, sizeof path_a);
  shm_file(name_b, path_b, sizeof path_b);
  size_t n;
  unsigned char *copy = slurp(path_a, &n);
  REQUIRE(copy && n == SEG_SIZE);
  struct stat sa;
  REQUIRE(stat(path_a, &sa) == 0);
  REQUIRE(spill(path_b, copy, n, sa.st_mode & 07777) == 0);
  struct stat sb;
  REQUIRE(stat(path_b, &sb) == 0);

  CHECK_RC(fresh_open(b, 0), -EBADMSG);
  CHECK(strstr(OR->msg, name_b) != NULL);
  CHECK(strstr(OR->msg, "belongs to another database file") != NULL);
  CHECK_RC(fresh_open(b, DBPOOL_OPEN_READONLY), -EBADMSG);
  CHECK(unchanged(path_b, copy, n, sb.st_ino));
  CHECK_RC(by_name_calls(name_b), 0);
  CHECK_RC(BR->rc_open, -EBADMSG);
  CHECK(unchanged(path_b, copy, n, sb.st_ino));
  /* A's pool is unaffected. */
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  CHECK_RC(dbpool_coord_stats(ca, &st), 0);
  CHECK(st.active == 1 && st.max_connections == 3);
  CHECK(dbpool_holder_held(ha));
  CHECK_RC(dbpool_holder_release(ha), 0);
  dbpool_holder_free(ha);
  dbpool_coord_close(ca);
  free(copy);
  REQUIRE(unlink(path_b) == 0);
}

TEST(symlink_at_the_name_is_not_followed)
{
  const char *a = tu_db("link-target.db"), *b = tu_db("link.db");
  char name_a[128], name_b[128], path_a[256], path_b[256];
  pool_name(a, name_a, sizeof name_a);
  name_for(b, name_b, sizeof name_b);
  shm_file(name_a, path_a, sizeof path_a);
  shm_file(name_b, path_b, sizeof path_b);
  size_t n;
  unsigned char *before = slurp(path_a, &n);
  REQUIRE(before);
  struct stat sa;
  REQUIRE(stat(path_a, &sa) == 0);
  REQUIRE(symlink(path_a, path_b) == 0);
  CHECK(fresh_open(b, 0) < 0);
  CHECK(strstr(OR->msg, name_b) != NULL);
  CHECK(unchanged(path_a, before, n, sa.st_ino));
  struct stat sl;
  CHECK(lstat(path_b, &sl) == 0 && S_ISLNK(sl.st_mode));
  free(before);
  unlink(path_b);
}

/* ------------------------------------------------------------------- fuzz */

typedef struct {
  _Atomic int a_ready, b_ready;
  _Atomic int stop_b;
} fuzz_shared;

static fuzz_shared *FS;

static uint64_t rng;

static uint64_t rnd(void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static unsigned rndn(unsigned n) { return n ? (unsigned)(rnd() % n) : 0; }

typedef struct {
  size_t off, len;
} region;

/* The mutable bytes of a segment: everything but the identity fields and
** the mutex. Weighted toward the parts the protocol reads most. */
static region pick_region(void)
{
  size_t lock_end = H(lock) + sizeof(pthread_mutex_t);
  switch (rndn(12)) {
  case 0: return (region){H(gate), 16};
  case 1: return (region){H(gate), 20}; /* + acquire_timeout_ms */
  case 2: return (region){H(n_waiting), H(lock) - H(n_waiting)};
  case 3:
  case 4: return (region){lock_end, H(total_wait_ns) - lock_end}; /* queue, hwm */
  case 5: return (region){H(total_wait_ns), sizeof(dbp_header) - H(total_wait_ns)};
  case 6: return (region){H(path), DBPOOL_PATH_MAX};
  case 7: return (region){DBP_PROCESSES_OFF, 8 * sizeof(dbp_process)};
  case 8: return (region){DBP_PROCESSES_OFF, DBP_PROCESSES * sizeof(dbp_process)};
  case 9:
  case 10: return (region){DBP_RECORDS_OFF, 16 * sizeof(dbp_record)};
  default: return (region){DBP_RECORDS_OFF, DBP_RECORDS * sizeof(dbp_record)};
  }
}

static const uint32_t interesting[] = {
    0, 1, 2, 3, 4, 0x7f, 0x80, 0xff, 1023, 1024, 1025, 4095, 4096, 4097,
    8190, 8191, 8192, 0x7fffffff, 0x80000000u, 0xfffffffe, 0xffffffff};

/* A field-aware write: one field of the header, a record or a process
** record gets a value chosen to be interesting for it (indices at and past
** the tables' ends, states, gate fields at their limits, live pids). */
typedef struct {
  size_t off;
  unsigned size; /* 4 or 8 */
  char kind;     /* 'i' index/count, 'g' gate bits, 'w' record word, 'p' pid */
} field;

#define R(f) offsetof(dbp_record, f)
#define P(f) offsetof(dbp_process, f)

static const field header_fields[] = {
    {H(gate) + 0, 8, 'i'}, {H(gate) + 8, 8, 'g'}, {H(gate) + 8, 8, 'g'},
    {H(n_waiting), 4, 'i'}, {H(waiter_event), 4, 'i'}, {H(event_listeners), 4, 'i'},
    {H(q_head), 4, 'i'}, {H(q_tail), 4, 'i'},
    {H(next_ticket), 8, 'i'}, {H(free_head), 4, 'i'}, {H(record_hwm), 4, 'i'},
    {H(process_hwm), 4, 'i'}, {H(reclaim_journal_seq), 8, 'i'},
    {H(reclaim_journal_after), 8, 'i'}, {H(max_wait_ns), 8, 'i'}};
static const field record_fields[] = {
    {R(word), 8, 'w'}, {R(word), 8, 'w'}, {R(wake), 4, 'i'}, {R(owner), 4, 'i'},
    {R(tid), 4, 'p'}, {R(flags), 4, 'i'}, {R(ticket), 8, 'i'}, {R(q_prev), 4, 'i'},
    {R(q_next), 4, 'i'}, {R(free_next), 4, 'i'}};
static const field process_fields[] = {
    {P(state), 4, 'i'}, {P(gen), 4, 'i'}, {P(pid), 4, 'p'},
    {P(n_records), 4, 'i'}, {P(pidns), 8, 'i'}};

#define NF(t) (sizeof t / sizeof *t)

static pid_t fuzz_pids[4]; /* setup processes and ourselves */

static uint64_t field_value(const field *f, const unsigned char *seg)
{
  uint64_t v = rndn(3) == 0 ? rnd() : interesting[rndn(NF(interesting))];
  if (f->kind == 'g') {
    dbp_header *h = (dbp_header *)seg;
    uint64_t bits = __atomic_load_n(&h->gate.half[1], __ATOMIC_RELAXED);
    static const unsigned f13[] = {0, 1, 2, 3, 4096, 4097, 8190, 8191};
    static const int shifts[] = {G_ACTIVE_SHIFT, G_MAX_SHIFT, G_PEAK_SHIFT, G_REC_SHIFT};
    if (rndn(3)) bits = g_with(bits, shifts[rndn(4)], f13[rndn(NF(f13))]);
    else bits ^= UINT64_C(1) << (52 + rndn(4)); /* a flag */
    v = bits;
  } else if (f->kind == 'w') {
    dbp_header *h = (dbp_header *)seg;
    uint64_t seq = __atomic_load_n(&h->gate.half[0], __ATOMIC_RELAXED);
    v = REC_WORD(rndn(4), (seq + rndn(5) - 2) & REC_SEQ_MASK);
  } else if (f->kind == 'p' && rndn(2)) {
    v = (uint32_t)fuzz_pids[rndn(4)];
  }
  return v;
}

static size_t fuzz_field(unsigned char *seg, uint64_t *value, unsigned *size)
{
  const field *f;
  size_t base;
  switch (rndn(3)) {
  case 0:
    f = &header_fields[rndn(NF(header_fields))];
    base = 0;
    break;
  case 1: {
    f = &record_fields[rndn(NF(record_fields))];
    unsigned i = rndn(4) ? rndn(16) : rndn(DBP_RECORDS);
    base = DBP_RECORDS_OFF + (size_t)i * sizeof(dbp_record);
    break;
  }
  default: {
    f = &process_fields[rndn(NF(process_fields))];
    unsigned p = rndn(4) ? rndn(8) : rndn(DBP_PROCESSES);
    base = DBP_PROCESSES_OFF + (size_t)p * sizeof(dbp_process);
    break;
  }
  }
  uint64_t v = field_value(f, seg);
  if (f->size == 8) __atomic_store_n((uint64_t *)(seg + base + f->off), v, __ATOMIC_RELAXED);
  else __atomic_store_n((uint32_t *)(seg + base + f->off), (uint32_t)v, __ATOMIC_RELAXED);
  *value = v;
  *size = f->size;
  return base + f->off;
}

static void fuzz_once(unsigned char *seg, char *log, size_t logcap)
{
  if (rndn(2)) {
    uint64_t v;
    unsigned size;
    size_t off = fuzz_field(seg, &v, &size);
    size_t used = strlen(log);
    if (used + 48 < logcap)
      snprintf(log + used, logcap - used, " f@%zx=%llx/%u", off, (unsigned long long)v, size);
    return;
  }
  region r = pick_region();
  size_t len = 1 + rndn(rndn(4) == 0 ? 64 : 8);
  if (len > r.len) len = r.len;
  size_t off = r.off + rndn((unsigned)(r.len - len + 1));
  unsigned how = rndn(4);
  if (how == 0 && len >= 4) {
    off &= ~(size_t)3;
    uint32_t v = interesting[rndn(sizeof interesting / sizeof *interesting)];
    if (off + 4 > r.off + r.len) off = r.off;
    __atomic_store_n((uint32_t *)(seg + off), v, __ATOMIC_RELAXED);
    len = 4;
  } else if (how == 1) {
    /* flip one bit */
    __atomic_fetch_xor(seg + off, (unsigned char)(1u << rndn(8)), __ATOMIC_RELAXED);
    len = 1;
  } else {
    for (size_t i = 0; i < len; i++)
      __atomic_store_n(seg + off + i, (unsigned char)rnd(), __ATOMIC_RELAXED);
  }
  size_t used = strlen(log);
  if (used + 40 < logcap)
    snprintf(log + used, logcap - used, " %s%zx+%zu", how == 0 ? "v@" : how == 1 ? "b@" : "r@",
             off, len);
}

static int fuzz_list_cb(const char *name, void *arg)
{
  (void)name;
  (void)arg;
  return 0;
}

/* The child that exercises the API on a garbled segment. Every call has a
** bounded timeout; results are ignored (errors are fine). */
static void exercise(const char *db, const char *seg_name, uint64_t seed, int concurrent)
{
  alarm(tu_sec(20));
  rng = seed | 1;
  dbpool_coord *c = NULL;
  int rc = dbpool_coord_open(db, 0, &c);
  if (rc != 0) {
    /* Also try read-only, and by name. */
    if (dbpool_coord_open(db, DBPOOL_OPEN_READONLY, &c) == 0) {
      dbpool_host_stats st;
      DBPOOL_INIT(&st);
      dbpool_coord_stats(c, &st);
      dbpool_coord_close(c);
    }
    if (dbpool_coord_open_segment(seg_name, DBPOOL_OPEN_READONLY, &c) == 0)
      dbpool_coord_close(c);
    _exit(0);
  }
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[16];
  uint64_t *hist = malloc(DBPOOL_HIST_BUCKETS * sizeof *hist);
  char buf[DBPOOL_PATH_MAX];
  int64_t v;
  dbpool_coord_stats(c, &st);
  dbpool_coord_holders(c, info, 16, sizeof *info);
  dbpool_coord_histogram(c, hist, DBPOOL_HIST_BUCKETS);
  dbpool_coord_database(c, buf, sizeof buf);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) dbpool_coord_get(c, s, &v);
  dbp_coord_waiting(c);
  dbp_coord_wait_for_waiter(c, 0);
  dbp_coord_wait_for_waiter(c, 5);
  dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 20);

  dbpool_holder *h[3] = {NULL, NULL, NULL};
  for (int i = 0; i < 3; i++) dbpool_holder_new(c, &h[i]);
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 3; i++) {
      if (!h[i]) continue;
      int t = (int)rndn(4);
      /* The pool's default timeout is 20 ms -- unless the concurrent fuzzer
      ** garbles it: then a wait of hours would be legitimate. */
      int timeout = t == 0 ? 0 : t == 1 ? 20 : t == 2 || concurrent ? 1
                  : DBPOOL_TIMEOUT_DEFAULT;
      dbpool_holder_set_label(h[i], "fuzz");
      if (dbpool_holder_acquire(h[i], timeout) == 0) dbp_holder_set_idle(h[i], 1);
      dbpool_holder_held(h[i]);
      dbpool_coord_holders(c, info, 16, sizeof *info);
    }
    switch (rndn(6)) {
    case 0: dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1 + rndn(4)); break;
    case 1:
      dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 1);
      dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 0);
      break;
    case 2: dbpool_coord_reap(c); break;
    case 3: dbpool_coord_stats(c, &st); break;
    default: break;
    }
    for (int i = 0; i < 3; i++)
      if (h[i] && rndn(2)) dbpool_holder_release(h[i]);
  }
  dbpool_coord_stats(c, &st);
  dbpool_coord_reap(c);
  for (int i = 0; i < 3; i++) dbpool_holder_free(h[i]);
  /* A second attachment by name, then list (which may collect the pool). */
  dbpool_coord *c2 = NULL;
  if (dbpool_coord_open_segment(seg_name, 0, &c2) == 0) {
    dbpool_coord_stats(c2, &st);
    dbpool_coord_close(c2);
  }
  dbpool_coord_close(c);
  if (rndn(3) == 0) dbpool_coord_list(fuzz_list_cb, NULL);
  if (rndn(4) == 0) dbpool_coord_remove(db, NULL, (int)rndn(2));
  free(hist);
  _exit(0);
}

/* Setup process A: holds two slots (labelled), then dies or stays. */
static pid_t spawn_a(const char *db, int die)
{
  pid_t pid = fork();
  if (pid == 0) {
    alarm(tu_sec(60));
    dbpool_coord *c;
    dbpool_holder *h[3];
    if (dbpool_coord_open(db, 0, &c) != 0) _exit(3);
    dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2);
    for (int i = 0; i < 3; i++)
      if (dbpool_holder_new(c, &h[i]) != 0) _exit(3);
    dbpool_holder_set_label(h[0], "setup-a");
    if (dbpool_holder_acquire(h[0], 0) || dbpool_holder_acquire(h[1], 0)) _exit(3);
    dbp_holder_set_idle(h[1], 1);
    atomic_store(&FS->a_ready, 1);
    if (die) _exit(0);
    for (;;) pause();
  }
  return pid;
}

/* Setup process B: two threads wait in the queue (reaping every 25 ms),
** with a bounded timeout, over and over. */
static void *b_waiter(void *p)
{
  dbpool_holder *h = p;
  while (!atomic_load(&FS->stop_b)) {
    atomic_store(&FS->b_ready, 1);
    if (dbpool_holder_acquire(h, 50) == 0) {
      tu_sleep_ms(1);
      dbpool_holder_release(h);
    }
  }
  return NULL;
}

static pid_t spawn_b(const char *db)
{
  pid_t pid = fork();
  if (pid == 0) {
    alarm(tu_sec(60));
    dbpool_coord *c;
    dbpool_holder *h[2];
    if (dbpool_coord_open(db, 0, &c) != 0 || dbpool_holder_new(c, &h[0]) != 0 ||
        dbpool_holder_new(c, &h[1]) != 0)
      _exit(3);
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, b_waiter, h[i]);
    /* Stop cleanly when told, so that a sanitizer report in a waiter thread
    ** is never cut short by a kill: it makes the exit status non-zero. */
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    _exit(0);
  }
  return pid;
}

static int wait_ready(_Atomic int *flag)
{
  double end = tu_now_ms() + tu_ms(10000);
  while (!atomic_load(flag) && tu_now_ms() < end) tu_sleep_ms(0.2);
  return atomic_load(flag);
}

/* Kill a setup process; it must not have died on its own. */
static int kill_setup(pid_t pid, const char *who, int iter)
{
  if (pid <= 0) return 0;
  int status;
  pid_t r = waitpid(pid, &status, WNOHANG);
  if (r == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return 0;
  }
  fprintf(stderr, "  case %d: setup process %s died on its own (%s %d)\n", iter, who,
          WIFSIGNALED(status) ? "signal" : "exit",
          WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
  return 1;
}

/* The deterministic exercise for targeted garbage: everything that walks
** the queue, the free list and the tables. */
static void exercise_all(const char *db, const char *seg_name)
{
  alarm(tu_sec(20));
  dbpool_coord *c = NULL;
  if (dbpool_coord_open(db, 0, &c) != 0) _exit(0);
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_holder_info info[16];
  dbpool_coord_stats(c, &st);
  dbpool_coord_holders(c, info, 16, sizeof *info);
  dbpool_coord_set(c, DBPOOL_SETTING_ACQUIRE_TIMEOUT_MS, 20);
  dbpool_holder *h[2] = {NULL, NULL};
  dbpool_holder_new(c, &h[0]);
  dbpool_holder_new(c, &h[1]);
  if (h[0]) dbpool_holder_acquire(h[0], 0);
  dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 4); /* grants waiters */
  if (h[1]) dbpool_holder_acquire(h[1], 20);
  dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 1);
  dbpool_coord_set(c, DBPOOL_SETTING_PAUSED, 0);
  dbpool_coord_reap(c);
  if (h[0]) dbpool_holder_release(h[0]);
  dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 1);
  if (h[0]) dbpool_holder_acquire(h[0], 20);
  dbpool_coord_holders(c, info, 16, sizeof *info);
  dbpool_holder_free(h[0]);
  dbpool_holder_free(h[1]);
  dbpool_coord_stats(c, &st);
  dbpool_coord *c2 = NULL;
  if (dbpool_coord_open_segment(seg_name, DBPOOL_OPEN_READONLY, &c2) == 0) {
    dbpool_coord_holders(c2, info, 16, sizeof *info);
    dbpool_coord_close(c2);
  }
  dbpool_coord_close(c);
  dbpool_coord_list(fuzz_list_cb, NULL);
  _exit(0);
}

typedef void (*garble_fn)(unsigned char *seg, void *arg, char *log, size_t logcap);

/* One case: a fresh pool with setup process A holding both slots (alive, or
** dead and not yet reaped) and B waiting (reaping every 25 ms); garble it;
** let a child exercise the API (keep garbling meanwhile if concurrent);
** then kill A and B, which must not have died on their own. Returns the
** number of processes that crashed, hung or failed (0 is good). */
static int one_case(const char *db, const char *path, int a_dies, int with_b,
                    int concurrent, garble_fn garble, void *arg,
                    void (*child)(void *), void *child_arg, char *log, size_t logcap,
                    int it)
{
  unlink(path);
  memset(FS, 0, sizeof *FS);
  pid_t a = spawn_a(db, a_dies);
  fuzz_pids[0] = a;
  fuzz_pids[2] = getpid();
  fuzz_pids[3] = 1;
  if (!wait_ready(&FS->a_ready)) {
    fprintf(stderr, "  case %d: setup A failed\n", it);
    kill_setup(a, "A", it);
    return 1;
  }
  if (a_dies) waitpid(a, NULL, 0), a = -1;
  pid_t b = with_b ? spawn_b(db) : -1;
  fuzz_pids[1] = b > 0 ? b : getpid();
  if (with_b) {
    wait_ready(&FS->b_ready);
    tu_sleep_ms(2);
  }
  int fd = open(path, O_RDWR | O_CLOEXEC);
  REQUIRE(fd >= 0);
  unsigned char *seg = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  REQUIRE(seg != MAP_FAILED);
  garble(seg, arg, log, logcap);
  pid_t ch = fork();
  if (ch == 0) child(child_arg);
  if (concurrent) {
    for (int w = 0; w < 40; w++) {
      siginfo_t si;
      memset(&si, 0, sizeof si);
      if (waitid(P_PID, (id_t)ch, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid == ch)
        break; /* exited (not reaped: tu_wait_child does that) */
      garble(seg, arg, log, logcap);
      tu_sleep_ms(0.3);
    }
  }
  int st = tu_wait_child(ch, 30000);
  munmap(seg, SEG_SIZE);
  int bad = 0;
  if (st != 0) {
    bad++;
    fprintf(stderr, "  case %d: API child %s %d; writes:%s\n", it,
            st > 128 ? "died of signal" : st < 0 ? "hung" : "exited with",
            st > 128 ? st - 128 : st, log);
  }
  if (a > 0 && with_b) {
    /* Kill A: B reaps A's slots from the garbled segment. */
    int ast;
    kill(a, SIGKILL);
    waitpid(a, &ast, 0);
    if (!WIFSIGNALED(ast) || WTERMSIG(ast) != SIGKILL) {
      bad++;
      fprintf(stderr, "  case %d: setup process A died on its own (status 0x%x)\n", it, ast);
    }
    a = -1;
    tu_sleep_ms(40); /* B polls every 25 ms */
  }
  bad += kill_setup(a, "A", it);
  if (b > 0) {
    atomic_store(&FS->stop_b, 1);
    int bst = tu_wait_child(b, 10000);
    if (bst != 0) {
      bad++;
      fprintf(stderr, "  case %d: setup process B %s %d\n", it,
              bst > 128 ? "died of signal" : bst < 0 ? "hung" : "exited with",
              bst > 128 ? bst - 128 : bst);
    }
  }
  unlink(path);
  return bad;
}

typedef struct {
  const char *db, *name;
  uint64_t seed;
  int concurrent;
} fuzz_child_arg;

static void fuzz_child(void *p)
{
  fuzz_child_arg *a = p;
  exercise(a->db, a->name, a->seed, a->concurrent);
}

static void fuzz_garble(unsigned char *seg, void *arg, char *log, size_t logcap)
{
  int *first = arg;
  int writes = *first ? 1 + (int)rndn(8) : 1;
  *first = 0;
  for (int w = 0; w < writes; w++) fuzz_once(seg, log, logcap);
}

TEST(garbage_in_mutable_fields_never_crashes)
{
  const char *db = tu_db("fuzz.db");
  char name[128], path[256];
  name_for(db, name, sizeof name);
  shm_file(name, path, sizeof path);
  int iters = getenv("DBPOOL_FUZZ_ITERS") ? atoi(getenv("DBPOOL_FUZZ_ITERS")) : 150;
  uint64_t seed = getenv("DBPOOL_FUZZ_SEED")
                      ? strtoull(getenv("DBPOOL_FUZZ_SEED"), NULL, 0)
                      : (uint64_t)time(NULL) * 2654435761u ^ (uint64_t)getpid();
  rng = seed | 1;
  int bad = 0;
  /* Stay under the suite's time budget, unless asked for a longer run; but
  ** always run 20 cases, however slow the build (TSan) or the machine. */
  double t_end = tu_now_ms() + (getenv("DBPOOL_FUZZ_ITERS") ? 1e9 : 7000);
  int it;
  for (it = 0; it < iters && (it < 20 || tu_now_ms() < t_end) && bad <= 3; it++) {
    fuzz_child_arg ca = {db, name, rnd(), rndn(3) == 0};
    int a_dies = rndn(2), with_b = rndn(3) != 0, first = 1;
    char log[2048] = "";
    int b = one_case(db, path, a_dies, with_b, ca.concurrent, fuzz_garble, &first,
                     fuzz_child, &ca, log, sizeof log, it);
    if (b) fprintf(stderr, "  (iteration %d of seed 0x%llx)\n", it, (unsigned long long)seed);
    bad += b;
  }
  CHECK_RC(bad, 0);
  CHECK(it >= 20);
  if (bad) fprintf(stderr, "  reproduce with DBPOOL_FUZZ_SEED=0x%llx\n", (unsigned long long)seed);
  printf("  fuzz: %d iterations, seed 0x%llx\n", it, (unsigned long long)seed);
}

/* Targeted garbage: every index, count and link field, set to values at and
** beyond the ends of the tables, with the queue in use. */
typedef struct {
  size_t off;
  unsigned size;
  uint64_t value;
} poke;

static void poke_garble(unsigned char *seg, void *arg, char *log, size_t logcap)
{
  const poke *pk = arg;
  if (pk->size == 8) __atomic_store_n((uint64_t *)(seg + pk->off), pk->value, __ATOMIC_RELAXED);
  else __atomic_store_n((uint32_t *)(seg + pk->off), (uint32_t)pk->value, __ATOMIC_RELAXED);
  snprintf(log, logcap, " @%zx=%llx", pk->off, (unsigned long long)pk->value);
}

typedef struct {
  const char *db, *name;
} all_child_arg;

static void all_child(void *p)
{
  all_child_arg *a = p;
  exercise_all(a->db, a->name);
}

TEST(bad_indices_are_never_followed)
{
  const char *db = tu_db("indices.db");
  char name[128], path[256];
  name_for(db, name, sizeof name);
  shm_file(name, path, sizeof path);
  static const uint32_t bad_values[] = {8191, 8192, 0x7fffffff, 0xffffffff};
  static const struct {
    const char *what;
    size_t off;
    unsigned size;
    int per; /* 0 header, 1 each of records 0..4, 2 each of processes 0..2 */
  } fields[] = {
      {"q_head", H(q_head), 4, 0},         {"q_tail", H(q_tail), 4, 0},
      {"free_head", H(free_head), 4, 0},   {"record_hwm", H(record_hwm), 4, 0},
      {"process_hwm", H(process_hwm), 4, 0}, {"n_waiting", H(n_waiting), 4, 0},
      {"rec.q_prev", R(q_prev), 4, 1},     {"rec.q_next", R(q_next), 4, 1},
      {"rec.free_next", R(free_next), 4, 1}, {"rec.owner", R(owner), 4, 1},
      {"proc.n_records", P(n_records), 4, 2},
  };
  all_child_arg ca = {db, name};
  int bad = 0, cases = 0;
  for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
    /* Records 0-2 are A's holders, 3-4 B's waiters. */
    int copies = fields[f].per == 0 ? 1 : fields[f].per == 1 ? 5 : 3;
    for (int k = 0; k < copies; k++)
      for (size_t v = 0; v < sizeof bad_values / sizeof *bad_values; v++) {
        size_t base = fields[f].per == 0 ? 0
                      : fields[f].per == 1 ? DBP_RECORDS_OFF + (size_t)k * sizeof(dbp_record)
                                           : DBP_PROCESSES_OFF + (size_t)k * sizeof(dbp_process);
        poke pk = {base + fields[f].off, fields[f].size, bad_values[v]};
        char log[256] = "";
        int b = one_case(db, path, 0, 1, 0, poke_garble, &pk, all_child, &ca, log,
                         sizeof log, cases++);
        if (b) fprintf(stderr, "  (field %s of #%d = 0x%x)\n", fields[f].what, k,
                       (unsigned)bad_values[v]);
        bad += b;
      }
  }
  /* 64-bit counters, clocks and sequence numbers at their extremes. */
  static const struct {
    const char *what;
    size_t off;
  } wide[] = {{"gate seq", H(gate)}, {"last_reap_ns", H(last_reap_ns)},
              {"next_ticket", H(next_ticket)}, {"reclaim_journal_seq", H(reclaim_journal_seq)},
              {"reclaim_journal_after", H(reclaim_journal_after)},
              {"total_wait_ns", H(total_wait_ns)}, {"max_wait_ns", H(max_wait_ns)},
              {"rec3.word", DBP_RECORDS_OFF + 3 * sizeof(dbp_record) + R(word)},
              {"rec3.ticket", DBP_RECORDS_OFF + 3 * sizeof(dbp_record) + R(ticket)}};
  static const uint64_t wide_values[] = {0, UINT64_MAX, (uint64_t)INT64_MAX,
                                         (uint64_t)INT64_MIN};
  for (size_t f = 0; f < sizeof wide / sizeof *wide; f++)
    for (size_t v = 0; v < sizeof wide_values / sizeof *wide_values; v++) {
      poke pk = {wide[f].off, 8, wide_values[v]};
      char log[256] = "";
      int b = one_case(db, path, 0, 1, 0, poke_garble, &pk, all_child, &ca, log,
                       sizeof log, cases++);
      if (b) fprintf(stderr, "  (field %s = 0x%llx)\n", wide[f].what,
                     (unsigned long long)wide_values[v]);
      bad += b;
    }
  /* The gate's record field, at its top values, with each op kind. */
  for (unsigned rec = 8189; rec <= 8191; rec++)
    for (int rel = 0; rel < 2; rel++) {
      poke pk = {H(gate) + 8, 8, 0};
      /* The gate of the setup (2 held, limit 2, B waiting), but the last
      ** operation names a record at the end of the table or past it. */
      uint64_t bits = g_with(g_with(g_with(0, G_ACTIVE_SHIFT, 2), G_MAX_SHIFT, 2),
                             G_PEAK_SHIFT, 2);
      bits = g_with(bits, G_REC_SHIFT, rec) | G_SLOW | (rel ? G_KIND_REL : 0);
      pk.value = bits;
      char log[256] = "";
      int b = one_case(db, path, 0, 1, 0, poke_garble, &pk, all_child, &ca, log,
                       sizeof log, cases++);
      if (b) fprintf(stderr, "  (gate record %u, %s)\n", rec, rel ? "release" : "acquire");
      bad += b;
    }
  CHECK_RC(bad, 0);
  printf("  %d targeted cases\n", cases);
}

int main(void)
{
  tu_init("corrupt");
  BR = tu_shared(sizeof *BR);
  OR = tu_shared(sizeof *OR);
  FS = tu_shared(sizeof *FS);
  RUN(invalid_header_fields_are_refused_and_nothing_changes);
  RUN(random_file_at_the_name_is_refused);
  RUN(empty_file_at_a_pool_name_is_refused_everywhere);
  RUN(copy_of_another_databases_segment_is_refused);
  RUN(symlink_at_the_name_is_not_followed);
  RUN(bad_indices_are_never_followed);
  RUN(garbage_in_mutable_fields_never_crashes);
  return tu_finish();
}
