/*
 * tests/unit/codec/state_test.c: the stream state machine (proxy/codec/state.c) against RFC 9113
 * section 5.1: the exchanges of both roles, each error the section names, and an exhaustive
 * check that every allowed move is an edge of the RFC's diagram.
 */
#include "mem/base.h"

#include <string.h>

#include "proxy/codec/state.h"
#include "tests/harness.h"

#define I   PX_H2_ST_IDLE
#define RL  PX_H2_ST_RESERVED_LOCAL
#define RR  PX_H2_ST_RESERVED_REMOTE
#define O   PX_H2_ST_OPEN
#define HCL PX_H2_ST_HALF_CLOSED_LOCAL
#define HCR PX_H2_ST_HALF_CLOSED_REMOTE
#define C   PX_H2_ST_CLOSED

static px_h2_state_t step(px_h2_state_t s, px_h2_event_t ev, bool es, px_h2_verdict_t want)
{
    px_h2_state_t n;
    px_h2_verdict_t v = px_h2_state_next(s, ev, es, PX_H2_CLOSED_NORMAL, &n);
    CHECK_EQ(v, want);
    return n;
}

TEST(server_and_client_exchanges)
{
    /* Server: request HEADERS(END_STREAM), response HEADERS, DATA(END_STREAM). */
    px_h2_state_t s = step(I, PX_H2_EV_RECV_HEADERS, true, PX_H2_OK);
    CHECK_EQ(s, HCR);
    s = step(s, PX_H2_EV_SEND_HEADERS, false, PX_H2_OK);
    CHECK_EQ(s, HCR);
    s = step(s, PX_H2_EV_RECV_WINDOW_UPDATE, false, PX_H2_OK);
    s = step(s, PX_H2_EV_SEND_DATA, true, PX_H2_OK);
    CHECK_EQ(s, C);
    /* Client with an upload: HEADERS, DATA(END_STREAM), then the response. */
    s = step(I, PX_H2_EV_SEND_HEADERS, false, PX_H2_OK);
    CHECK_EQ(s, O);
    s = step(s, PX_H2_EV_SEND_DATA, true, PX_H2_OK);
    CHECK_EQ(s, HCL);
    s = step(s, PX_H2_EV_RECV_HEADERS, false, PX_H2_OK);
    s = step(s, PX_H2_EV_RECV_DATA, false, PX_H2_OK);
    s = step(s, PX_H2_EV_RECV_HEADERS, true, PX_H2_OK); /* trailers */
    CHECK_EQ(s, C);
    /* gRPC trailers-only: one HEADERS with END_STREAM answers a half-closed stream. */
    s = step(HCR, PX_H2_EV_SEND_HEADERS, true, PX_H2_OK);
    CHECK_EQ(s, C);
    /* Push (never sent by weir, refused as a client): the reserved states. */
    s = step(I, PX_H2_EV_SEND_PUSH_PROMISE, false, PX_H2_OK);
    CHECK_EQ(s, RL);
    s = step(s, PX_H2_EV_SEND_HEADERS, false, PX_H2_OK);
    CHECK_EQ(s, HCR);
    s = step(I, PX_H2_EV_RECV_PUSH_PROMISE, false, PX_H2_OK);
    CHECK_EQ(s, RR);
    s = step(s, PX_H2_EV_RECV_HEADERS, true, PX_H2_OK);
    CHECK_EQ(s, C);
}

