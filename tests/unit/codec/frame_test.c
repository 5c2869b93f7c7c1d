/*
 * tests/unit/codec/frame_test.c: the frame layer of weir's HTTP/2 codec (proxy/codec/frame.c):
 * every frame type written and decoded back, and every single-frame rule of RFC 9113 with the
 * error code and scope (stream or connection) the RFC gives, on bytes written by hand.
 */
#include "mem/base.h"

#include <string.h>

#include "proxy/codec/frame.h"
#include "tests/harness.h"

#define MAXF PX_H2_MAX_FRAME_MIN

/* Decodes the frame at the start of `b` (header + payload). */
static int decode(const uint8_t *b, px_h2_frame_t *f, px_h2_frame_err_t *err)
{
    px_h2_frame_hd_t hd;
    px_h2_frame_hd_parse(b, &hd);
    memset(err, 0, sizeof(*err));
    return px_h2_frame_decode(&hd, b + PX_H2_FRAME_HD_LEN, MAXF, f, err);
}

/* Builds a frame from a header and a literal payload. */
static size_t raw(uint8_t *b, uint8_t type, uint8_t flags, int32_t sid, const void *payload,
                  size_t len)
{
    px_h2_frame_hd_write(b, (uint32_t)len, type, flags, sid);
    if (len)
        memcpy(b + PX_H2_FRAME_HD_LEN, payload, len);
    return PX_H2_FRAME_HD_LEN + len;
}

/* Expects decoding to fail with `code`, as a stream error when `stream`. */
static void expect_err(const uint8_t *b, uint32_t code, bool stream, int line)
{
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    int rc = decode(b, &f, &err);
    if (rc != -EPROTO || err.code != code || err.stream != stream || err.reason == NULL) {
        fprintf(stderr, "  line %d: rc %d code %s stream %d (want %s stream %d)\n", line, rc,
                px_h2_error_name(err.code), err.stream, px_h2_error_name(code), stream);
        CHECK(false);
    }
}
#define EXPECT_ERR(b, code, stream) expect_err((b), (code), (stream), __LINE__)

TEST(header_round_trip)
{
    uint8_t b[9];
    px_h2_frame_hd_write(b, 0xabcdef, 0x7, 0x25, 0x12345678);
    px_h2_frame_hd_t hd;
    px_h2_frame_hd_parse(b, &hd);
    CHECK_EQ(hd.length, 0xabcdefu);
    CHECK_EQ(hd.type, 7);
    CHECK_EQ(hd.flags, 0x25);
    CHECK_EQ(hd.stream_id, 0x12345678);
    /* Section 4.1: the reserved bit is ignored on receipt. */
    b[5] |= 0x80;
    px_h2_frame_hd_parse(b, &hd);
    CHECK_EQ(hd.stream_id, 0x12345678);
}

TEST(data_and_padding)
{
    uint8_t b[64];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    raw(b, PX_H2_DATA, PX_H2_FLAG_END_STREAM, 1, "hello", 5);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.data.len, 5u);
    CHECK(memcmp(f.u.data.data, "hello", 5) == 0);
    CHECK_EQ(f.u.data.padded, 0u);
    /* Pad length 3: 1 + 5 + 3 bytes; flow control counts all 9. */
    raw(b, PX_H2_DATA, PX_H2_FLAG_PADDED, 3, "\x03hello\0\0\0", 9);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.data.len, 5u);
    CHECK_EQ(f.u.data.padded, 4u);
    CHECK(memcmp(f.u.data.data, "hello", 5) == 0);
    /* Padding that fills the whole payload: the data is empty, still valid. */
    raw(b, PX_H2_DATA, PX_H2_FLAG_PADDED, 3, "\x02\0\0", 3);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.data.len, 0u);
    /* Section 6.1: padding as long as the payload or longer. */
    raw(b, PX_H2_DATA, PX_H2_FLAG_PADDED, 3, "\x03\0\0", 3);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_DATA, PX_H2_FLAG_PADDED, 3, "", 0);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_DATA, 0, 0, "x", 1);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
}

TEST(headers_priority_and_padding)
{
    uint8_t b[64];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    raw(b, PX_H2_HEADERS, PX_H2_FLAG_END_HEADERS, 1, "\x82\x84", 2);
    CHECK_OK(decode(b, &f, &err));
    CHECK(!f.u.headers.has_priority);
    CHECK_EQ(f.u.headers.len, 2u);
    /* PADDED and PRIORITY: pad length, exclusive dependency on 3, weight 16, block, pad. */
    raw(b, PX_H2_HEADERS, PX_H2_FLAG_PADDED | PX_H2_FLAG_PRIORITY, 5,
        "\x02\x80\x00\x00\x03\x0f\x82\x84\0\0", 10);
    CHECK_OK(decode(b, &f, &err));
    CHECK(f.u.headers.has_priority);
    CHECK(f.u.headers.priority.exclusive);
    CHECK_EQ(f.u.headers.priority.depends_on, 3);
    CHECK_EQ(f.u.headers.priority.weight, 15);
    CHECK_EQ(f.u.headers.len, 2u);
    CHECK(memcmp(f.u.headers.block, "\x82\x84", 2) == 0);
    /* Section 5.3.1: depending on itself is a stream error. */
    raw(b, PX_H2_HEADERS, PX_H2_FLAG_PRIORITY, 5, "\x00\x00\x00\x05\x0f", 5);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, true);
    raw(b, PX_H2_HEADERS, PX_H2_FLAG_PRIORITY, 5, "\x00\x00\x00", 3);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_HEADERS, 0, 0, "\x82", 1);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
}

