/*
 * tests/unit/mem/segment_test.c: segments and spans: alignment and tags, lazy commit per
 * span, a wholly free span becomes DIRTY and is released with madvise, large mappings, and
 * re-initialisation after mem_fini().
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/segment.h"
#include "mem/stats.h"
#include "tests/harness.h"

static mem_stats_t st;

TEST(span_carving)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(1000); /* 1024 B: 64 per span */
    size_t c0 = mem_budget_committed();
    void *o[64];
    REQUIRE(mem__span_take(n, c, o, 64) == 64);
    mem__seghdr_t *h = mem__seghdr_of(o[0]);
    CHECK(((uintptr_t)h & MEM_SEG_MASK) == 0);
    CHECK(h->magic == MEM_SEG_MAGIC);
    CHECK_EQ(h->tag[0], MEM_TAG_META);
    unsigned idx = mem__span_idx(o[0]);
    CHECK(idx >= 1);
    CHECK_EQ(h->tag[idx], c);
    for (int i = 0; i < 64; i++) {
        CHECK(mem__seghdr_of(o[i]) == h);
        CHECK_EQ(mem__span_idx(o[i]), idx); /* one span holds exactly 64 */
        CHECK(((uintptr_t)o[i] & 1023) == 0);
    }
    /* One span (plus the header of a first segment) was committed. */
    size_t grew = mem_budget_committed() - c0;
    CHECK(grew == MEM_SPAN_SIZE || grew == MEM_SPAN_SIZE + ((mem_segment_t *)h)->meta_bytes);
    mem__span_give(n, c, o, 64);
    CHECK_EQ(h->tag[idx], MEM_TAG_FREE);
    CHECK_EQ(((mem_segment_t *)h)->spans[idx].state, MEM_SPAN_DIRTY);
    size_t rel = mem__node_release(n, UINT64_MAX);
    CHECK(rel >= MEM_SPAN_SIZE);
    CHECK_EQ(((mem_segment_t *)h)->spans[idx].state, MEM_SPAN_CLEAN);
    CHECK(mem_budget_committed() <= c0 + ((mem_segment_t *)h)->meta_bytes);
}

TEST(dirty_span_reused_before_clean)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(4096);
    void *o[16];
    REQUIRE(mem__span_take(n, c, o, 16) == 16);
    unsigned idx = mem__span_idx(o[0]);
    mem__span_give(n, c, o, 16);
    size_t c0 = mem_budget_committed();
    unsigned c2 = mem_sc_of(48);
    void *q[4];
    REQUIRE(mem__span_take(n, c2, q, 4) == 4);
    CHECK_EQ(mem__span_idx(q[0]), idx); /* the dirty span, re-carved: no new commitment */
    CHECK_EQ(mem_budget_committed(), c0);
    mem__span_give(n, c2, q, 4);
}

TEST(large_mapping)
{
    size_t c0 = mem_budget_committed();
    char *p = mem_malloc(5 << 20);
    REQUIRE(p);
    mem__seghdr_t *h = mem__seghdr_of(p);
    CHECK_EQ(h->tag[0], MEM_TAG_LARGE);
    CHECK_EQ(h->tag[mem__span_idx(p)], MEM_TAG_LARGE);
    CHECK(mem_usable_size(p) >= (5u << 20));
    CHECK(mem_budget_committed() - c0 >= (5u << 20));
    mem_stats_snapshot(&st);
    CHECK_EQ(st.large_cnt, 1);
    CHECK(st.large_live >= (5u << 20));
    p[0] = 1;
    p[(5 << 20) - 1] = 2;
    mem_free(p);
    CHECK_EQ(mem_budget_committed(), c0);
    mem_stats_snapshot(&st);
    CHECK_EQ(st.large_cnt, 0);
}

TEST(reinit)
{
    void *p = mem_malloc(10);
    mem_free(p);
    CHECK_EQ(mem_fini(), 0);
    CHECK(!mem_is_initialised());
    CHECK_EQ(mem_budget_committed(), 0);
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.sample_bytes = 0;
    REQUIRE(mem_init(&cfg) == 0);
    p = mem_malloc(10);
    CHECK(p != NULL);
    mem_free(p);
}

/* Every test ends with zero live bytes: mem_fini() reports what is still live. */
TEST(fini_nothing_live)
{
    CHECK_EQ(mem_fini(), 0);
}

int main(void)
{
    mem_config_t cfg;
    mem_config_default(&cfg);
    cfg.sample_bytes = 0;
    if (mem_init(&cfg) != 0)
        return 1;
    RUN(span_carving);
    RUN(dirty_span_reused_before_clean);
    RUN(large_mapping);
    RUN(reinit);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
