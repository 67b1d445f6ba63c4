/*
** writer_gate.c -- writers take turns: the gate in front of SQLite's WAL
** write lock, for every database file opened through the dbpool VFS.
**
**   .load ./build/dbpool
**   .open app.db
**   PRAGMA journal_mode = WAL;
**   PRAGMA busy_timeout = 5000;
**   PRAGMA dbpool_writer_queue;              -- 1: writers queue (default)
**   PRAGMA dbpool_writer_starvation_ms = 20; -- barging stops past 20 ms
**   SELECT writers_waiting, write_wait_p999_ms FROM pool_stats;
**
** Without it, a writer that finds WAL_WRITE_LOCK taken sleeps in SQLite's
** busy handler (1, 2, 5 ... 100 ms) and retries; whoever retries at the
** right moment wins, so the unlucky wait seconds. With it, the writer
** takes a ticket in the pool's writer queue (coordinator/writer.c) and
** waits for its turn, host-wide, in arrival order. How, without breaking
** SQLite:
**
**   - It never blocks inside xShmLock while SQLite holds a read snapshot:
**     after the wait the snapshot would be stale and SQLite would give the
**     lock back. When the turn is taken it answers SQLITE_BUSY at once; the
**     wait happens in the VFS's xSleep, where the busy handler sleeps (only
**     whole-millisecond sleeps of a thread that was just refused: the WAL
**     reader's microsecond back-offs pass through), and SQLite's retry then
**     takes a fresh snapshot.
**   - Each wait lasts at most the sleep SQLite asked for, so SQLite's own
**     busy budget (the connection's busy_timeout) bounds the whole wait, and
**     a connection without a busy handler is never made to wait.
**   - Only transaction writers queue: a write-lock request made while a read
**     mark is held. Requests without one (a header retry, recovery, a
**     checkpoint) pass straight through.
**   - A read-then-write ("deferred") transaction gets SQLITE_BUSY from SQLite
**     without a busy handler call. Its ticket is kept for a while; when the
**     connection begins its next read (the application's retry), the gate
**     waits there, holding no lock, by calling the connection's own busy
**     handler (SQLITE_FCNTL_BUSYHANDLER), whose sleeps come back here. The
**     turn, once free, is reserved for it, so the retry commits: one BUSY
**     per contended transaction. BEGIN IMMEDIATE gets none.
**   - In builds with SQLITE_ENABLE_SETLK_TIMEOUT, SQLite asks for the write
**     lock before its snapshot and says how long it may block
**     (SQLITE_FCNTL_LOCK_TIMEOUT): then the gate waits right there (unless
**     the wal-index header is torn or unset: then it is a reader's header
**     retry or a recovery, which pass through).
**   - Rollback-journal databases are not queued (xLock(RESERVED) is taken
**     while holding SHARED; blocking there deadlocks): the gate notes the
**     journal kind so that pool_stats says the queue is inactive and why.
**
** LIMITATIONS
**   - Writers that do not go through this VFS (other programs, connections
**     opened with another VFS) do not queue; the gate copes (it keeps the
**     turn and sleeps like SQLite) but cannot order them.
**   - A retry that comes more than ~50 ms after its BUSY goes to the back.
*/
#include <pthread.h>
#include <string.h>

#include "writer_gate.h"
SQLITE_EXTENSION_INIT3

#define WAL_WRITE_LOCK 0
#define WAL_READ_FIRST 3
#define WAL_READ_LAST 7
#define LOCK_BUSY_RESERVE_MS 100 /* the longest busy-handler sleep */

/* The open gates of this process: a thread-local "who was refused last"
** pointer is only followed if the gate is still open. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static writer_gate *g_gates;
static __thread writer_gate *t_refused;

static int64_t now_ns(void) { return dbp_mono_ns(); }

void wg_open(writer_gate *g, const char *zName, sqlite3_file *real)
{
  memset(g, 0, sizeof *g);
  g->real = real;
  g->zName = zName;
  g->h = (dbp_wq_handle)DBP_WQ_HANDLE_INIT;
  pthread_mutex_lock(&g_mu);
  g->next = g_gates;
  if (g_gates) g_gates->prev = g;
  g_gates = g;
  pthread_mutex_unlock(&g_mu);
}

static void forget_gate(writer_gate *g)
{
  pthread_mutex_lock(&g_mu);
  if (g->prev) g->prev->next = g->next;
  else g_gates = g->next; /* no prev: the head (wg_open) */
  if (g->next) g->next->prev = g->prev;
  g->prev = g->next = NULL;
  pthread_mutex_unlock(&g_mu);
  if (t_refused == g) t_refused = NULL;
}

