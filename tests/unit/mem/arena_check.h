/*
 * tests/unit/mem/arena_check.h: the start and end checks shared by the region, sub-arena and
 * heap-profiler tests. begin() records the live bytes; end_clean() checks that no region,
 * sub-arena or region byte is left and that live bytes are back where they started.
 * Test-only; each test binary includes it once.
 */
#ifndef TESTS_UNIT_MEM_ARENA_CHECK_H
#define TESTS_UNIT_MEM_ARENA_CHECK_H

#include "mem/base.h"
#include "mem/stats.h"
#include "tests/harness.h"

static mem_stats_t st; /* large: not on the stack */
static uint64_t base_live;

MEM_UNUSED static void snap(void)
{
    mem_stats_snapshot(&st);
}

MEM_UNUSED static void begin(void)
{
    snap();
    base_live = st.live;
}

/* Every test ends here: no region, sub-arena or region byte left, live bytes back. */
MEM_UNUSED static void end_clean(void)
{
    snap();
    CHECK_EQ(st.regions_live, 0);
    CHECK_EQ(st.subregions_live, 0);
    CHECK_EQ(st.region_bytes, 0);
    CHECK_EQ(st.live, base_live);
}

#endif /* TESTS_UNIT_MEM_ARENA_CHECK_H */
