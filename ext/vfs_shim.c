/*
** vfs_shim.c -- the VFS "dbpool": a pass-through shim over the default VFS
** that answers PRAGMA dbpool_* on every database file opened through it.
** Loading the extension makes it the default VFS, so every connection the
** process opens afterwards goes through it.
**
**   .load ./build/dbpool
**   .open app.db
**   PRAGMA dbpool_max_connections;          -- 10
**   PRAGMA dbpool_max_connections = 20;     -- 20, host-wide, at once
**   PRAGMA dbpool_acquire_timeout_ms = 2000;
**   PRAGMA dbpool_paused = 1;
**   PRAGMA dbpool_stats;                    -- a one-line summary
**   PRAGMA dbpool_writer_queue = off;       -- writers stop taking turns
**
** Pragmas reach the shim through SQLITE_FCNTL_PRAGMA on the file of the
** schema named (main by default). An unknown PRAGMA dbpool_* name is an
** error (SQLite itself ignores unknown pragmas silently). Reading and
** setting both return one row: the value in effect.
**
** LIMITATIONS
**   - Connections opened before the extension was loaded (the loading
**     connection too), or with an explicit other VFS, do not see these
**     pragmas (pool_settings works on every connection dbpool counts).
*/
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "ext.h"
#include "writer_gate.h"
#include "pooled.h"
SQLITE_EXTENSION_INIT3

typedef struct shim_file {
  sqlite3_file base;
  dbx_conn *tables_for; /* whose tables to register at the first use */
  int used;             /* locked, sized or mapped since opened */
  sqlite3_file *real;   /* the root VFS's file, allocated right after us */
  const char *zName;    /* valid until xClose (SQLite's guarantee) */
  dbpool_coord *coord;  /* the file's pool, opened at the first pragma */
  dbx_conn *conn;    /* the connection's state (bound after it is
                           attached; it outlives the file: SQLite closes
                           the file before it destroys the SQL objects) */
  writer_gate wg;       /* writers take turns (writer_gate.c) */
  dbp_file_id opened;   /* the file SQLite opened (mode 0: unknown) */
} shim_file;

static sqlite3_vfs *g_root;
static sqlite3_vfs g_shim;

#define REAL(f) (((shim_file *)(f))->real)

/*
** What SQLite's unix VFS learns anyway. It fstat()s a main database file
** right after opening it and again while closing it (to warn of a file
** deleted while open). As the root VFS's "fstat" system call (installed
** with xSetSystemCall, only where nobody else replaced it), a statx of the
** same descriptor answers SQLite and, while the shim opens or closes a main
** database on this thread, keeps what it saw: the identity of the file
** actually opened (the pool's key, without a stat of its name) and whether
** it still has a name when closed (without an fstat of our own). A file
** whose open or close saw nothing is stat'ed as before.
*/
static int g_fstat_installed;
static __thread dbp_file_id *t_capture; /* where the next fstat is kept */

static int capturing_fstat(int fd, struct stat *st)
{
  struct statx sx;
  if (!t_capture) return fstat(fd, st);
  if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
            STATX_BASIC_STATS | STATX_BTIME, &sx) != 0)
    return errno == ENOSYS || errno == EPERM ? fstat(fd, st) : -1;
  memset(st, 0, sizeof *st);
  st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
  st->st_ino = sx.stx_ino;
  st->st_mode = sx.stx_mode;
  st->st_nlink = sx.stx_nlink;
  st->st_uid = sx.stx_uid;
  st->st_gid = sx.stx_gid;
  st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
  st->st_size = (off_t)sx.stx_size;
  st->st_blksize = (blksize_t)sx.stx_blksize;
  st->st_blocks = (blkcnt_t)sx.stx_blocks;
  st->st_atim = (struct timespec){sx.stx_atime.tv_sec, sx.stx_atime.tv_nsec};
  st->st_mtim = (struct timespec){sx.stx_mtime.tv_sec, sx.stx_mtime.tv_nsec};
  st->st_ctim = (struct timespec){sx.stx_ctime.tv_sec, sx.stx_ctime.tv_nsec};
  /* The first is the one kept (the later ones are of the same descriptor). */
  if (dbp_file_id_from_statx(&sx, t_capture) != 0) t_capture->mode = 0; /* unknown */
  t_capture = NULL;
  return 0;
}

