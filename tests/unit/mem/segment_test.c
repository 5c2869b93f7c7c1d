/*
 * tests/unit/mem/segment_test.c: segments and spans: alignment and tags, lazy commit per
 * span, a wholly free span becomes DIRTY and is released with madvise, large mappings, and
 * re-initialisation after mem_fini(); classes above 32 KiB carved from runs of spans, and a
 * steady stream of 33-256 KiB objects that maps and unmaps nothing after warm-up; page reset:
 * whole free pages inside partly used spans leave RSS (mincore) on mem_release_now() and,
 * after the decay delay and not before, by the decay, and every object comes back intact.
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
#include <time.h>
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
    size_t c0 = mem_budget_committed() - mem__budget.metadata;
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
    size_t grew = mem_budget_committed() - mem__budget.metadata - c0;
    CHECK(grew == MEM_SPAN_SIZE || grew == MEM_SPAN_SIZE + ((mem__segment_t *)h)->meta_bytes);
    mem__span_give(n, c, o, 64);
    CHECK_EQ(h->tag[idx], MEM_TAG_FREE);
    CHECK_EQ(((mem__segment_t *)h)->spans[idx].state, MEM_SPAN_DIRTY);
    size_t rel = mem__node_release(n, UINT64_MAX, SIZE_MAX, NULL);
    CHECK(rel >= MEM_SPAN_SIZE);
    CHECK_EQ(((mem__segment_t *)h)->spans[idx].state, MEM_SPAN_CLEAN);
    CHECK(mem_budget_committed() - mem__budget.metadata <= c0 + ((mem__segment_t *)h)->meta_bytes);
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
    mem__segment_t *seg = (mem__segment_t *)mem__seghdr_of(o[0]);
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
    size_t large0 = mem__large_totals.alloc_cnt;
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
    CHECK_EQ(mem__large_totals.alloc_cnt, large0); /* no dedicated mapping at all */
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

/* ---- page reset ----------------------------------------------------------------------- */

/* Whole pages of `len` bytes at `p` that are resident, by mincore(). */
static size_t resident_pages(const void *p, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    static unsigned char vec[MEM_SC_RUN_MAX * MEM_SPAN_SIZE / 4096];
    size_t np = len / page;
    CHECK(np <= sizeof(vec));
    if (np > sizeof(vec) || mincore((void *)p, len, vec) != 0)
        return SIZE_MAX; /* fails every check below */
    size_t r = 0;
    for (size_t i = 0; i < np; i++)
        r += vec[i] & 1;
    return r;
}

#define RESET_SPANS 12

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t first_free_ms; /* when page_reset_case began to free */
static size_t reset_want;      /* bytes of page reset page_reset_case expects */

/* For class `len`: fills RESET_SPANS spans (runs) of objects, touching every byte, frees all
 * but the first object of each, and has `give_back` return what it can. The pages that held
 * only freed objects leave RSS (page reset) while the kept objects stay resident and intact;
 * then every object can be allocated again (no overlap with the kept ones, nothing new
 * committed) and written. */
static void page_reset_case(size_t len, size_t (*give_back)(void))
{
    static void *o[RESET_SPANS * MEM_SPAN_OBJS_MAX];
    static void *kept[RESET_SPANS * 8];
    unsigned c = mem_sc_of(len);
    size_t size = mem_sc_size[c], run_len = (size_t)mem_sc_run[c] * MEM_SPAN_SIZE;
    size_t per = run_len / size, cnt = RESET_SPANS * per, page = mem__g.page;
    REQUIRE(cnt <= sizeof(o) / sizeof(o[0]));
    mem_release_now();
    for (size_t i = 0; i < cnt; i++) {
        o[i] = mem_malloc(size);
        REQUIRE(o[i] != NULL);
        memset(o[i], 0xAB, size);
    }
    /* Keep the first object of each run that these objects fill; free the rest. */
    size_t nk = 0;
    first_free_ms = now_ms();
    for (size_t i = 0; i < cnt; i++) {
        mem__segment_t *seg = (mem__segment_t *)mem__seghdr_of(o[i]);
        mem__span_t *s = mem__span_of(seg, o[i]);
        if ((char *)o[i] == mem__span_base(s) && nk < sizeof(kept) / sizeof(kept[0]))
            kept[nk++] = o[i];
        else
            mem_free(o[i]);
    }
    REQUIRE(nk >= RESET_SPANS - 2);
    size_t resident_before = 0, resident_after = 0;
    size_t possible = nk * ((run_len - MEM_ALIGN_UP(size, page)) / page);
    for (size_t i = 0; i < nk; i++)
        resident_before += resident_pages(kept[i], run_len);
    reset_want = possible * page;
    mem_stats_snapshot(&st);
    uint64_t reset0 = st.reset_total;
    size_t committed0 = mem_budget_committed();
    size_t given = give_back();
    for (size_t i = 0; i < nk; i++) {
        resident_after += resident_pages(kept[i], run_len);
        for (size_t b = 0; b < size; b++)
            REQUIRE(((unsigned char *)kept[i])[b] == 0xAB);
    }
    mem_stats_snapshot(&st);
    fprintf(stderr,
            "  %zu B: %zu runs kept by one object: resident pages %zu -> %zu (%zu could go), "
            "reset %llu B, given back %zu B\n",
            size, nk, resident_before, resident_after, possible,
            (unsigned long long)(st.reset_total - reset0), given);
    size_t kept_pages = MEM_ALIGN_UP(size, page) / page;
    CHECK(resident_before >= nk * (MEM_ALIGN_UP(per * size, page) / page)); /* all touched */
    CHECK(resident_after <= nk * kept_pages); /* only the kept objects' pages stay */
    CHECK(st.reset_total - reset0 >= possible * page);
    CHECK(mem_budget_committed() <= committed0); /* the objects stay free in their spans */
    check_identity();
    /* Allocate everything again: the spans' parked objects come back, none overlaps a kept
     * object, and the pages fault in as zero. */
    size_t again = cnt - nk;
    for (size_t i = 0; i < again; i++) {
        o[i] = mem_malloc(size);
        REQUIRE(o[i] != NULL);
        for (size_t k = 0; k < nk; k++)
            REQUIRE((char *)o[i] + size <= (char *)kept[k] ||
                    (char *)kept[k] + size <= (char *)o[i]);
        memset(o[i], 0xCD, size);
    }
    CHECK(mem_budget_committed() <= committed0 + MEM_SPAN_SIZE * mem_sc_run[c] * 2);
    for (size_t k = 0; k < nk; k++)
        for (size_t b = 0; b < size; b++)
            REQUIRE(((unsigned char *)kept[k])[b] == 0xAB);
    for (size_t i = 0; i < again; i++)
        mem_free(o[i]);
    for (size_t k = 0; k < nk; k++)
        mem_free(kept[k]);
    mem_release_now();
    check_identity();
}

