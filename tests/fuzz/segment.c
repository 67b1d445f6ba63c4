/*
** segment.c -- libFuzzer target: attach to and use a pool segment whose
** bytes are hostile (make fuzz; docs/testing.md).
**
**   make fuzz FUZZ_SECONDS=600         every target, ten minutes each
**   build-fuzz/fuzz-segment tests/fuzz/corpus/segment   by hand
**
** A segment in /dev/shm can be written by any process of its owner, so
** every byte of it may be garbage (layout.h). Set-up makes one valid pool
** and keeps a copy of its bytes. Each input then:
**
**   1. restores the pristine bytes and sets the pool's lock to one of the
**      states a process can leave it in: free, owner died (a process was
**      killed holding it: glibc's robust mutex reports EOWNERDEAD to the
**      next locker, which must repair the state, coordinator/lock.c), owner
**      died with waiters, or unrecoverable (someone saw the death and
**      unlocked without repairing);
**   2. writes the input's patches over the rest of the segment: the
**      identity fields, the gate, the counters, the queue and free-list
**      heads, the process table and the holder records (a region byte, an
**      offset, bytes: see apply());
**   3. attaches afresh and uses the whole API: holders, acquire with
**      timeout 0, release, labels, idle marks, stats, holders, histogram,
**      writer queue, settings, reap, remove (not of this pool).
**
** Errors are fine; a crash, a sanitizer report or a hang is not. After an
** owner-died recovery the pool's invariants must hold: the gate's count
** of held slots is at most the limit and equals the number of holders
** listed as holding. The mutex's other
** bytes are never fuzzed: their meaning is glibc's (garbage there is
** undefined behaviour in libc itself, as in tests/coord/corrupt.c).
*/
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dbpool_admin.h"
#include "dbpool_coord.h"
#include "coordinator/layout.h"
#include "coordinator/private.h"

#define SEG_SIZE ((size_t)DBP_SEGMENT_SIZE)
#define FUTEX_OWNER_DIED_BIT 0x40000000u
#define FUTEX_WAITERS_BIT 0x80000000u
#define MUTEX_NOTRECOVERABLE 0x7ffffffe

static char g_seg_name[256], g_shm_path[300], g_db[256];
static unsigned char *g_pristine; /* the valid segment's bytes */
static unsigned char *g_map;      /* the segment, mapped shared */

static void fatal(const char *what)
{
  fprintf(stderr, "fuzz-segment: %s: %s (%s)\n", what, dbpool_last_error(), strerror(errno));
  _exit(2);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
  (void)argc;
  (void)argv;
  char ns[64], dir[128];
  snprintf(ns, sizeof ns, "fz%d", (int)getpid());
  setenv("DBPOOL_NAMESPACE", ns, 1);
  snprintf(dir, sizeof dir, "/tmp/dbpool-fuzz-%d", (int)getpid());
  mkdir(dir, 0700);
  snprintf(g_db, sizeof g_db, "%s/a.db", dir);
  int fd = open(g_db, O_RDWR | O_CREAT, 0600);
  if (fd < 0) fatal("creating the database file");
  close(fd);
  dbpool_coord *c;
  if (dbpool_coord_open(g_db, 0, &c) != 0) fatal("creating the pool");
  snprintf(g_seg_name, sizeof g_seg_name, "%s", dbpool_coord_segment_name(c));
  dbpool_coord_close(c);
  snprintf(g_shm_path, sizeof g_shm_path, "/dev/shm/%s", g_seg_name);
  fd = open(g_shm_path, O_RDWR);
  if (fd < 0) fatal("opening the segment");
  g_map = mmap(NULL, SEG_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  close(fd);
  if (g_map == MAP_FAILED) fatal("mapping the segment");
  g_pristine = malloc(SEG_SIZE);
  if (!g_pristine) fatal("malloc");
  memcpy(g_pristine, g_map, SEG_SIZE);
  return 0;
}

/* Remove the pool and its directory when the fuzzer ends normally. */
__attribute__((destructor)) static void cleanup(void)
{
  if (!g_seg_name[0]) return;
  unlink(g_shm_path);
  unlink(g_db);
  char dir[256];
  snprintf(dir, sizeof dir, "%s", g_db);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = 0;
  rmdir(dir);
}

/* The regions an input's patches address: a patch names one and an offset
** in it, so that short inputs reach every kind of field. */
static void region(unsigned which, size_t *off, size_t *len)
{
  switch (which % 6) {
  case 0: /* identity: magic ... path (validation refuses most changes) */
    *off = 0;
    *len = offsetof(dbp_header, gate);
    return;
  case 1: /* the gate, timeouts, counters, up to the lock */
    *off = offsetof(dbp_header, gate);
    *len = offsetof(dbp_header, lock) - *off;
    return;
  case 2: /* what the lock guards, statistics, the writer queue */
    *off = offsetof(dbp_header, lock) + sizeof(pthread_mutex_t);
    *len = sizeof(dbp_header) - *off;
    return;
  case 3: /* the first process records */
    *off = DBP_PROCESSES_OFF;
    *len = 8 * sizeof(dbp_process);
    return;
  case 4: /* the first holder records */
    *off = DBP_RECORDS_OFF;
    *len = 16 * sizeof(dbp_record);
    return;
  default: /* anywhere past the header */
    *off = offsetof(dbp_header, lock) + sizeof(pthread_mutex_t);
    *len = SEG_SIZE - *off;
    return;
  }
}

/* Patches: [region][offset: 2 bytes, little-endian][length][bytes...] until
** the input ends; an offset wraps within its region. */
static void apply(const uint8_t *d, size_t n)
{
  while (n >= 4) {
    size_t off, len;
    region(d[0], &off, &len);
    size_t at = ((size_t)d[1] | (size_t)d[2] << 8) % len;
    size_t k = d[3];
    d += 4;
    n -= 4;
    if (k > n) k = n;
    if (k > len - at) k = len - at;
    memcpy(g_map + off + at, d, k);
    d += k;
    n -= k;
  }
}

/* The lock's state, from the input's first byte. */
enum { LOCK_FREE, LOCK_OWNER_DIED, LOCK_OWNER_DIED_WAITERS, LOCK_UNRECOVERABLE, LOCK_STATES };

static void set_lock(unsigned state)
{
  pthread_mutex_t *m = &((dbp_header *)g_map)->lock;
  switch (state) {
  case LOCK_OWNER_DIED: /* what the kernel writes when the owner dies */
    m->__data.__lock = (int)FUTEX_OWNER_DIED_BIT;
    break;
  case LOCK_OWNER_DIED_WAITERS:
    m->__data.__lock = (int)(FUTEX_OWNER_DIED_BIT | FUTEX_WAITERS_BIT);
    break;
  case LOCK_UNRECOVERABLE: /* glibc's mark, as left by pthread_mutex_unlock */
    m->__data.__lock = 0;
    m->__data.__owner = MUTEX_NOTRECOVERABLE;
    break;
  default:
    break;
  }
}

static int count_holding(dbpool_coord *c)
{
  dbpool_holder_info info[32];
  int n = dbpool_coord_holders(c, info, 32, sizeof *info);
  if (n < 0 || n > 32) return -1;
  int held = 0;
  for (int i = 0; i < n; i++) held += info[i].state != DBPOOL_HOLDER_WAITING;
  return held;
}

/* After the lock's owner died: the next locker repaired the pool. */
static void check_recovered(dbpool_coord *c)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  if (dbpool_coord_stats(c, &st) != 0) return;
  if (st.active > st.max_connections) {
    fprintf(stderr, "fuzz-segment: after recovery %u slots held, limit %u\n", st.active,
            st.max_connections);
    abort();
  }
  int held = count_holding(c);
  if (held >= 0 && (unsigned)held != st.active) {
    fprintf(stderr, "fuzz-segment: after recovery the gate counts %u held "
            "slots, the records %d\n", st.active, held);
    abort();
  }
}

