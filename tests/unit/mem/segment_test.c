/*
 * tests/unit/mem/segment_test.c: segments and spans: alignment and tags, lazy commit per
 * span, a wholly free span becomes DIRTY and is released with madvise, large mappings, and
 * re-initialisation after mem_fini(); classes above 32 KiB carved from runs of spans, and a
 * steady stream of 33-256 KiB objects that maps and unmaps nothing after warm-up.
 */
#include "mem/base.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/segment.h"
#include "mem/stats.h"
#include "tests/harness.h"

#include <stdarg.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static mem_stats_t st;

/* mem/ is a static library linked into this binary, so these definitions take its mmap and
 * munmap calls: each is counted, then made with the raw system call. */
static uint64_t mmap_calls, munmap_calls;

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    __atomic_fetch_add(&mmap_calls, 1, __ATOMIC_RELAXED);
    long r = syscall(SYS_mmap, addr, len, prot, flags, fd, off);
    return r < 0 && r > -4096 ? MAP_FAILED : (void *)r;
}

int munmap(void *addr, size_t len)
{
    __atomic_fetch_add(&munmap_calls, 1, __ATOMIC_RELAXED);
    return (int)syscall(SYS_munmap, addr, len);
}

/* live + tcache + depot + free_in_segments == committed (quiescent, one thread). */
static void check_identity(void)
{
    mem_stats_snapshot(&st);
    CHECK_EQ(st.live + st.tcache + st.depot + st.free_in_segments + st.metadata, st.committed);
}

TEST(span_carving)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(1000); /* 1024 B: 64 per span */
    /* Heap bytes only: a first segment may also charge a page of the debug registry
     * (metadata), which stays charged. */
    size_t c0 = mem_budget_committed() - mem__g.metadata;
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
    size_t grew = mem_budget_committed() - mem__g.metadata - c0;
    CHECK(grew == MEM_SPAN_SIZE || grew == MEM_SPAN_SIZE + ((mem_segment_t *)h)->meta_bytes);
    mem__span_give(n, c, o, 64);
    CHECK_EQ(h->tag[idx], MEM_TAG_FREE);
    CHECK_EQ(((mem_segment_t *)h)->spans[idx].state, MEM_SPAN_DIRTY);
    size_t rel = mem__node_release(n, UINT64_MAX, SIZE_MAX, NULL);
    CHECK(rel >= MEM_SPAN_SIZE);
    CHECK_EQ(((mem_segment_t *)h)->spans[idx].state, MEM_SPAN_CLEAN);
    CHECK(mem_budget_committed() - mem__g.metadata <= c0 + ((mem_segment_t *)h)->meta_bytes);
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
    mem_free(mem_malloc(16)); /* the thread cache (metadata) exists before the baseline */
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

TEST(run_classes)
{
    mem__node_t *n = &mem__g.nodes[0];
    unsigned c = mem_sc_of(40000); /* 40 KiB: eight per run of five spans */
    REQUIRE(c < MEM_SC_COUNT);
    CHECK_EQ(mem_sc_size[c], 40960);
    CHECK_EQ(mem_sc_run[c], 5);
    void *o[8];
    REQUIRE(mem__span_take(n, c, o, 8) == 8);
    mem_segment_t *seg = (mem_segment_t *)mem__seghdr_of(o[0]);
    unsigned first = mem__span_idx(o[0]);
    for (int i = 0; i < 8; i++) {
        CHECK(mem__seghdr_of(o[i]) == &seg->hdr);
        CHECK_EQ((char *)o[i] - (char *)o[0], (ptrdiff_t)i * 40960);
        CHECK_EQ(seg->hdr.tag[mem__span_idx(o[i])], c); /* every span of the run is tagged */
        CHECK(mem__span_of(seg, o[i]) == &seg->spans[first]);
    }
    CHECK_EQ(seg->spans[first].run, 5);
    CHECK_EQ(seg->spans[first + 4].state, MEM_SPAN_TAIL);
    CHECK_EQ(mem__span_idx((char *)o[7] + 40959), first + 4);
    mem__span_give(n, c, o, 8);
    for (unsigned i = first; i < first + 5; i++) {
        CHECK_EQ(seg->spans[i].state, MEM_SPAN_DIRTY); /* the run fell apart */
        CHECK_EQ(seg->hdr.tag[i], MEM_TAG_FREE);
    }
    /* Through the facade: usable size, realloc within the class, identity. */
    void *p = mem_malloc(33000);
    REQUIRE(p);
    CHECK_EQ(mem_usable_size(p), 40960);
    memset(p, 0x5a, 33000);
    CHECK(mem_realloc(p, 40000) == p);
    check_identity();
    mem_free(p);
    check_identity();
    (void)mem_release_now();
    check_identity();
}

TEST(big_classes_no_mmap_after_warmup)
{
    /* A ring of 32 live objects of 33-256 KiB: allocate, write, free the oldest. */
    enum { RING = 32, WARM = 4000, STEADY = 40000 };
    static void *ring[RING];
    uint64_t x = 88172645463325252ull;
    size_t large0 = mem__g.large_alloc_cnt;
    for (int i = 0; i < WARM + STEADY; i++) {
        if (i == WARM) {
            __atomic_store_n(&mmap_calls, 0, __ATOMIC_RELAXED);
            __atomic_store_n(&munmap_calls, 0, __ATOMIC_RELAXED);
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t len = 33 * 1024 + (size_t)(x % (223 * 1024 + 1));
        int k = i % RING;
        mem_free(ring[k]);
        ring[k] = mem_malloc(len);
        REQUIRE(ring[k] != NULL);
        ((char *)ring[k])[0] = 1;
        ((char *)ring[k])[len - 1] = 2;
    }
    CHECK_EQ(__atomic_load_n(&mmap_calls, __ATOMIC_RELAXED), 0);
    CHECK_EQ(__atomic_load_n(&munmap_calls, __ATOMIC_RELAXED), 0);
    CHECK_EQ(mem__g.large_alloc_cnt, large0); /* no dedicated mapping at all */
    for (int k = 0; k < RING; k++) {
        mem_free(ring[k]);
        ring[k] = NULL;
    }
    check_identity();
}

/* Segments are marked MADV_NOHUGEPAGE ("nh" in the mapping's VmFlags), so that span decay
 * never splits a transparent huge page. */
TEST(segments_nohugepage)
{
    void *p = mem_malloc(100);
    REQUIRE(p);
    uintptr_t seg = (uintptr_t)mem__seghdr_of(p);
    FILE *f = fopen("/proc/self/smaps", "r");
    REQUIRE(f != NULL);
    static char line[512];
    int in_seg = 0, found = 0, nh = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            in_seg = lo <= seg && seg < hi;
            found |= in_seg;
        } else if (in_seg && strncmp(line, "VmFlags:", 8) == 0) {
            nh = strstr(line, " nh") != NULL;
        }
    }
    fclose(f);
    CHECK(found);
    CHECK(nh);
    mem_free(p);
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
    RUN(run_classes);
    RUN(big_classes_no_mmap_after_warmup);
    RUN(segments_nohugepage);
    RUN(reinit);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