static void leave_queue(writer_gate *g);

/* The gate's pool, opened once; NULL if the file has none we can use. A
** pool removed by force (dbpoolctl rm --force) is left for its successor,
** which the connection's slot follows too (connection.c). */
static dbpool_coord *gate_pool(writer_gate *g)
{
  if (g->coord && !g->gated && (dbp_gate_snapshot(g->coord->hdr).bits & G_REMOVED)) {
    leave_queue(g);
    dbpool_coord_close(g->coord);
    g->coord = NULL;
  }
  if (g->coord || g->no_pool || !g->zName) return g->coord;
  if (dbpool_coord_open(g->zName, 0, &g->coord) != 0) {
    g->coord = NULL;
    g->no_pool = 1;
  }
  return g->coord;
}

static void leave_queue(writer_gate *g)
{
  if (!g->coord) return;
  if (g->gated) dbp_wq_release(g->coord, &g->h);
  g->gated = 0;
  dbp_wq_drop(g->coord, &g->h);
}

void wg_shm_unmap(writer_gate *g)
{
  leave_queue(g);
  g->read_marks = 0;
  g->shm0 = NULL;
}

void wg_shm_map(writer_gate *g, int page, volatile void *p)
{
  if (page == 0 && p) g->shm0 = p;
}

/* The wal-index header's transaction counter (iChange, bytes 8..11) and
** frame count (mxFrame, 16..19): a commit changes them. Only their
** equality is used, so their byte order does not matter. */
static void read_header(const writer_gate *g, uint32_t *change, uint32_t *frames)
{
  const volatile uint32_t *w = (const volatile uint32_t *)g->shm0;
  *change = w ? w[2] : 0; /* GCOVR_EXCL_BR_LINE: SQLite maps the wal-index's
                              first page before it takes any WAL lock */
  *frames = w ? w[4] : 0; /* GCOVR_EXCL_BR_LINE: as above */
}

void wg_close(writer_gate *g)
{
  forget_gate(g);
  leave_queue(g);
  dbpool_coord_close(g->coord);
  g->coord = NULL;
}

void wg_lock(writer_gate *g, int level)
{
  /* A RESERVED lock on the database file is a rollback-journal writer
  ** (WAL writers never take it): never block here, just say so. */
  if (level == SQLITE_LOCK_RESERVED && gate_pool(g))
    dbp_wq_note_journal(g->coord, WQ_JOURNAL_ROLLBACK);
}

void wg_file_control(writer_gate *g, int op, void *arg)
{
  if (op == SQLITE_FCNTL_BUSYHANDLER) g->busy = (void **)arg;
#ifdef SQLITE_FCNTL_LOCK_TIMEOUT
  if (op == SQLITE_FCNTL_LOCK_TIMEOUT && arg) g->lock_timeout_ms = *(int *)arg;
#endif
}

/* This thread was just refused by g: its next busy sleep waits for g's
** turn. (refused_by guards against a connection that moved to another
** thread since: that thread's pointer is then ignored.) */
static void refused(writer_gate *g)
{
  t_refused = g;
  __atomic_store_n(&g->refused_by, pthread_self(), __ATOMIC_RELAXED);
}

static int real_shm_lock(writer_gate *g, int ofst, int n, int flags)
{
  return g->real->pMethods->xShmLock(g->real, ofst, n, flags);
}