static void install_fstat(sqlite3_vfs *root)
{
  if (root->iVersion < 3 || !root->xGetSystemCall || !root->xSetSystemCall) return;
  if (root->xGetSystemCall(root, "fstat") != (sqlite3_syscall_ptr)fstat) return;
  g_fstat_installed =
      root->xSetSystemCall(root, "fstat", (sqlite3_syscall_ptr)capturing_fstat) == SQLITE_OK;
}

static void uninstall_fstat(sqlite3_vfs *root)
{
  if (g_fstat_installed && root->xGetSystemCall(root, "fstat") ==
                               (sqlite3_syscall_ptr)capturing_fstat)
    root->xSetSystemCall(root, "fstat", (sqlite3_syscall_ptr)fstat);
  g_fstat_installed = 0;
}

static int same_file(const dbp_file_id *a, const dbp_file_id *b)
{
  return a->dev == b->dev && a->ino == b->ino && a->birth == b->birth;
}

/*
** Deferred tables. SQLite finds an eponymous table by name only after it
** has read the schema (sqlite3LocateTable reads it first), and PRAGMA
** module_list is preceded by SQLITE_FCNTL_PRAGMA: each begins with a call
** on the main database file. So the first read, lock, size, mapping or
** file control of a file bound with deferred tables registers them, on
** the connection's own thread and under its mutex (SQLite holds it around
** every call into the pager). An open that is closed unused (a request
** of an open-per-request application) never pays for them.
*/
static void __attribute__((noinline)) register_deferred(shim_file *p)
{
  dbx_conn *conn = p->tables_for;
  if (dbx_register_tables(conn->db, conn) == SQLITE_OK) p->tables_for = NULL;
  /* else out of memory: tried again at the next call */
}

static inline void use(shim_file *p)
{
  if (__builtin_expect(p->tables_for != NULL, 0)) register_deferred(p);
}

/* What reading the schema needs first (a lock, the file's size, the WAL
** index): until one of these happened the connection has seen no schema.
** (Opening reads the header and passes hints, before it has a connection.) */
static inline void use_for_schema(shim_file *p)
{
  use(p);
  p->used = 1;
}

static int shim_close(sqlite3_file *f)
{
  shim_file *p = (shim_file *)f;
  dbp_file_id closing;
  closing.mode = 0;
  wg_close(&p->wg);
  if (p->conn && p->opened.mode) t_capture = &closing;
  int rc = p->real->pMethods ? p->real->pMethods->xClose(p->real) : SQLITE_OK;
  t_capture = NULL;
  if (closing.mode && same_file(&closing, &p->opened))
    p->conn->file_linked = closing.nlink > 0; /* its holder leaves next */
  dbpool_coord_close(p->coord);
  p->coord = NULL;
  p->conn = NULL;
  p->tables_for = NULL;
  return rc;
}

static int shim_read(sqlite3_file *f, void *buf, int n, sqlite3_int64 off)
{
  use((shim_file *)f);
  return REAL(f)->pMethods->xRead(REAL(f), buf, n, off);
}

static int shim_write(sqlite3_file *f, const void *buf, int n, sqlite3_int64 off)
{
  return REAL(f)->pMethods->xWrite(REAL(f), buf, n, off);
}

static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
  return REAL(f)->pMethods->xTruncate(REAL(f), size);
}

static int shim_sync(sqlite3_file *f, int flags)
{
  return REAL(f)->pMethods->xSync(REAL(f), flags);
}

static int shim_file_size(sqlite3_file *f, sqlite3_int64 *size)
{
  use_for_schema((shim_file *)f);
  return REAL(f)->pMethods->xFileSize(REAL(f), size);
}

/* A transaction starts (SHARED from no lock): if the connection's pool was
** removed meanwhile, its slot moves to the new pool first. */
static int shim_lock(sqlite3_file *f, int level)
{
  shim_file *p = (shim_file *)f;
  use_for_schema(p);
  wg_lock(&p->wg, level);
  if (level == SQLITE_LOCK_SHARED && p->conn) dbx_conn_follow(p->conn);
  return REAL(f)->pMethods->xLock(REAL(f), level);
}

static int shim_unlock(sqlite3_file *f, int level)
{
  return REAL(f)->pMethods->xUnlock(REAL(f), level);
}