/* Everything a process does with a pool, errors ignored. */
static void use(dbpool_coord *c, unsigned lock_state)
{
  dbpool_host_stats st;
  DBPOOL_INIT(&st);
  dbpool_writer_stats ws;
  DBPOOL_INIT(&ws);
  dbpool_holder_info info[8];
  dbpool_writer_info wi[4];
  static uint64_t hist[DBPOOL_HIST_BUCKETS];
  int64_t v;
  char label[DBPOOL_LABEL_MAX];

  dbpool_coord_stats(c, &st);
  dbpool_coord_writer_stats(c, &ws);
  dbpool_coord_histogram(c, hist, DBPOOL_HIST_BUCKETS);
  dbpool_coord_holders(c, info, 8, sizeof *info);
  dbpool_coord_writers(c, wi, 4, sizeof *wi);
  dbp_coord_waiting(c);
  dbpool_coord_file_state(c);
  for (int s = 0; s < DBPOOL_SETTING_COUNT; s++) dbpool_coord_get(c, s, &v);

  dbpool_coord_reap(c); /* rate-limited: may not lock */

  /* holder_new takes the lock: an owner's death is found and repaired. */
  dbpool_holder *h = NULL, *h2 = NULL;
  if (dbpool_holder_new(c, &h) == 0) {
    if (lock_state == LOCK_OWNER_DIED || lock_state == LOCK_OWNER_DIED_WAITERS)
      check_recovered(c);
    if (dbpool_holder_acquire(h, 0) == 0) {
      dbpool_holder_set_label(h, "fuzz");
      dbp_holder_set_idle(h, 1);
      dbp_coord_record_label(c, dbp_holder_record(h), label, sizeof label);
      dbp_holder_set_idle(h, 0);
      if (dbpool_holder_new(c, &h2) == 0) dbpool_holder_acquire(h2, 0);
      dbpool_holder_release(h);
    }
    dbp_coord_set_record_label(c, dbp_holder_record(h), "x");
  }
  dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 2);
  dbp_coord_wait_for_waiter(c, 0);
  dbpool_coord_holders(c, info, 8, sizeof *info);
  dbpool_coord_stats(c, &st);
  dbpool_holder_free(h2);
  dbpool_holder_free(h);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size < 1) return 0;
  unsigned lock_state = data[0] % LOCK_STATES;
  memcpy(g_map, g_pristine, SEG_SIZE);
  set_lock(lock_state);
  apply(data + 1, size - 1);

  dbpool_coord *c;
  if (dbpool_coord_open_segment(g_seg_name, 0, &c) == 0) {
    use(c, lock_state);
    dbpool_coord_close(c);
  }
  if (dbpool_coord_open_segment(g_seg_name, DBPOOL_OPEN_READONLY, &c) == 0) {
    dbpool_host_stats st;
    DBPOOL_INIT(&st);
    dbpool_coord_stats(c, &st);
    dbpool_coord_close(c);
  }
  /* By path too: the key (device, inode) must match the file's. */
  if (dbpool_coord_open(g_db, 0, &c) == 0) dbpool_coord_close(c);
  return 0;
}