/* In SETLK builds SQLite asks for WAL_WRITE_LOCK with a lock timeout and
** no read mark in three places: a transaction writer before its snapshot
** (which should wait for its turn), a reader whose copy of the wal-index
** header was torn or unset (header retry, recovery: must not queue behind
** writers), and a checkpoint. The reader's case shows in the header: its
** two copies differ, or it is not initialised. */
static int header_sound(const writer_gate *g)
{
  unsigned char a[48], b[48];
  const volatile unsigned char *h = (const volatile unsigned char *)g->shm0;
  if (!h) return 0;
  for (int i = 0; i < 48; i++) {
    a[i] = h[i];
    b[i] = h[48 + i];
  }
  return a[12] != 0 && memcmp(a, b, sizeof a) == 0; /* isInit, copies agree */
}

/* SQLite asks for WAL_WRITE_LOCK. */
static __attribute__((noinline)) int write_lock(writer_gate *g)
{
  const int flags = SQLITE_SHM_LOCK | SQLITE_SHM_EXCLUSIVE;
  dbpool_coord *c = gate_pool(g);
  if (!c) return real_shm_lock(g, WAL_WRITE_LOCK, 1, flags);
  dbp_wq_note_journal(c, WQ_JOURNAL_WAL);
  int txn = g->read_marks != 0;
  int blocking = !txn && g->lock_timeout_ms != 0 && header_sound(g);
  if (!txn && !blocking) return real_shm_lock(g, WAL_WRITE_LOCK, 1, flags);
  int64_t wait_ms = g->lock_timeout_ms < 0 ? INT64_C(86400000) : g->lock_timeout_ms;
  int64_t deadline = blocking ? now_ns() + wait_ms * 1000000 : 0;
  for (;;) {
    int r = dbp_wq_acquire(c, &g->h, g->woken);
    g->woken = 0;
    if (r == DBP_WQ_OFF) return real_shm_lock(g, WAL_WRITE_LOCK, 1, flags);
    if (r == DBP_WQ_SELF) { /* this thread's other connection has the turn */
      if (t_refused == g) t_refused = NULL;
      return SQLITE_BUSY;
    }
    if (r == DBP_WQ_GO) {
      int rc = real_shm_lock(g, WAL_WRITE_LOCK, 1, flags);
      if (rc == SQLITE_OK) {
        g->gated = 1;
        g->lock_busy = 0;
        g->slept = 1; /* any earlier refusal is over: reads need not wait */
        read_header(g, &g->hdr_change, &g->hdr_frames);
        dbp_wq_taken(c, &g->h);
        if (t_refused == g) t_refused = NULL;
      } else if ((rc & 0xff) == SQLITE_BUSY) {
        /* A writer that does not queue holds it: keep the turn, sleep like
        ** SQLite would (nobody will tell us when it is done). */
        g->lock_busy = 1;
        g->slept = 0;
        dbp_wq_lock_busy(c, &g->h, now_ns() + (int64_t)LOCK_BUSY_RESERVE_MS * 1000000);
        refused(g);
      } else {
        dbp_wq_release(c, &g->h);
      }
      return rc;
    }
    if (blocking) {
      int w = dbp_wq_wait(c, &g->h, deadline, false);
      if (w == DBP_WQ_TIMEOUT) return SQLITE_BUSY;
      g->woken = w == DBP_WQ_READY;
      continue;
    }
    g->slept = 0;
    g->lock_busy = 0;
    refused(g);
    return SQLITE_BUSY;
  }
}

/* A read transaction begins while we hold a ticket from a BUSY that SQLite
** handed to the application (a deferred transaction's upgrade, or a busy
** budget spent): this is most likely the application's retry. Wait for the
** turn here, holding no lock, through the connection's own busy handler. */
static __attribute__((noinline)) void wait_before_read(writer_gate *g)
{
  if (g->lock_busy) return; /* (the caller checked coord and slept) */
  if (!g->busy || !g->busy[0]) return; /* GCOVR_EXCL_BR_LINE: the pager sends
      SQLITE_FCNTL_BUSYHANDLER with its own handler when it opens the file */
  if (!dbp_wq_queued(g->coord, &g->h)) return;
  int (*xBusy)(void *) = (int (*)(void *))g->busy[0];
  void *arg = g->busy[1];
  g->slept = 1; /* once per refusal: read locks retaken later pass */
  for (int calls = 0; calls < 10000; calls++) {
    int w = dbp_wq_wait(g->coord, &g->h, now_ns(), 1);
    if (w != DBP_WQ_TIMEOUT) { /* ready, not queued, or our own thread's turn */
      g->woken = w == DBP_WQ_READY;
      break;
    }
    refused(g);
    g->reserving = 1;
    int more = xBusy(arg); /* sleeps through wg_sleep, which waits for us */
    g->reserving = 0;
    if (!more) break;
  }
}

