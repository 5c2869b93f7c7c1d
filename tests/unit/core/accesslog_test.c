/*
 * tests/unit/core/accesslog_test.c: the access log's escaping (proxy/core/accesslog.c): quotes,
 * backslashes, control bytes, DEL and bytes >= 0x80 in the method, :authority and :path are
 * written as \xHH (nginx's escape=default), printable ASCII as is, and a line of maximal
 * fields made only of escaped bytes still fits and ends with one newline. The end-to-end
 * check over real HTTP/2 is tests/e2e/11-access-log-escape.py (nghttp2 refuses quotes and
 * control bytes in :path before weir sees them, so only this test reaches those).
 */
#include "mem/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proxy/core/accesslog.h"
#include "tests/harness.h"

static char g_path[64];
static char g_buf[1 << 16];

/* Logs `e` to a fresh file and reads the file back into g_buf; returns its length. */
static size_t log_one(const px_accesslog_entry_t *e)
{
    snprintf(g_path, sizeof(g_path), "/tmp/weir-accesslog-test.%d", (int)getpid());
    unlink(g_path);
    px_accesslog_t *l = px_accesslog_new(g_path);
    if (l == NULL)
        return 0;
    px_accesslog_add(l, e);
    px_accesslog_free(l);
    FILE *f = fopen(g_path, "rb");
    if (f == NULL)
        return 0;
    size_t n = fread(g_buf, 1, sizeof(g_buf) - 1, f);
    fclose(f);
    unlink(g_path);
    g_buf[n] = '\0';
    return n;
}

TEST(escapes)
{
    static const char path[] = "/a\"b\\c\x01\x7f\x80\xff d\n";
    static const char auth[] = "h\xc3\xa9";
    px_accesslog_entry_t e = {
        .peer = "127.0.0.1:1",
        .method = "G\"T",
        .method_len = 3,
        .authority = auth,
        .authority_len = sizeof(auth) - 1,
        .path = path,
        .path_len = sizeof(path) - 1,
        .status = 200,
        .upstream = "direct",
    };
    size_t n = log_one(&e);
    REQUIRE(n > 0);
    CHECK(strstr(g_buf, "\"G\\x22T h\\xC3\\xA9 /a\\x22b\\x5Cc\\x01\\x7F\\x80\\xFF d\\x0A\" 200 ") !=
          NULL);
    for (size_t i = 0; i < n; i++)
        CHECK((unsigned char)g_buf[i] < 0x80);
    CHECK(strchr(g_buf, '\n') == g_buf + n - 1);
    if (th_cur_failed)
        fprintf(stderr, "line: %s", g_buf);
}

TEST(longest_line_fits)
{
    /* Every field at its cap and every byte escaped: 4 output bytes per input byte. */
    static char big[4096];
    memset(big, 0xee, sizeof(big));
    px_accesslog_entry_t e = {
        .peer = "[2001:db8::1]:65535",
        .method = big,
        .method_len = sizeof(big),
        .authority = big,
        .authority_len = sizeof(big),
        .path = big,
        .path_len = sizeof(big),
        .status = 503,
        .bytes_out = UINT64_MAX,
        .duration_us = UINT64_MAX,
        .upstream = "a-cluster-name",
        .proto = "http/1.1",
    };
    size_t n = log_one(&e);
    REQUIRE(n > 0);
    CHECK(strchr(g_buf, '\n') == g_buf + n - 1);
    CHECK(strstr(g_buf, " upstream=a-cluster-name proto=http/1.1\n") != NULL);
    /* 16 + 256 + 1024 source bytes, each as \xEE. */
    size_t esc = 0;
    for (const char *p = g_buf; (p = strstr(p, "\\xEE")) != NULL; p += 4)
        esc++;
    CHECK_EQ(esc, 16 + 256 + 1024);
}

int main(void)
{
    RUN(escapes);
    RUN(longest_line_fits);
    return TEST_SUMMARY();
}