static int shim_check_reserved(sqlite3_file *f, int *out)
{
  use_for_schema((shim_file *)f);
  return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}

/* A pragma's error: msg (sqlite3_malloc'd) in az[0]; no memory for it is
** SQLITE_NOMEM, whatever the error was. */
static int pragma_error(char **az, int rc, char *msg)
{
  az[0] = msg;
  return msg ? rc : SQLITE_NOMEM;
}

/* PRAGMA dbpool_<setting> [= value] and PRAGMA dbpool_stats. az[1] is the
** name, az[2] the value or NULL; the answer or the error goes in az[0]. */
static int shim_pragma(shim_file *p, char **az)
{
  const char *name = az[1], *arg = az[2];
  if (sqlite3_strnicmp(name, "dbpool_", 7) != 0) return SQLITE_NOTFOUND;
  const char *what = name + 7;
  if (p->conn) dbx_conn_follow(p->conn);
  if (p->coord && dbp_coord_removed(p->coord)) { /* rm --force: the new pool */
    dbpool_coord_close(p->coord);
    p->coord = NULL;
  }
  if (!p->coord) {
    int rc = dbpool_coord_open(p->zName, 0, &p->coord);
    if (rc)
      return pragma_error(az, dbp_sqlite_rc(rc, SQLITE_ERROR),
                          sqlite3_mprintf("%s", dbpool_last_error()));
  }
  if (sqlite3_stricmp(what, "stats") == 0) {
    if (arg)
      return pragma_error(az, SQLITE_ERROR, sqlite3_mprintf("dbpool: PRAGMA dbpool_stats "
                                                            "takes no value"));
    return dbx_stats_summary(p->coord, &az[0]);
  }
  int s = -1;
  for (int i = 0; i < DBPOOL_SETTING_COUNT; i++)
    if (sqlite3_stricmp(what, dbpool_setting_describe(i)->name) == 0) s = i;
  if (s < 0)
    return pragma_error(az, SQLITE_ERROR,
                        sqlite3_mprintf("dbpool: unknown pragma '%s' (pragmas: "
                                        "dbpool_acquire_timeout_ms, dbpool_max_connections, "
                                        "dbpool_paused, dbpool_stats, dbpool_writer_queue, "
                                        "dbpool_writer_starvation_ms)", name));
  if (!arg) {
    int64_t v;
    if (dbpool_coord_get(p->coord, s, &v) != 0)
      return pragma_error(az, SQLITE_ERROR, sqlite3_mprintf("%s", dbpool_last_error()));
    az[0] = sqlite3_mprintf("%lld", (long long)v);
    return az[0] ? SQLITE_OK : SQLITE_NOMEM;
  }
  /* Answered with the new value: a pragma that returns SQLITE_OK must name
  ** its column (clients such as Python fail on a NULL column name). */
  return dbx_set_setting_text(p->coord, s, arg, &az[0]);
}

static int shim_file_control(sqlite3_file *f, int op, void *arg)
{
  shim_file *p = (shim_file *)f;
  use(p);
  wg_file_control(&p->wg, op, arg);
  if (op == SQLITE_FCNTL_PRAGMA && p->zName) {
    int rc = shim_pragma(p, (char **)arg);
    if (rc != SQLITE_NOTFOUND) return rc;
  }
  int rc = p->real->pMethods->xFileControl(p->real, op, arg);
  if (op == SQLITE_FCNTL_VFSNAME && rc == SQLITE_OK) /* shims stack names */
    *(char **)arg = sqlite3_mprintf("dbpool/%z", *(char **)arg);
  return rc;
}

static int shim_sector_size(sqlite3_file *f)
{
  return REAL(f)->pMethods->xSectorSize(REAL(f));
}

static int shim_device_characteristics(sqlite3_file *f)
{
  return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}

static int shim_shm_map(sqlite3_file *f, int pg, int pgsz, int extend, void volatile **pp)
{
  use_for_schema((shim_file *)f);
  int rc = REAL(f)->pMethods->xShmMap(REAL(f), pg, pgsz, extend, pp);
  if (rc == SQLITE_OK) wg_shm_map(&((shim_file *)f)->wg, pg, *pp);
  return rc;
}

