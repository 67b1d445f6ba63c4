/*
** pooled.h -- how dbpool's in-process C pool (libdbpool) tells the SQLite
** extension (dbpool.so) that the connection it is about to open already
** holds a slot, so that the extension does not count it a second time.
**
** The two are separate libraries (dbpool.so carries its own hidden copy of
** the coordinator), and the message must not be one that a URI, the
** environment or SQL could forge: it travels through the process's SQLite.
** The extension's VFS shim, registered as "dbpool", points pAppData at a
** dbp_pooled_hook. The C pool finds it with sqlite3_vfs_find("dbpool"),
** calls expect(segment, record) on the thread that then calls sqlite3_open_v2,
** and expect(NULL, 0) once that returns. The extension's automatic
** extension runs inside that sqlite3_open_v2, on the same thread: it takes
** the mark (a thread-local of dbpool.so) if the database's pool is that
** segment, and counts the connection as that record's slot.
**
** Plain C: included by code built against sqlite3.h and sqlite3ext.h alike.
*/
#ifndef DBPOOL_POOLED_H
#define DBPOOL_POOLED_H

#define DBP_POOLED_VFS "dbpool"
#define DBP_POOLED_MAGIC 0x6462706cu /* "dbpl" */

typedef struct dbp_pooled_hook {
  unsigned magic;   /* DBP_POOLED_MAGIC */
  unsigned version; /* 1 */
  /* The next connection this thread opens to the pool named segment is
  ** the holder with record number record, whose slot is already
  ** acquired; segment NULL withdraws the mark. */
  void (*expect)(const char *segment, unsigned record);
} dbp_pooled_hook;

#endif
