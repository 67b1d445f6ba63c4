/*
** conn.c -- opening, checking, resetting and closing pooled connections.
**
** A connection is opened only with a host slot in hand: the entry's holder
** acquires one (waiting FIFO with every other process), then sqlite3_open_v2
** opens the file by URI. If this process loaded the SQLite extension, it is
** told first, in process (ext/pooled.h), that the connection's slot is
** already counted. init_sql runs once; any failure closes the connection
** and gives the slot back.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pool_internal.h"
#include "ext/pooled.h"

/* "file:" + the path percent-encoded, so that '?', '#' and '%' in file names
** survive. */
char *conn_uri(const char *path)
{
  static const char keep[] = "-._~/";
  size_t n = strlen(path);
  char *out = malloc(5 + 3 * n + 1), *o = out;
  if (!out) return NULL;
  o += sprintf(o, "file:");
  for (const unsigned char *s = (const unsigned char *)path; *s; s++) {
    if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
        (*s >= '0' && *s <= '9') || strchr(keep, *s))
      *o++ = (char)*s;
    else
      o += sprintf(o, "%%%02X", *s);
  }
  *o = 0;
  return out;
}

/* The SQLite extension's hook, if this process's SQLite has it loaded. */
static const dbp_pooled_hook *pooled_hook(void)
{
  sqlite3_vfs *v = sqlite3_vfs_find(DBP_POOLED_VFS);
  const dbp_pooled_hook *h = v ? v->pAppData : NULL;
  return h && h->magic == DBP_POOLED_MAGIC && h->version >= 1 ? h : NULL;
}

/* sqlite3_open_v2 of the pool's database by a holder of a slot. */
static int open_counted(dbpool *p, dbpool_holder *holder, sqlite3 **db)
{
  const dbp_pooled_hook *hook = pooled_hook();
  if (hook)
    hook->expect(dbpool_coord_segment_name(dbp_holder_coord(holder)),
                 dbp_holder_record(holder));
  int rc = sqlite3_open_v2(p->uri, db, p->cfg.open_flags | SQLITE_OPEN_URI, p->vfs);
  if (hook) hook->expect(NULL, 0);
  return rc;
}

/* Give entry e a new holder in pool c. The holder pointer is written under
** the pool lock: a release may read it there to wake this thread's host
** wait (the owning thread reads it without the lock: it wrote it). */
static int new_holder(dbpool *p, pool_entry *e, dbpool_coord *c)
{
  dbpool_holder *h = NULL;
  int rc = dbpool_holder_new(c, &h);
  if (rc == 0) dbp_holder_set_joined(h, DBPOOL_JOINED_C_POOL);
  pool_lock_acquire(&p->lock);
  dbpool_holder *old = e->holder;
  e->holder = h;
  e->idle_word = h ? dbp_holder_flags_word(h) : NULL;
  if (h && e->open_cancelled) dbpool_holder_cancel(h); /* the old one's */
  pool_lock_release(&p->lock);
  dbpool_holder_free(old);
  return rc;
}

/* The host pool was removed (dbpoolctl rm --force): join the new one. The
** old attachment stays open until the pool closes (holders of other entries,
** and the housekeeper, may still use it). */
static int rejoin(dbpool *p, pool_entry *e)
{
  pool_lock_acquire(&p->lock);
  int rc = 0;
  if (!e->holder || dbp_holder_coord(e->holder) == p->coord) {
    dbpool_coord *fresh;
    int keep = (int)(sizeof p->retired / sizeof *p->retired);
    rc = p->nretired < keep
             ? dbpool_coord_open(p->path, 0, &fresh)
             : dbp_err(-ENOSPC, "dbpool: the host pool of %s was removed %d times while "
                       "this pool was open; close and reopen the pool", p->path, keep + 1);
    if (rc == 0) {
      p->retired[p->nretired++] = p->coord;
      p->coord = fresh;
      p->host_waiting = dbp_coord_waiting_word(fresh);
    }
  }
  dbpool_coord *now = p->coord;
  pool_lock_release(&p->lock);
  return rc ? rc : new_holder(p, e, now);
}