TEST(fixed_length_frames)
{
    uint8_t b[64];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    /* PRIORITY: 5 bytes on a stream; another length is a stream error (section 6.3). */
    px_h2_priority_t pri = {.depends_on = 7, .exclusive = false, .weight = 200};
    px_h2_write_priority(b, 9, &pri);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.priority.depends_on, 7);
    CHECK_EQ(f.u.priority.weight, 200);
    raw(b, PX_H2_PRIORITY, 0, 9, "\0\0\0\0", 4);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, true);
    raw(b, PX_H2_PRIORITY, 0, 0, "\0\0\0\1\1", 5);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_PRIORITY, 0, 9, "\0\0\0\x09\1", 5);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, true);
    /* RST_STREAM (section 6.4). */
    px_h2_write_rst_stream(b, 3, PX_H2_CANCEL);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.rst_stream.code, (uint32_t)PX_H2_CANCEL);
    raw(b, PX_H2_RST_STREAM, 0, 3, "\0\0\0", 3);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_RST_STREAM, 0, 0, "\0\0\0\0", 4);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    /* PING (section 6.7). */
    px_h2_write_ping(b, (const uint8_t *)"12345678", true);
    CHECK_OK(decode(b, &f, &err));
    CHECK(f.hd.flags & PX_H2_FLAG_ACK);
    CHECK(memcmp(f.u.ping.opaque, "12345678", 8) == 0);
    raw(b, PX_H2_PING, 0, 0, "1234567", 7);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_PING, 0, 1, "12345678", 8);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    /* WINDOW_UPDATE (section 6.9): the reserved bit is dropped; 0 is an error whose scope
     * follows the stream id. */
    px_h2_write_window_update(b, 0, 0x7fffffff);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.window_update.increment, 0x7fffffffu);
    raw(b, PX_H2_WINDOW_UPDATE, 0, 5, "\x80\0\0\0", 4);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, true);
    raw(b, PX_H2_WINDOW_UPDATE, 0, 0, "\0\0\0\0", 4);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_WINDOW_UPDATE, 0, 0, "\0\0\0\1\0", 5);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
}

TEST(settings)
{
    uint8_t b[128];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    px_h2_setting_entry_t e[] = {
        {PX_H2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
        {PX_H2_SETTINGS_INITIAL_WINDOW_SIZE, 65536},
        {0x4242, 7}, /* unknown: carried, ignored by the layer above */
    };
    size_t n = px_h2_write_settings(b, e, 3, false);
    CHECK_EQ(n, 9u + 18u);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.settings.cnt, 3u);
    CHECK_EQ(px_h2_settings_get(&f, 1).id, PX_H2_SETTINGS_INITIAL_WINDOW_SIZE);
    CHECK_EQ(px_h2_settings_get(&f, 1).value, 65536u);
    CHECK_EQ(px_h2_settings_get(&f, 2).id, 0x4242);
    px_h2_write_settings(b, NULL, 0, true);
    CHECK_OK(decode(b, &f, &err));
    CHECK(f.hd.flags & PX_H2_FLAG_ACK);
    /* Section 6.5: ACK with a payload, a length not a multiple of 6, a stream id. */
    raw(b, PX_H2_SETTINGS, PX_H2_FLAG_ACK, 0, "\0\3\0\0\0\1", 6);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\3\0\0\0", 5);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 1, "", 0);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    /* Section 6.5.2: values out of range. */
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\2\0\0\0\2", 6);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\4\x80\0\0\0", 6);
    EXPECT_ERR(b, PX_H2_FLOW_CONTROL_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\5\0\0\x3f\xff", 6);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\5\x01\0\0\0", 6);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_SETTINGS, 0, 0, "\0\5\0\xff\xff\xff", 6);
    CHECK_OK(decode(b, &f, &err));
}