static int shim_shm_lock(sqlite3_file *f, int offset, int n, int flags)
{
  return wg_shm_lock(&((shim_file *)f)->wg, offset, n, flags);
}

static void shim_shm_barrier(sqlite3_file *f)
{
  REAL(f)->pMethods->xShmBarrier(REAL(f));
}

static int shim_shm_unmap(sqlite3_file *f, int delete_flag)
{
  wg_shm_unmap(&((shim_file *)f)->wg);
  return REAL(f)->pMethods->xShmUnmap(REAL(f), delete_flag);
}

static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int amt, void **pp)
{
  use_for_schema((shim_file *)f);
  return REAL(f)->pMethods->xFetch(REAL(f), off, amt, pp);
}

static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
  return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

/* One method table per io_methods version, so that we never offer a method
** the real file lacks. */
#define SHIM_METHODS(version)                                                 \
  {                                                                           \
    version, shim_close, shim_read, shim_write, shim_truncate, shim_sync,     \
        shim_file_size, shim_lock, shim_unlock, shim_check_reserved,          \
        shim_file_control, shim_sector_size, shim_device_characteristics,     \
        version >= 2 ? shim_shm_map : 0, version >= 2 ? shim_shm_lock : 0,    \
        version >= 2 ? shim_shm_barrier : 0,                                  \
        version >= 2 ? shim_shm_unmap : 0, version >= 3 ? shim_fetch : 0,     \
        version >= 3 ? shim_unfetch : 0                                       \
  }
static const sqlite3_io_methods shim_methods[3] = {
    SHIM_METHODS(1), SHIM_METHODS(2), SHIM_METHODS(3)};

static int shim_open(sqlite3_vfs *vfs, const char *zName, sqlite3_file *f,
                     int flags, int *out_flags)
{
  shim_file *p = (shim_file *)f;
  (void)vfs;
  /* Journals, WAL and temporary files need no pragmas: open them as the
  ** root VFS's own files (szOsFile leaves room), with no shim in the way. */
  if (!(flags & SQLITE_OPEN_MAIN_DB))
    return g_root->xOpen(g_root, zName, f, flags, out_flags);
  memset(p, 0, sizeof *p);
  p->real = (sqlite3_file *)&p[1];
  if (g_fstat_installed) t_capture = &p->opened;
  int rc = g_root->xOpen(g_root, zName, p->real, flags, out_flags);
  t_capture = NULL;
  if (rc != SQLITE_OK || !p->real->pMethods) {
    f->pMethods = NULL;
    return rc;
  }
  p->zName = zName;
  wg_open(&p->wg, zName, p->real);
  int v = p->real->pMethods->iVersion;
  f->pMethods = &shim_methods[(v < 1 ? 1 : v > 3 ? 3 : v) - 1];
  return SQLITE_OK;
}

static int shim_delete(sqlite3_vfs *v, const char *z, int sync)
{
  (void)v;
  return g_root->xDelete(g_root, z, sync);
}

static int shim_access(sqlite3_vfs *v, const char *z, int flags, int *out)
{
  (void)v;
  return g_root->xAccess(g_root, z, flags, out);
}

static int shim_full_pathname(sqlite3_vfs *v, const char *z, int n, char *out)
{
  (void)v;
  return g_root->xFullPathname(g_root, z, n, out);
}

static void *shim_dlopen(sqlite3_vfs *v, const char *z)
{
  (void)v;
  return g_root->xDlOpen(g_root, z);
}

static void shim_dlerror(sqlite3_vfs *v, int n, char *z)
{
  (void)v;
  g_root->xDlError(g_root, n, z);
}

static void (*shim_dlsym(sqlite3_vfs *v, void *h, const char *z))(void)
{
  (void)v;
  return g_root->xDlSym(g_root, h, z);
}

static void shim_dlclose(sqlite3_vfs *v, void *h)
{
  (void)v;
  g_root->xDlClose(g_root, h);
}

static int shim_randomness(sqlite3_vfs *v, int n, char *z)
{
  (void)v;
  return g_root->xRandomness(g_root, n, z);
}

static int shim_sleep(sqlite3_vfs *v, int us)
{
  (void)v;
  return wg_sleep(g_root, us); /* a refused writer waits for its turn here */
}

static int shim_current_time(sqlite3_vfs *v, double *t)
{
  (void)v;
  return g_root->xCurrentTime(g_root, t);
}