TEST(errors_section_5_1)
{
    px_h2_state_t n;
    /* idle: anything but HEADERS and PRIORITY is a connection error PROTOCOL_ERROR. */
    step(I, PX_H2_EV_RECV_DATA, false, PX_H2_CONN_ERR_PROTOCOL);
    step(I, PX_H2_EV_RECV_RST, false, PX_H2_CONN_ERR_PROTOCOL);
    step(I, PX_H2_EV_RECV_WINDOW_UPDATE, false, PX_H2_CONN_ERR_PROTOCOL);
    CHECK_EQ(step(I, PX_H2_EV_RECV_PRIORITY, false, PX_H2_OK), I);
    /* half-closed (remote): DATA or HEADERS is a stream error STREAM_CLOSED (also 6.1). */
    step(HCR, PX_H2_EV_RECV_DATA, false, PX_H2_STREAM_ERR_CLOSED);
    step(HCR, PX_H2_EV_RECV_HEADERS, true, PX_H2_STREAM_ERR_CLOSED);
    CHECK_EQ(step(HCR, PX_H2_EV_RECV_RST, false, PX_H2_OK), C);
    /* closed normally: DATA is a stream error, HEADERS a connection error, both
     * STREAM_CLOSED; WINDOW_UPDATE and RST_STREAM may still cross and are ignored. */
    step(C, PX_H2_EV_RECV_DATA, false, PX_H2_STREAM_ERR_CLOSED);
    step(C, PX_H2_EV_RECV_HEADERS, false, PX_H2_CONN_ERR_CLOSED);
    step(C, PX_H2_EV_RECV_WINDOW_UPDATE, false, PX_H2_IGNORE);
    step(C, PX_H2_EV_RECV_RST, false, PX_H2_IGNORE);
    step(C, PX_H2_EV_RECV_PRIORITY, false, PX_H2_OK);
    /* closed by the peer's RST_STREAM: anything but PRIORITY is STREAM_CLOSED. */
    CHECK_EQ(px_h2_state_next(C, PX_H2_EV_RECV_DATA, false, PX_H2_CLOSED_BY_PEER, &n),
             PX_H2_STREAM_ERR_CLOSED);
    CHECK_EQ(px_h2_state_next(C, PX_H2_EV_RECV_HEADERS, false, PX_H2_CLOSED_BY_PEER, &n),
             PX_H2_STREAM_ERR_CLOSED);
    CHECK_EQ(px_h2_state_next(C, PX_H2_EV_RECV_WINDOW_UPDATE, false, PX_H2_CLOSED_BY_PEER, &n),
             PX_H2_STREAM_ERR_CLOSED);
    CHECK_EQ(px_h2_state_next(C, PX_H2_EV_RECV_PRIORITY, false, PX_H2_CLOSED_BY_PEER, &n),
             PX_H2_OK);
    /* closed by our RST_STREAM: whatever was in flight is ignored. */
    for (int ev = PX_H2_EV_RECV_HEADERS; ev < PX_H2_EV_CNT; ev++) {
        px_h2_verdict_t v = px_h2_state_next(C, (px_h2_event_t)ev, false, PX_H2_CLOSED_BY_US, &n);
        CHECK(v == PX_H2_IGNORE || (ev == PX_H2_EV_RECV_PRIORITY && v == PX_H2_OK));
    }
    /* A promised stream must be idle. */
    step(O, PX_H2_EV_RECV_PUSH_PROMISE, false, PX_H2_CONN_ERR_PROTOCOL);
    step(RL, PX_H2_EV_RECV_DATA, false, PX_H2_CONN_ERR_PROTOCOL);
    step(RR, PX_H2_EV_RECV_DATA, false, PX_H2_CONN_ERR_PROTOCOL);
    /* Our own mistakes are reported, not passed to the peer. */
    step(HCL, PX_H2_EV_SEND_DATA, false, PX_H2_BUG);
    step(C, PX_H2_EV_SEND_HEADERS, false, PX_H2_BUG);
    step(I, PX_H2_EV_SEND_RST, false, PX_H2_BUG);
    CHECK_EQ(px_h2_closed_by(PX_H2_EV_SEND_RST), PX_H2_CLOSED_BY_US);
    CHECK_EQ(px_h2_closed_by(PX_H2_EV_RECV_RST), PX_H2_CLOSED_BY_PEER);
    CHECK_EQ(px_h2_closed_by(PX_H2_EV_SEND_DATA), PX_H2_CLOSED_NORMAL);
    CHECK_STR(px_h2_state_name(HCR), "half_closed_remote");
}

/* The edges of the diagram in section 5.1 (plus staying put). */
static bool edge(px_h2_state_t a, px_h2_state_t b)
{
    static const uint8_t to[PX_H2_ST_CNT] = {
        [I] = 1u << RL | 1u << RR | 1u << O | 1u << HCL | 1u << HCR,
        [RL] = 1u << HCR | 1u << C,
        [RR] = 1u << HCL | 1u << C,
        [O] = 1u << HCL | 1u << HCR | 1u << C,
        [HCL] = 1u << C,
        [HCR] = 1u << C,
        [C] = 0,
    };
    return a == b || (to[a] >> b) & 1u;
}

TEST(every_move_is_an_edge)
{
    for (int s = 0; s < PX_H2_ST_CNT; s++)
        for (int ev = 0; ev < PX_H2_EV_CNT; ev++)
            for (int es = 0; es < 2; es++)
                for (int how = 0; how < 3; how++) {
                    px_h2_state_t n;
                    px_h2_verdict_t v = px_h2_state_next((px_h2_state_t)s, (px_h2_event_t)ev, es,
                                                         (px_h2_closed_t)how, &n);
                    if (v != PX_H2_OK)
                        CHECK_EQ(n, s);
                    else if (!edge((px_h2_state_t)s, n)) {
                        fprintf(stderr, "  %s --%d--> %s\n", px_h2_state_name(s), ev,
                                px_h2_state_name(n));
                        CHECK(false);
                    }
                    /* A received frame never makes our own mistake. */
                    if (ev >= PX_H2_EV_RECV_HEADERS)
                        CHECK(v != PX_H2_BUG);
                }
}

int main(void)
{
    RUN(server_and_client_exchanges);
    RUN(errors_section_5_1);
    RUN(every_move_is_an_edge);
    return TEST_SUMMARY();
}
