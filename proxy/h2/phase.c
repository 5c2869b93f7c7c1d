/*
 * proxy/h2/phase.c: the allowed changes between the phases of a downstream stream, and the one
 * function that changes a stream's phase (see phase.h). No allocation.
 */
#include "proxy/h2/phase.h"
#include "mem/base.h"

#include <stdio.h>

#include "proxy/h2/stream.h"

#define BIT(p) (1u << (p))

/* Where each phase may go. Every live phase may be reset by weir (a malformed message, an
 * allocation failure, the idle sweep, shedding) and closed by the codec (the client's
 * RST_STREAM, the connection's end); a reset stream can only close. The two edges back to
 * RESPONSE_QUEUED undo the step w_write_head (serve.c) takes before it hands the head to the
 * codec, when the codec had no memory for it: nothing was written and the head waits again. */
static const unsigned allowed[PX_PHASE_CNT] = {
    [PX_PHASE_REQUEST_HEADERS] =
        BIT(PX_PHASE_WAITING_UPSTREAM) | BIT(PX_PHASE_RESET) | BIT(PX_PHASE_CLOSED),
    [PX_PHASE_WAITING_UPSTREAM] =
        BIT(PX_PHASE_RESPONSE_QUEUED) | BIT(PX_PHASE_RESET) | BIT(PX_PHASE_CLOSED),
    [PX_PHASE_RESPONSE_QUEUED] = BIT(PX_PHASE_RESPONSE_BODY) | BIT(PX_PHASE_RESPONSE_SENT) |
                                 BIT(PX_PHASE_RESET) | BIT(PX_PHASE_CLOSED),
    [PX_PHASE_RESPONSE_BODY] = BIT(PX_PHASE_RESPONSE_QUEUED) | BIT(PX_PHASE_RESPONSE_SENT) |
                               BIT(PX_PHASE_RESET) | BIT(PX_PHASE_CLOSED),
    [PX_PHASE_RESPONSE_SENT] =
        BIT(PX_PHASE_RESPONSE_QUEUED) | BIT(PX_PHASE_RESET) | BIT(PX_PHASE_CLOSED),
    [PX_PHASE_RESET] = BIT(PX_PHASE_CLOSED),
    [PX_PHASE_CLOSED] = 0,
};

static const char *const names[PX_PHASE_CNT] = {
    [PX_PHASE_REQUEST_HEADERS] = "request_headers",
    [PX_PHASE_WAITING_UPSTREAM] = "waiting_upstream",
    [PX_PHASE_RESPONSE_QUEUED] = "response_queued",
    [PX_PHASE_RESPONSE_BODY] = "response_body",
    [PX_PHASE_RESPONSE_SENT] = "response_sent",
    [PX_PHASE_RESET] = "reset",
    [PX_PHASE_CLOSED] = "closed",
};

MEM_STATIC_ASSERT(PX_PHASE_CNT <= 8 * sizeof(unsigned), "one bit per phase");

bool px_stream_phase_allowed(px_stream_phase_t from, px_stream_phase_t to)
{
    if ((unsigned)from >= PX_PHASE_CNT || (unsigned)to >= PX_PHASE_CNT)
        return false;
    return (allowed[from] & BIT(to)) != 0;
}

/* An illegal change: a bug of weir's. Named once on stderr in any build, fatal in debug ones. */
MEM_NOINLINE MEM_COLD static void phase_illegal(const px_stream_t *st, px_stream_phase_t to)
{
    static int warned;
    if (MEM_DEBUG >= 1 || !__atomic_exchange_n(&warned, 1, __ATOMIC_RELAXED))
        fprintf(stderr, "weir: stream %d: phase %s -> %s is not allowed (a bug; reported once)\n",
                (int)st->id, px_stream_phase_name(st->phase), px_stream_phase_name(to));
    MEM_ASSERT_HOT(!"illegal stream phase change");
}

bool px_stream_set_phase(px_stream_t *st, px_stream_phase_t to)
{
    MEM_ASSERT(st != NULL);
    MEM_ASSERT_HOT((unsigned)to < PX_PHASE_CNT);
    bool ok = px_stream_phase_allowed(st->phase, to);
    if (MEM_UNLIKELY(!ok))
        phase_illegal(st, to);
    st->phase = to;
    return ok;
}

const char *px_stream_phase_name(px_stream_phase_t p)
{
    if ((unsigned)p >= PX_PHASE_CNT)
        return "?";
    MEM_ASSERT(names[p] != NULL);
    return names[p];
}