static int shim_get_last_error(sqlite3_vfs *v, int n, char *z)
{
  (void)v;
  return g_root->xGetLastError ? g_root->xGetLastError(g_root, n, z) : 0;
}

static int shim_current_time_int64(sqlite3_vfs *v, sqlite3_int64 *t)
{
  (void)v;
  return g_root->xCurrentTimeInt64(g_root, t);
}

static int shim_set_system_call(sqlite3_vfs *v, const char *z, sqlite3_syscall_ptr f)
{
  (void)v;
  return g_root->xSetSystemCall(g_root, z, f);
}

static sqlite3_syscall_ptr shim_get_system_call(sqlite3_vfs *v, const char *z)
{
  (void)v;
  return g_root->xGetSystemCall(g_root, z);
}

static const char *shim_next_system_call(sqlite3_vfs *v, const char *z)
{
  (void)v;
  return g_root->xNextSystemCall(g_root, z);
}

shim_file *dbx_vfs_main_file(sqlite3 *db)
{
  sqlite3_file *f = NULL;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) != SQLITE_OK || !f)
    return NULL;
  for (int i = 0; i < 3; i++)
    if (f->pMethods == &shim_methods[i]) return (shim_file *)f;
  return NULL;
}

const dbp_file_id *dbx_vfs_opened(const shim_file *f)
{
  return f && f->opened.mode ? &f->opened : NULL;
}

int dbx_vfs_may_defer(const shim_file *f)
{
  return !f->used && !f->conn;
}

void dbx_vfs_bind(shim_file *f, dbx_conn *conn, int defer_tables)
{
  if (f->tables_for && f->tables_for != conn) {
    /* A second connection shares the file (shared cache): later calls on
    ** it may come from either connection's thread, so the first one's
    ** tables are registered now (under its own mutex, which the API takes). */
    register_deferred(f);
    f->tables_for = NULL;
  }
  f->conn = conn;
  f->wg.h.record = conn->record;
  if (defer_tables) f->tables_for = conn;
}

int dbx_vfs_install(void)
{
  sqlite3_vfs *root = sqlite3_vfs_find(NULL);
  if (!root) return SQLITE_ERROR;
  if (root == &g_shim) return SQLITE_OK;
  g_root = root;
  install_fstat(root);
  memset(&g_shim, 0, sizeof g_shim);
  g_shim.iVersion = root->iVersion < 3 ? root->iVersion : 3;
  g_shim.szOsFile = (int)sizeof(shim_file) + root->szOsFile;
  g_shim.mxPathname = root->mxPathname;
  g_shim.zName = DBP_POOLED_VFS;
  g_shim.pAppData = (void *)&dbx_pooled; /* found by the C pool */
  g_shim.xOpen = shim_open;
  g_shim.xDelete = shim_delete;
  g_shim.xAccess = shim_access;
  g_shim.xFullPathname = shim_full_pathname;
  g_shim.xDlOpen = root->xDlOpen ? shim_dlopen : 0;
  g_shim.xDlError = root->xDlError ? shim_dlerror : 0;
  g_shim.xDlSym = root->xDlSym ? shim_dlsym : 0;
  g_shim.xDlClose = root->xDlClose ? shim_dlclose : 0;
  g_shim.xRandomness = shim_randomness;
  g_shim.xSleep = shim_sleep;
  g_shim.xCurrentTime = shim_current_time;
  g_shim.xGetLastError = shim_get_last_error;
  if (g_shim.iVersion >= 2) g_shim.xCurrentTimeInt64 = shim_current_time_int64;
  if (g_shim.iVersion >= 3) {
    g_shim.xSetSystemCall = shim_set_system_call;
    g_shim.xGetSystemCall = shim_get_system_call;
    g_shim.xNextSystemCall = shim_next_system_call;
  }
  return sqlite3_vfs_register(&g_shim, 1);
}

int dbx_vfs_other_copy(void)
{
  sqlite3_vfs *named = sqlite3_vfs_find("dbpool");
  return named && named != &g_shim;
}

void dbx_vfs_uninstall(void)
{
  if (g_root) {
    uninstall_fstat(g_root);
    sqlite3_vfs_unregister(&g_shim);
    sqlite3_vfs_register(g_root, 1);
  }
}
