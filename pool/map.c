/*
** map.c -- which entry a sqlite3* handle belongs to, so that release finds
** it in a few ns whatever the pool's size: open addressing with linear
** probing, at most a quarter full, backward-shift deletion (no tombstones).
** Guarded by the pool mutex.
*/
#include <stdint.h>
#include <stdlib.h>

#include "pool_internal.h"


int map_init(dbpool *p)
{
  unsigned cap = 16;
  while (cap < 4u * (unsigned)p->cfg.max_size) cap <<= 1;
  p->map = calloc(cap, sizeof *p->map);
  p->map_mask = cap - 1;
  return p->map ? 0 : -1;
}

void map_put(dbpool *p, sqlite3 *db, int idx)
{
  unsigned i = map_slot_of(p, db);
  while (p->map[i].db && p->map[i].db != db) i = (i + 1) & p->map_mask;
  p->map[i].db = db;
  p->map[i].idx = idx;
}

void map_del(dbpool *p, sqlite3 *db)
{
  unsigned i = map_slot_of(p, db);
  while (p->map[i].db != db) {
    if (!p->map[i].db) return;
    i = (i + 1) & p->map_mask;
  }
  /* Shift later members of the cluster back into the hole. */
  for (unsigned j = (i + 1) & p->map_mask; p->map[j].db; j = (j + 1) & p->map_mask) {
    unsigned home = map_slot_of(p, p->map[j].db);
    if (((j - home) & p->map_mask) >= ((j - i) & p->map_mask)) {
      p->map[i] = p->map[j];
      i = j;
    }
  }
  p->map[i].db = NULL;
}