/* SQLite lets WAL_WRITE_LOCK go. */
static __attribute__((noinline)) int write_unlock(writer_gate *g, int n, int flags)
{
  uint32_t change, frames;
  read_header(g, &change, &frames); /* still ours: nobody else writes it */
  int rc = real_shm_lock(g, WAL_WRITE_LOCK, n, flags);
  if (g->gated) { /* (gated: write_lock had the pool, which stays while gated) */
    /* (shm0 is mapped before any WAL lock; iChange changes with every
    ** commit, frames only guard its wrap-around) */
    int wrote = !g->shm0 || change != g->hdr_change || frames != g->hdr_frames; /* GCOVR_EXCL_BR_LINE */
    dbp_wq_done(g->coord, &g->h, wrote);
    if (!wrote) refused(g); /* a stale snapshot: the busy sleep that follows
                               waits (an empty transaction: no sleep follows;
                               and no read waits, slept stays set) */
  }
  g->gated = 0;
  return rc;
}

/* Every WAL lock goes through here: the read-mark path (every read
** transaction) is kept to a few instructions. */
int wg_shm_lock(writer_gate *g, int ofst, int n, int flags)
{
  if (ofst == WAL_WRITE_LOCK && (flags & SQLITE_SHM_EXCLUSIVE)) {
    if ((flags & SQLITE_SHM_LOCK) && n == 1) return write_lock(g);
    if (flags & SQLITE_SHM_UNLOCK) return write_unlock(g, n, flags);
  }
  /* (SQLite's WAL lock offsets end at WAL_READ_LAST: SQLITE_SHM_NLOCK 8) */
  if (n == 1 && ofst >= WAL_READ_FIRST && !(flags & SQLITE_SHM_EXCLUSIVE)) {
    unsigned bit = 1u << (ofst - WAL_READ_FIRST);
    if (flags & SQLITE_SHM_UNLOCK) {
      g->read_marks &= ~bit;
    } else {
      if (g->read_marks == 0 && g->coord && !g->slept) wait_before_read(g);
      int rc = real_shm_lock(g, ofst, n, flags);
      if (rc == SQLITE_OK) g->read_marks |= bit;
      return rc;
    }
  }
  return real_shm_lock(g, ofst, n, flags);
}

static int gate_open(writer_gate *g)
{
  pthread_mutex_lock(&g_mu);
  writer_gate *p = g_gates;
  while (p && p != g) p = p->next;
  pthread_mutex_unlock(&g_mu);
  return p != NULL;
}

int wg_sleep(sqlite3_vfs *root, int us)
{
  writer_gate *g = t_refused;
  /* Only a busy handler's whole-millisecond sleep right after a refusal
  ** waits for the turn; WAL's own microsecond back-offs pass through. */
  if (!g || us < 1000 || us % 1000 != 0 || !gate_open(g) || !g->coord ||
      !pthread_equal(__atomic_load_n(&g->refused_by, __ATOMIC_RELAXED), pthread_self()))
    return root->xSleep(root, us);
  g->slept = 1;
  if (g->lock_busy) return root->xSleep(root, us);
  /* The busy handler sleeps because we refused this writer: it waits for
  ** its turn even if its place expired meanwhile (a slow thread). */
  dbp_wq_requeue(g->coord, &g->h);
  int64_t deadline = now_ns() + (int64_t)us * 1000;
  int w = dbp_wq_wait(g->coord, &g->h, deadline, g->reserving);
  g->woken = w == DBP_WQ_READY;
  if (w == DBP_WQ_OWN) { /* sleep as SQLite asked: the turn is our thread's */
    int64_t left = (deadline - now_ns()) / 1000;
    if (left > 0) root->xSleep(root, (int)left);
  }
  return us;
}
