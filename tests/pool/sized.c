/*
** sized.c -- the growable structs' rule (docs/c-api.md, "ABI stability"),
** with structs as an older or a newer program would pass them: a size below
** the first version is refused and nothing is written; a smaller struct
** gets only what fits (the bytes after it untouched); a larger one gets
** everything the library has, its own tail untouched, and size says how
** much was filled; arrays are strided by the element size the caller
** passes, the part the library does not know zeroed; the histogram takes a
** length. Structs the library hands out carry their size.
*/
#include "poolutil.h"

#define GUARD 0xA5
#define CONFIG_V1 DBP_END_OF(dbpool_config, on_leak_arg) /* pool/pool_internal.h */

/* A struct of `size` bytes followed by guard bytes, as a caller built with
** other headers would have it. */
typedef struct probe {
  unsigned char bytes[1024];
} probe;

static void *probe_init(probe *p, uint32_t size)
{
  memset(p->bytes, GUARD, sizeof p->bytes);
  memset(p->bytes, 0, size);
  memcpy(p->bytes, &size, sizeof size);
  return p->bytes;
}

static int untouched_from(const probe *p, size_t from)
{
  for (size_t i = from; i < sizeof p->bytes; i++)
    if (p->bytes[i] != GUARD) return 0;
  return 1;
}

static uint32_t size_of(const probe *p)
{
  uint32_t s;
  memcpy(&s, p->bytes, sizeof s);
  return s;
}

TEST(host_stats_size_below_the_first_version_is_refused)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(tu_db("small.db"), 0, &c) == 0);
  probe p;
  CHECK_RC(dbpool_coord_stats(c, probe_init(&p, 0)), -EINVAL);
  CHECK_HAS(dbpool_last_error(), "dbpool_host_stats.size is 0, smaller than its first version's");
  CHECK(untouched_from(&p, 4) && size_of(&p) == 0);
  CHECK_RC(dbpool_coord_stats(c, probe_init(&p, 8)), -EINVAL);
  CHECK(untouched_from(&p, 8));
  dbpool_writer_stats ws;
  memset(&ws, 0, sizeof ws);
  CHECK_RC(dbpool_coord_writer_stats(c, &ws), -EINVAL);
  CHECK_HAS(dbpool_last_error(), "set it with DBPOOL_INIT");
  dbpool_coord_close(c);
}

TEST(an_older_program_gets_what_fits_a_newer_one_everything)
{
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(tu_db("sizes.db"), 0, &c) == 0);
  REQUIRE(dbpool_coord_set(c, DBPOOL_SETTING_MAX_CONNECTIONS, 7) == 0);
  /* The first version exactly (what an older program's struct holds). */
  size_t v1 = DBP_V1_HOST_STATS;
  probe p;
  CHECK_RC(dbpool_coord_stats(c, probe_init(&p, (uint32_t)v1)), 0);
  CHECK(size_of(&p) == v1 && untouched_from(&p, v1));
  dbpool_host_stats st;
  memcpy(&st, p.bytes, v1);
  CHECK(st.max_connections == 7 && st.records_max == 8191);
  /* Newer headers with more members: the library fills what it has. */
  CHECK_RC(dbpool_coord_stats(c, probe_init(&p, (uint32_t)sizeof st + 64)), 0);
  CHECK(size_of(&p) == sizeof st && untouched_from(&p, sizeof st + 64));
  for (size_t i = sizeof st; i < sizeof st + 64; i++) CHECK(p.bytes[i] == 0);
  dbpool_coord_close(c);
}

TEST(arrays_use_the_callers_element_size)
{
  dbpool_coord *c;
  dbpool_holder *h[2];
  REQUIRE(dbpool_coord_open(tu_db("arrays.db"), 0, &c) == 0);
  for (int i = 0; i < 2; i++) {
    REQUIRE(dbpool_holder_new(c, &h[i]) == 0);
    REQUIRE(dbpool_holder_acquire(h[i], 0) == 0);
  }
  REQUIRE(dbpool_holder_set_label(h[1], "second") == 0);
  size_t big = sizeof(dbpool_holder_info) + 40;
  probe p;
  memset(p.bytes, GUARD, sizeof p.bytes);
  CHECK_RC(dbpool_coord_holders(c, (dbpool_holder_info *)(void *)p.bytes, 2, big), 2);
  dbpool_holder_info second;
  memcpy(&second, p.bytes + big, sizeof second);
  CHECK(second.pid == getpid());
  CHECK_STR(second.label, "second");
  for (size_t i = sizeof second; i < big; i++) CHECK(p.bytes[i] == 0); /* zeroed */
  CHECK(untouched_from(&p, 2 * big));
  CHECK_RC(dbpool_coord_holders(c, (dbpool_holder_info *)(void *)p.bytes, 2, 4), -EINVAL);
  CHECK_HAS(dbpool_last_error(), "pass sizeof buf[0]");
  CHECK_RC(dbpool_coord_writers(c, NULL, 0, 4), -EINVAL);
  CHECK_RC(dbpool_coord_writers(c, NULL, 0, sizeof(dbpool_writer_info)), 0);
  for (int i = 0; i < 2; i++) dbpool_holder_free(h[i]);
  dbpool_coord_close(c);
}

