/*
 * tests/unit/codec/reader_test.c: received bytes to whole frames (proxy/codec/reader.c). One byte
 * stream (the client preface, then frames of 0 bytes to MAX_FRAME_SIZE) is fed whole, cut in
 * two at every offset, one byte at a time and in pseudo-random pieces; every way must yield
 * the same frames, hold no memory once the last frame is out, and copy only cut frames.
 */
#include "mem/base.h"

#include <stdio.h>
#include <string.h>

#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/codec/reader.h"
#include "tests/harness.h"

#define FRAMES_MAX 16

typedef struct seen_s {
    int cnt;
    uint8_t type[FRAMES_MAX];
    uint32_t len[FRAMES_MAX];
    uint32_t sum[FRAMES_MAX];
    int stop_at; /* return -EINTR at this frame, or -1 */
} seen_t;

static int on_frame(void *ud, const px_h2_frame_hd_t *hd, const uint8_t *payload)
{
    seen_t *s = ud;
    if (s->cnt == s->stop_at)
        return -EINTR;
    if (s->cnt >= FRAMES_MAX)
        return -E2BIG;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < hd->length; i++)
        sum = sum * 31 + payload[i];
    s->type[s->cnt] = hd->type;
    s->len[s->cnt] = hd->length;
    s->sum[s->cnt] = sum;
    s->cnt++;
    return 0;
}

static uint8_t stream[PX_H2_PREFACE_LEN + 8 * PX_H2_FRAME_HD_LEN + 3 * PX_H2_MAX_FRAME_MIN];
static size_t stream_len;
static seen_t want;
static size_t cut_at;

static void build(void)
{
    static const uint32_t lens[] = {0, 18, 8, PX_H2_MAX_FRAME_MIN, 1, 5000, 0, 4};
    memcpy(stream, PX_H2_PREFACE, PX_H2_PREFACE_LEN);
    size_t off = PX_H2_PREFACE_LEN;
    for (size_t i = 0; i < MEM_ARRAY_LEN(lens); i++) {
        px_h2_frame_hd_write(stream + off, lens[i], (uint8_t)i, 0, (int32_t)(2 * i + 1));
        off += PX_H2_FRAME_HD_LEN;
        for (uint32_t k = 0; k < lens[i]; k++)
            stream[off + k] = (uint8_t)(k * 13 + i);
        off += lens[i];
    }
    stream_len = off;
}

static uint64_t live(void)
{
    mem_stats_t st;
    mem_thread_flush();
    return mem_stats_snapshot(&st) == 0 ? st.live : UINT64_MAX;
}

/* Feeds the stream in pieces of the sizes `next` returns; checks the frames. */
static void feed_pieces(size_t (*next)(size_t off, void *arg), void *arg)
{
    px_h2_reader_t r;
    px_h2_reader_init(&r, true, PX_H2_MAX_FRAME_MIN);
    seen_t s = {.stop_at = -1};
    size_t off = 0;
    while (off < stream_len) {
        size_t n = next(off, arg); /* once: MEM_MIN evaluates its operands twice */
        n = MEM_MIN(n, stream_len - off);
        int rc = px_h2_reader_feed(&r, stream + off, n, on_frame, &s);
        if (rc != 0) {
            fprintf(stderr, "  feed at %zu (+%zu): %d\n", off, n, rc);
            CHECK_OK(rc);
            break;
        }
        off += n;
    }
    CHECK(!px_h2_reader_busy(&r));
    CHECK(r.part == NULL);
    CHECK_EQ(s.cnt, want.cnt);
    CHECK(memcmp(&s, &want, offsetof(seen_t, stop_at)) == 0);
    px_h2_reader_fini(&r);
}

static size_t two_pieces(size_t off, void *arg)
{
    (void)arg;
    return off < cut_at ? cut_at - off : stream_len;
}
static size_t one_byte(size_t off, void *arg)
{
    (void)off;
    (void)arg;
    return 1;
}
static size_t random_pieces(size_t off, void *arg)
{
    (void)off;
    uint64_t *x = arg;
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return 1 + (size_t)((*x >> 33) % 7000);
}