static size_t release_now(void)
{
    return mem_release_now();
}

/* A span that was clean when carved has pages that nothing ever touched past its bump: page
 * reset leaves them alone (they are not resident; counting them would overstate what went
 * back to the OS). */
TEST(page_reset_skips_untouched_pages)
{
    mem__node_t *n = &mem__g.nodes[0];
    mem_release_now();
    unsigned c = mem_sc_of(2000);
    size_t size = mem_sc_size[c];
    void *o[4];
    REQUIRE(mem__span_take(n, c, o, 4) == 4);
    mem__span_t *sp = mem__span_of((mem__segment_t *)mem__seghdr_of(o[0]), o[0]);
    if (!sp->fresh || sp->bump != 4) {
        fprintf(stderr, "SKIP: class %u had a span in use already\n", c);
        mem__span_give(n, c, o, 4);
        return;
    }
    for (int i = 0; i < 4; i++) {
        MEM_UNPOISON(o[i], size); /* as the thread cache does when it hands one out */
        memset(o[i], 1, size);
        MEM_POISON(o[i], size);
    }
    mem__span_give(n, c, o + 2, 2); /* objects 2 and 3 free, 0 and 1 live */
    size_t touched = MEM_ALIGN_UP(4 * size, mem__g.page);
    size_t first_free = MEM_ALIGN_UP(2 * size, mem__g.page); /* pages wholly past object 1 */
    size_t reset = mem__node_reset(n, c, UINT64_MAX, SIZE_MAX, NULL);
    fprintf(stderr, "  %zu B objects, 2 of the first 4 live: %zu B reset (touched %zu B)\n", size,
            reset, touched);
    CHECK(reset <= (touched > first_free ? touched - first_free : 0));
    mem__span_give(n, c, o, 2);
    check_identity();
}

TEST(page_reset_release_now)
{
    page_reset_case(64, release_now);
    page_reset_case(1024, release_now);
    page_reset_case(3000, release_now); /* objects straddle pages */
    page_reset_case(8192, release_now);
    page_reset_case(40 * 1024, release_now); /* a run of spans */
}

#define DECAY_MS 300

/* The decay does the same on its own, once the spans have had no free for the decay delay:
 * not before (checked while less than the delay has passed), and within a few delays. */
static size_t decay_only(void)
{
    mem_thread_flush();
    uint64_t t0 = now_ms();
    mem_stats_snapshot(&st);
    uint64_t reset0 = st.reset_total;
    size_t got = 0;
    /* Depot batches go back to their spans after a period of their own, then the spans wait
     * DECAY_MS: poll the timer step until the pages are gone or 20 delays have passed. */
    uint64_t first_reset_ms = 0;
    while (now_ms() < t0 + 20 * DECAY_MS) {
        uint64_t before = now_ms();
        got += mem_decay_tick(MEM_DECAY_TIMER_WORK);
        mem_stats_snapshot(&st);
        /* A span's pages wait DECAY_MS after its last free, and every free came after
         * first_free_ms: nothing may have been reset before that (10 ms for the clocks). */
        if (st.reset_total > reset0 && !first_reset_ms)
            first_reset_ms = before;
        if (st.reset_total - reset0 >= reset_want)
            break;
        struct timespec ts = {0, 5 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    CHECK(first_reset_ms != 0);
    CHECK(first_reset_ms + 10 >= first_free_ms + DECAY_MS);
    fprintf(stderr,
            "  decay: first page reset %llu ms after the first free, all %llu ms after "
            "(delay %d ms)\n",
            (unsigned long long)(first_reset_ms - first_free_ms),
            (unsigned long long)(now_ms() - first_free_ms), DECAY_MS);
    return got;
}

TEST(page_reset_by_decay)
{
    mem_budget_set_decay_ms(DECAY_MS);
    page_reset_case(1024, decay_only);
    page_reset_case(16384, decay_only);
    mem_budget_set_decay_ms(1000);
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
    RUN(page_reset_skips_untouched_pages);
    RUN(page_reset_release_now);
    RUN(page_reset_by_decay);
    RUN(reinit);
    RUN(fini_nothing_live);
    return TEST_SUMMARY();
}