int conn_open(dbpool *p, pool_entry *e, int timeout_ms)
{
  int rc;
  if (!e->holder) {
    pool_lock_acquire(&p->lock);
    dbpool_coord *c = p->coord;
    pool_lock_release(&p->lock);
    rc = new_holder(p, e, c);
    if (rc == -ESTALE) rc = rejoin(p, e);
    if (rc) return dbp_sqlite_rc(rc, SQLITE_CANTOPEN); /* message set */
  }
  rc = dbpool_holder_acquire(e->holder, timeout_ms);
  if (rc == -ESTALE) {
    rc = rejoin(p, e);
    if (rc == 0) rc = dbpool_holder_acquire(e->holder, timeout_ms);
  }
  if (rc) return dbp_sqlite_rc(rc, SQLITE_CANTOPEN); /* message set */

  sqlite3 *db = NULL;
  rc = open_counted(p, e->holder, &db);
  if (rc == SQLITE_OK && p->init_sql) {
    char *msg = NULL;
    rc = sqlite3_exec(db, p->init_sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK) {
      dbp_err(rc, "dbpool: init_sql failed on a new connection to %s: %s",
               p->path, msg ? msg : sqlite3_errstr(rc));
      sqlite3_free(msg);
    }
  } else if (rc != SQLITE_OK) {
    dbp_err(rc, "dbpool: cannot open %s: %s", p->path,
             db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  }
  if (rc != SQLITE_OK) {
    sqlite3_close_v2(db);
    dbpool_holder_release(e->holder);
    return rc;
  }
  int64_t now = pool_mono_ms();
  e->db = db;
  e->retire = e->leak_reported = false;
  e->expires_ms = 0;
  if (p->cfg.max_lifetime_ms > 0) {
    /* Up to 2.5% shorter, so that connections opened together do not all
    ** expire together. */
    int64_t life = p->cfg.max_lifetime_ms;
    e->expires_ms = now + life - (int64_t)(rand() % (int)(life / 40 + 1));
  }
  e->checkout_ms = now;
  e->hk_idle_seen_ms = 0; /* a new connection: its idle clock starts over */
  return SQLITE_OK;
}

/* Would releasing db leave anything behind: a transaction, or a statement
** not reset? Cheap: no mutex with SQLITE_OPEN_NOMUTEX, no system call. */
int conn_needs_reset(sqlite3 *db)
{
  if (!sqlite3_get_autocommit(db)) return 1;
  for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
    if (sqlite3_stmt_busy(s)) return 1;
  return 0;
}

/* Reset running statements and roll back. Returns 0 if clean after. */
int conn_reset(sqlite3 *db)
{
  for (sqlite3_stmt *s = sqlite3_next_stmt(db, NULL); s; s = sqlite3_next_stmt(db, s))
    if (sqlite3_stmt_busy(s)) sqlite3_reset(s);
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return conn_needs_reset(db);
}

/* Was the database file moved, deleted or replaced under the connection? */
int conn_has_moved(sqlite3 *db)
{
  int moved = 0;
  if (sqlite3_file_control(db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
    return 0;
  return moved;
}

/* The optional validation query: 0 if it succeeded. */
int conn_validate(dbpool *p, sqlite3 *db)
{
  return sqlite3_exec(db, p->validation_sql, NULL, NULL, NULL) != SQLITE_OK;
}

/* Close e's connection and give its slot back. Outside the mutex; the entry
** is in state CLOSING and owned by the caller. */
void conn_close(dbpool *p, pool_entry *e)
{
  (void)p;
  if (e->db) sqlite3_close_v2(e->db);
  e->db = NULL;
  if (dbpool_holder_held(e->holder)) dbpool_holder_release(e->holder);
}

/* Under the mutex: account for closing entry idx, already taken off the
** idle stack or out of ENTRY_OUT by the caller, which then calls conn_close
** outside the mutex and marks it EMPTY. */
void entry_retire_locked(dbpool *p, int idx, close_reason why)
{
  pool_entry *e = &p->entries[idx];
  e->state = ENTRY_CLOSING;
  if (e->db) map_del(p, e->db);
  p->st.closed++;
  switch (why) {
  case CLOSE_IDLE: p->st.closed_idle++; break;
  case CLOSE_LIFETIME: p->st.closed_lifetime++; break;
  case CLOSE_BROKEN: p->st.closed_broken++; break;
  case CLOSE_RESET_FAILED: p->st.closed_reset_failed++; break;
  case CLOSE_GIVEN_BACK: p->st.closed_given_back++; break;
  case CLOSE_POOL_CLOSE: p->st.closed_pool_close++; break;
  }
}
