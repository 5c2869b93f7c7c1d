/*
 * mem/decay.c: returning memory to the OS (mem/decay.h). Decay runs at most every
 * decay_ms/4, in bounded steps (one thread at a time, claimed by CAS): depot batches idle for a
 * whole period go back to their spans, spans wholly free for decay_ms are madvise()d away, and
 * so are the whole free pages inside partly used spans that have had no free for decay_ms
 * (page reset, mem__node_reset), all without the node lock held. The proxy's worker timers step it;
 * allocation slow paths step it by a few units too, so a process without timers still decays.
 */
#include "mem/base.h"
#include "mem/decay.h"
#include "mem/budget.h"
#include "mem/internal.h"
#include "mem/tcache.h"

#include <time.h>

/* Decay runs as a sequence of bounded steps. A round starts when its period is due: for each
 * node, every class's depot is trimmed and that class's partly used spans give back their
 * whole free pages, then the node's spans idle for decay_ms are released; a cursor keeps the
 * place between steps, so that a step does at most `work_max` units (one class trimmed, one
 * partly used span examined for page reset, or one span released). One thread steps at a time (a
 * try-claim: a thread that finds decay busy goes on with its own work). */
static struct {
    uint64_t ms;        /* the decay delay (atomic) */
    uint64_t next_ns;   /* when the next round is due (atomic) */
    bool busy;          /* claimed by CAS */
    bool in_round;      /* a round has started and not finished (under busy) */
    uint64_t round_ns;  /* when this round started (under busy) */
    unsigned node, cls; /* the cursor (under busy) */
    bool reset_phase;   /* at `cls`: its depot is trimmed, its spans' free pages are next */
} decay;

void mem_budget_set_decay_ms(uint64_t ms)
{
    __atomic_store_n(&decay.ms, ms, __ATOMIC_RELAXED);
    __atomic_store_n(&decay.next_ns, 0, __ATOMIC_RELAXED);
}

size_t mem_release_now(void)
{
    if (!mem_is_initialised())
        return 0;
    mem__tcache_t *tc = mem__tc_self;
    if (tc->reg_idx >= 0)
        mem__tcache_flush(tc);
    pthread_mutex_lock(&mem__threads.shared_lock);
    mem__tcache_flush(mem__threads.shared);
    pthread_mutex_unlock(&mem__threads.shared_lock);
    size_t released = 0;
    for (unsigned i = 0; i < mem__g.nodes_cnt; i++) {
        mem__node_t *n = &mem__g.nodes[i];
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            (void)mem__depot_drain(n, c);
        released += mem__node_release(n, UINT64_MAX, SIZE_MAX, NULL);
        /* Then the whole free pages left inside partly used spans. Each span is examined at
         * most once per call (a span that got a free meanwhile waits for the next), so the
         * bound is the number of spans the node has. */
        size_t spans_max =
            (size_t)__atomic_load_n(&n->segments, __ATOMIC_RELAXED) * MEM_SPANS_PER_SEG;
        for (unsigned c = 0; c < MEM_SC_COUNT; c++)
            released += mem__node_reset(n, c, UINT64_MAX, spans_max, NULL);
    }
    return released;
}

size_t mem_decay_tick(size_t work_max)
{
    if (!mem_is_initialised() || work_max == 0)
        return 0;
    uint64_t now = mem__now_ns();
    if (!__atomic_load_n(&decay.in_round, __ATOMIC_ACQUIRE) &&
        now < __atomic_load_n(&decay.next_ns, __ATOMIC_RELAXED))
        return 0;
    bool idle = false;
    if (!__atomic_compare_exchange_n(&decay.busy, &idle, true, false, __ATOMIC_ACQUIRE,
                                     __ATOMIC_RELAXED))
        return 0; /* another thread is stepping */
    uint64_t decay_ns = __atomic_load_n(&decay.ms, __ATOMIC_RELAXED) * 1000000ull;
    if (!decay.in_round) {
        if (now < __atomic_load_n(&decay.next_ns, __ATOMIC_RELAXED)) {
            __atomic_store_n(&decay.busy, false, __ATOMIC_RELEASE);
            return 0; /* the round finished while this thread looked */
        }
        decay.round_ns = now;
        decay.node = 0;
        decay.cls = 0;
        decay.reset_phase = false;
        __atomic_store_n(&decay.in_round, true, __ATOMIC_RELEASE);
    }
    uint64_t before = decay.round_ns > decay_ns ? decay.round_ns - decay_ns : 0;
    size_t work = 0, released = 0;
    while (work < work_max && decay.node < mem__g.nodes_cnt) {
        mem__node_t *n = &mem__g.nodes[decay.node];
        if (decay.cls < MEM_SC_COUNT && !decay.reset_phase) {
            (void)mem__depot_trim(n, decay.cls);
            decay.reset_phase = true;
            work++;
            continue;
        }
        if (decay.cls < MEM_SC_COUNT) {
            /* Page reset: whole free pages in partly used spans idle for decay_ms. */
            size_t did = 0, allow = work_max - work;
            released += mem__node_reset(n, decay.cls, before, allow, &did);
            work += did;
            if (did < allow) { /* nothing more is due in this class */
                decay.cls++;
                decay.reset_phase = false;
            }
            continue;
        }
        size_t did = 0, allow = work_max - work;
        released += mem__node_release(n, before, allow, &did);
        work += did;
        if (did < allow) { /* nothing more is due on this node */
            decay.node++;
            decay.cls = 0;
            decay.reset_phase = false;
        }
    }
    if (decay.node >= mem__g.nodes_cnt) {
        uint64_t period = MEM_MAX(decay_ns / 4, 1000000ull);
        __atomic_store_n(&decay.next_ns, decay.round_ns + period, __ATOMIC_RELAXED);
        __atomic_store_n(&decay.in_round, false, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&decay.busy, false, __ATOMIC_RELEASE);
    return released;
}

void mem__decay_reset(void)
{
    decay.in_round = false;
    decay.node = decay.cls = 0;
    decay.reset_phase = false;
    __atomic_store_n(&decay.busy, false, __ATOMIC_RELEASE);
}

size_t mem_release_tick(void)
{
    /* The whole round at once: for the proxy's monitor timer, which no request waits on. */
    return mem_decay_tick(SIZE_MAX);
}

void mem__decay_maybe(void)
{
    /* Slow paths run often under churn (a refill or spill every batch): look at the clock
     * only every 16th time, and then at the coarse one (no rdtsc). They step decay by a few
     * units only, so that no allocation stalls behind a whole round. */
    static __thread unsigned calls;
    if ((++calls & 15) != 0)
        return;
    if (!__atomic_load_n(&decay.in_round, __ATOMIC_RELAXED)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        if (now < __atomic_load_n(&decay.next_ns, __ATOMIC_RELAXED))
            return;
    }
    (void)mem_decay_tick(MEM_DECAY_AUTO_WORK);
}