TEST(goaway_push_promise_continuation_unknown)
{
    uint8_t b[128];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    px_h2_write_goaway(b, 41, PX_H2_ENHANCE_YOUR_CALM, "rapid reset", 11);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.goaway.last_stream_id, 41);
    CHECK_EQ(f.u.goaway.code, (uint32_t)PX_H2_ENHANCE_YOUR_CALM);
    CHECK_EQ(f.u.goaway.debug_len, 11u);
    CHECK(memcmp(f.u.goaway.debug, "rapid reset", 11) == 0);
    raw(b, PX_H2_GOAWAY, 0, 0, "\0\0\0\0\0\0\0", 7);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_GOAWAY, 0, 3, "\0\0\0\0\0\0\0\0", 8);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    px_h2_write_push_promise(b, 1, 2, (const uint8_t *)"\x82", 1);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.push_promise.promised_id, 2);
    CHECK_EQ(f.u.push_promise.len, 1u);
    raw(b, PX_H2_PUSH_PROMISE, 0, 1, "\0\0\0", 3);
    EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    raw(b, PX_H2_CONTINUATION, 0, 0, "\x82", 1);
    EXPECT_ERR(b, PX_H2_PROTOCOL_ERROR, false);
    raw(b, PX_H2_CONTINUATION, PX_H2_FLAG_END_HEADERS, 1, "\x82", 1);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.u.continuation.len, 1u);
    /* Section 4.1 and 5.5: unknown types (and flags) decode and are to be ignored. */
    raw(b, 0xfa, 0xff, 0, "whatever", 8);
    CHECK_OK(decode(b, &f, &err));
    CHECK_EQ(f.hd.type, 0xfa);
    CHECK_STR(px_h2_frame_type_name(0xfa), "UNKNOWN");
    CHECK_STR(px_h2_frame_type_name(PX_H2_WINDOW_UPDATE), "WINDOW_UPDATE");
    CHECK_STR(px_h2_error_name(PX_H2_HTTP_1_1_REQUIRED), "HTTP_1_1_REQUIRED");
}

TEST(frame_size_limit)
{
    static uint8_t b[PX_H2_FRAME_HD_LEN + MAXF + 1];
    px_h2_frame_t f;
    px_h2_frame_err_t err;
    px_h2_frame_hd_write(b, MAXF, PX_H2_DATA, 0, 1);
    CHECK_OK(decode(b, &f, &err));
    /* Section 4.2: one byte over SETTINGS_MAX_FRAME_SIZE, whatever the type. */
    for (uint8_t t = 0; t < PX_H2_FRAME_TYPES_CNT + 1; t++) {
        px_h2_frame_hd_write(b, MAXF + 1, t, 0, t == PX_H2_SETTINGS || t == PX_H2_PING ? 0 : 1);
        EXPECT_ERR(b, PX_H2_FRAME_SIZE_ERROR, false);
    }
    /* A larger advertised maximum admits it. */
    px_h2_frame_hd_t hd;
    px_h2_frame_hd_write(b, MAXF + 1, PX_H2_DATA, 0, 1);
    px_h2_frame_hd_parse(b, &hd);
    CHECK_OK(px_h2_frame_decode(&hd, b + 9, MAXF * 2, &f, &err));
}

TEST(header_block_split)
{
    static uint8_t block[40000], out[41000];
    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (uint8_t)(i * 7);
    size_t want = px_h2_block_frames_len(sizeof(block), MAXF);
    CHECK_EQ(want, 3u * 9u + sizeof(block));
    size_t n = px_h2_write_block(out, 5, block, sizeof(block), MAXF, true);
    CHECK_EQ(n, want);
    /* HEADERS(END_STREAM), CONTINUATION, CONTINUATION(END_HEADERS), and the block back. */
    static uint8_t back[40000];
    size_t off = 0, got = 0;
    uint8_t types[3], flags[3];
    for (int i = 0; i < 3; i++) {
        px_h2_frame_t f;
        px_h2_frame_err_t err;
        CHECK_OK(decode(out + off, &f, &err));
        types[i] = f.hd.type;
        flags[i] = f.hd.flags;
        const uint8_t *p = i == 0 ? f.u.headers.block : f.u.continuation.block;
        size_t l = i == 0 ? f.u.headers.len : f.u.continuation.len;
        memcpy(back + got, p, l);
        got += l;
        off += 9 + f.hd.length;
    }
    CHECK_EQ(off, n);
    CHECK_EQ(got, sizeof(block));
    CHECK(memcmp(back, block, sizeof(block)) == 0);
    CHECK_EQ(types[0], PX_H2_HEADERS);
    CHECK_EQ(types[1], PX_H2_CONTINUATION);
    CHECK_EQ(types[2], PX_H2_CONTINUATION);
    CHECK_EQ(flags[0], PX_H2_FLAG_END_STREAM);
    CHECK_EQ(flags[1], 0);
    CHECK_EQ(flags[2], PX_H2_FLAG_END_HEADERS);
    /* An empty block is one HEADERS frame with END_HEADERS. */
    n = px_h2_write_block(out, 7, NULL, 0, MAXF, false);
    CHECK_EQ(n, 9u);
    CHECK_EQ(out[3], PX_H2_HEADERS);
    CHECK_EQ(out[4], PX_H2_FLAG_END_HEADERS);
}

int main(void)
{
    RUN(header_round_trip);
    RUN(data_and_padding);
    RUN(headers_priority_and_padding);
    RUN(fixed_length_frames);
    RUN(settings);
    RUN(goaway_push_promise_continuation_unknown);
    RUN(frame_size_limit);
    RUN(header_block_split);
    return TEST_SUMMARY();
}