TEST(every_cut_gives_the_same_frames)
{
    build();
    px_h2_reader_t r;
    px_h2_reader_init(&r, true, PX_H2_MAX_FRAME_MIN);
    want = (seen_t){.stop_at = -1};
    CHECK_OK(px_h2_reader_feed(&r, stream, stream_len, on_frame, &want));
    CHECK_EQ(want.cnt, 8);
    CHECK(r.part == NULL); /* whole frames are never copied */
    px_h2_reader_fini(&r);
    for (cut_at = 1; cut_at < stream_len; cut_at++)
        feed_pieces(two_pieces, NULL);
    feed_pieces(one_byte, NULL);
    for (uint64_t seed = 1; seed < 200; seed++) {
        uint64_t x = seed;
        feed_pieces(random_pieces, &x);
    }
}

TEST(a_cut_frame_holds_only_its_own_size)
{
    build();
    px_h2_reader_t r;
    px_h2_reader_init(&r, true, PX_H2_MAX_FRAME_MIN);
    seen_t s = {.stop_at = -1};
    uint64_t before = live();
    /* Preface, three frames, and 100 bytes into the 16 KiB one. */
    size_t upto = PX_H2_PREFACE_LEN + 3 * PX_H2_FRAME_HD_LEN + 18 + 8 + PX_H2_FRAME_HD_LEN + 100;
    CHECK_OK(px_h2_reader_feed(&r, stream, upto, on_frame, &s));
    CHECK_EQ(s.cnt, 3);
    CHECK(px_h2_reader_busy(&r));
    uint64_t held = live() - before;
    CHECK(held >= PX_H2_MAX_FRAME_MIN && held <= PX_H2_MAX_FRAME_MIN + 1024);
    CHECK_OK(px_h2_reader_feed(&r, stream + upto, stream_len - upto, on_frame, &s));
    CHECK_EQ(s.cnt, 8);
    CHECK_EQ(live(), before);
    px_h2_reader_fini(&r);
}

TEST(errors)
{
    build();
    px_h2_reader_t r;
    seen_t s = {.stop_at = -1};
    /* A wrong preface byte, also when it comes in a later read. */
    px_h2_reader_init(&r, true, PX_H2_MAX_FRAME_MIN);
    CHECK_OK(px_h2_reader_feed(&r, (const uint8_t *)"PRI * HTTP/2", 12, on_frame, &s));
    CHECK_EQ(px_h2_reader_feed(&r, (const uint8_t *)".1\r\n", 4, on_frame, &s), -EPROTO);
    px_h2_reader_fini(&r);
    /* No preface in the client role. */
    px_h2_reader_init(&r, false, PX_H2_MAX_FRAME_MIN);
    s = (seen_t){.stop_at = -1};
    CHECK_OK(px_h2_reader_feed(&r, stream + PX_H2_PREFACE_LEN, PX_H2_FRAME_HD_LEN, on_frame, &s));
    CHECK_EQ(s.cnt, 1);
    px_h2_reader_fini(&r);
    /* A frame over the limit is refused from its header alone, whole or cut. */
    uint8_t big[PX_H2_FRAME_HD_LEN];
    px_h2_frame_hd_write(big, PX_H2_MAX_FRAME_MIN + 1, PX_H2_DATA, 0, 1);
    px_h2_reader_init(&r, false, PX_H2_MAX_FRAME_MIN);
    CHECK_EQ(px_h2_reader_feed(&r, big, sizeof(big), on_frame, &s), -EMSGSIZE);
    px_h2_reader_fini(&r);
    px_h2_reader_init(&r, false, PX_H2_MAX_FRAME_MIN);
    CHECK_OK(px_h2_reader_feed(&r, big, 4, on_frame, &s));
    CHECK_EQ(px_h2_reader_feed(&r, big + 4, 5, on_frame, &s), -EMSGSIZE);
    CHECK(r.part == NULL);
    px_h2_reader_fini(&r);
    /* The callback's error stops the reader and comes back. */
    px_h2_reader_init(&r, true, PX_H2_MAX_FRAME_MIN);
    s = (seen_t){.stop_at = 2};
    CHECK_EQ(px_h2_reader_feed(&r, stream, stream_len, on_frame, &s), -EINTR);
    CHECK_EQ(s.cnt, 2);
    px_h2_reader_fini(&r);
}

int main(void)
{
    if (mem_init(NULL) != 0 || mem_thread_attach(0) != 0)
        return 1;
    uint64_t before = live();
    RUN(every_cut_gives_the_same_frames);
    RUN(a_cut_frame_holds_only_its_own_size);
    RUN(errors);
    if (live() != before) {
        fprintf(stderr, "live bytes changed: %llu -> %llu\n", (unsigned long long)before,
                (unsigned long long)live());
        th_tests_failed++;
    }
    return TEST_SUMMARY();
}
