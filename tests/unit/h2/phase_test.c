/*
 * tests/unit/h2/phase_test.c: proxy/h2/phase.c, the phases of a downstream stream: the table of
 * allowed changes (the ways a real stream goes, and the ones it must never take), the names
 * /memory/regions shows, and px_stream_set_phase on an illegal change: fatal in debug builds
 * (checked in a child process), logged and reported false in release ones.
 */
#include "mem/base.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proxy/h2/phase.h"
#include "proxy/h2/stream.h"
#include "tests/harness.h"

/* Walks `st` through `path` (ending at PX_PHASE_CNT) with the setter; true if every step was
 * allowed. */
static bool walk(const px_stream_phase_t *path)
{
    px_stream_t st;
    memset(&st, 0, sizeof(st));
    st.id = 1;
    st.phase = path[0];
    for (size_t i = 1; path[i] != PX_PHASE_CNT; i++) {
        if (!px_stream_phase_allowed(st.phase, path[i]) || !px_stream_set_phase(&st, path[i]))
            return false;
        if (st.phase != path[i])
            return false;
    }
    return true;
}

#define RH  PX_PHASE_REQUEST_HEADERS
#define WU  PX_PHASE_WAITING_UPSTREAM
#define RQ  PX_PHASE_RESPONSE_QUEUED
#define RB  PX_PHASE_RESPONSE_BODY
#define RS  PX_PHASE_RESPONSE_SENT
#define RST PX_PHASE_RESET
#define CL  PX_PHASE_CLOSED
#define END PX_PHASE_CNT

TEST(the_ways_a_stream_goes)
{
    /* A proxied response with a body; a head-only one (HEAD, 204, gRPC trailers-only); a 404
     * from weir; a malformed request; a stream shed while it waits; the client's RST_STREAM in
     * each phase; a reset after the end went out (the upload still running); a head the codec
     * had no memory for, queued again. */
    const px_stream_phase_t ways[][10] = {
        {RH, WU, RQ, RB, RS, CL, END},
        {RH, WU, RQ, RS, CL, END},
        {RH, WU, RQ, RS, CL, END},
        {RH, RST, CL, END},
        {RH, WU, RST, CL, END},
        {RH, CL, END},
        {RH, WU, CL, END},
        {RH, WU, RQ, CL, END},
        {RH, WU, RQ, RB, CL, END},
        {RH, WU, RQ, RB, RS, RST, CL, END},
        {RH, WU, RQ, RB, RQ, RB, RS, CL, END},
        {RH, WU, RQ, RS, RQ, RS, CL, END},
        {RH, WU, RQ, RST, CL, END},
    };
    for (size_t i = 0; i < MEM_ARRAY_LEN(ways); i++) {
        if (!walk(ways[i]))
            fprintf(stderr, "way %zu refused\n", i);
        CHECK(walk(ways[i]));
    }
}

TEST(the_ways_a_stream_never_goes)
{
    /* No step back to routing or waiting once answered, no response after a reset, nothing
     * after closed, no head before routing, no standing still. */
    const px_stream_phase_t never[][2] = {
        {WU, RH},  {RQ, WU},  {RB, WU}, {RS, RB},   {RS, WU}, {RST, RQ}, {RST, RB},
        {RST, RS}, {RST, WU}, {CL, RH}, {CL, RST},  {CL, RS}, {RH, RQ},  {RH, RB},
        {RH, RS},  {WU, RB},  {WU, RS}, {RST, RST}, {CL, CL}, {RB, RB},
    };
    for (size_t i = 0; i < MEM_ARRAY_LEN(never); i++) {
        if (px_stream_phase_allowed(never[i][0], never[i][1]))
            fprintf(stderr, "%s -> %s allowed\n", px_stream_phase_name(never[i][0]),
                    px_stream_phase_name(never[i][1]));
        CHECK(!px_stream_phase_allowed(never[i][0], never[i][1]));
    }
    /* Out of range is never allowed. */
    CHECK(!px_stream_phase_allowed(PX_PHASE_CNT, RH));
    CHECK(!px_stream_phase_allowed(RH, PX_PHASE_CNT));
    /* Every phase but CLOSED has a way on, and every live one may be reset and closed. */
    for (px_stream_phase_t p = 0; p < PX_PHASE_CNT; p++) {
        CHECK(px_stream_phase_allowed(p, CL) == (p != CL));
        CHECK(px_stream_phase_allowed(p, RST) == (p != CL && p != RST));
    }
}

TEST(names)
{
    /* What e2e 13 and /memory/regions read; each distinct. */
    CHECK_STR(px_stream_phase_name(RH), "request_headers");
    CHECK_STR(px_stream_phase_name(WU), "waiting_upstream");
    CHECK_STR(px_stream_phase_name(RQ), "response_queued");
    CHECK_STR(px_stream_phase_name(RB), "response_body");
    CHECK_STR(px_stream_phase_name(RS), "response_sent");
    CHECK_STR(px_stream_phase_name(RST), "reset");
    CHECK_STR(px_stream_phase_name(CL), "closed");
    CHECK_STR(px_stream_phase_name(PX_PHASE_CNT), "?");
    for (px_stream_phase_t a = 0; a < PX_PHASE_CNT; a++)
        for (px_stream_phase_t b = a + 1; b < PX_PHASE_CNT; b++)
            CHECK(strcmp(px_stream_phase_name(a), px_stream_phase_name(b)) != 0);
}

TEST(illegal_change_asserts_in_debug_builds)
{
    fflush(stderr);
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        px_stream_t st;
        memset(&st, 0, sizeof(st));
        st.id = 7;
        st.phase = PX_PHASE_RESPONSE_SENT;
        /* Back to waiting after the end went out: a bug of weir's. */
        bool ok = px_stream_set_phase(&st, PX_PHASE_WAITING_UPSTREAM);
        /* Release builds go on: the change is reported, and made. */
        _exit(!ok && st.phase == PX_PHASE_WAITING_UPSTREAM ? 42 : 1);
    }
    int status = 0;
    REQUIRE(waitpid(pid, &status, 0) == pid);
    if (MEM_DEBUG >= 1) {
        CHECK(WIFSIGNALED(status));
        CHECK_EQ(WTERMSIG(status), SIGABRT);
    } else {
        CHECK(WIFEXITED(status));
        CHECK_EQ(WEXITSTATUS(status), 42);
    }
}

int main(void)
{
    RUN(the_ways_a_stream_goes);
    RUN(the_ways_a_stream_never_goes);
    RUN(names);
    RUN(illegal_change_asserts_in_debug_builds);
    return TEST_SUMMARY();
}