TEST(histogram_takes_a_length)
{
  dbpool_coord *c;
  dbpool_holder *h;
  REQUIRE(dbpool_coord_open(tu_db("hist.db"), 0, &c) == 0 && dbpool_holder_new(c, &h) == 0);
  REQUIRE(dbpool_holder_acquire(h, 0) == 0 && dbpool_holder_release(h) == 0);
  uint64_t counts[4] = {0, 0, 0, 777};
  CHECK_RC(dbpool_coord_histogram(c, counts, 3), DBPOOL_HIST_BUCKETS);
  CHECK(counts[0] == 1 && counts[3] == 777); /* one attempt, no wait; [3] left */
  CHECK_RC(dbpool_coord_histogram(c, NULL, 0), DBPOOL_HIST_BUCKETS);
  dbpool_holder_free(h);
  dbpool_coord_close(c);
}

TEST(pool_structs_follow_the_rule)
{
  const char *path = tu_db("pool.db");
  dbpool *pool = NULL;
  dbpool_config cfg;
  dbpool_config_init(&cfg);
  CHECK(cfg.size == sizeof cfg);
  cfg.size = 4;
  CHECK_SQ(dbpool_open(path, &cfg, &pool), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(NULL), "dbpool_config.size is 4, smaller than its first version's");
  CHECK_HAS(dbpool_errmsg(NULL), "set it with dbpool_config_init");
  CHECK(pool == NULL);
  /* A config that ends where the first version ends: the rest defaults. */
  probe p;
  dbpool_config_init(&cfg);
  cfg.max_size = 3;
  memcpy(probe_init(&p, (uint32_t)CONFIG_V1), &cfg, CONFIG_V1);
  memcpy(p.bytes, &(uint32_t){(uint32_t)CONFIG_V1}, 4);
  pool = pu_open(path, (const dbpool_config *)(const void *)p.bytes);
  dbpool_stats st;
  memset(&st, 0, sizeof st);
  CHECK_SQ(dbpool_get_stats(pool, &st), SQLITE_MISUSE);
  CHECK_HAS(dbpool_errmsg(pool), "dbpool_stats.size is 0");
  DBPOOL_INIT(&st);
  CHECK_SQ(dbpool_get_stats(pool, &st), SQLITE_OK);
  CHECK(st.max_size == 3 && st.size == sizeof st);
  dbpool_host_stats hs;
  DBPOOL_INIT(&hs);
  CHECK_SQ(dbpool_get_host_stats(pool, &hs), SQLITE_OK);
  hs.size = 2;
  CHECK_SQ(dbpool_get_host_stats(pool, &hs), SQLITE_MISUSE);
  CHECK_SQ(dbpool_close(pool), SQLITE_OK);
}

static int gc_seen_size(const dbpool_gc_entry *e, void *arg)
{
  *(uint32_t *)arg = e->size;
  return 0;
}

TEST(structs_handed_out_carry_their_size)
{
  CHECK(dbpool_setting_describe(DBPOOL_SETTING_PAUSED)->size == sizeof(dbpool_setting_info));
  dbpool_coord *c;
  REQUIRE(dbpool_coord_open(tu_db("gc.db"), 0, &c) == 0);
  dbpool_coord_close(c);
  uint32_t size = 0;
  CHECK(dbpool_coord_gc(1, gc_seen_size, &size) >= 0);
  CHECK(size == sizeof(dbpool_gc_entry));
}

int main(void)
{
  tu_init("pool-sized");
  RUN(host_stats_size_below_the_first_version_is_refused);
  RUN(an_older_program_gets_what_fits_a_newer_one_everything);
  RUN(arrays_use_the_callers_element_size);
  RUN(histogram_takes_a_length);
  RUN(pool_structs_follow_the_rule);
  RUN(structs_handed_out_carry_their_size);
  return tu_finish();
}
