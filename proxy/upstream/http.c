/*
 * proxy/upstream/http.c: HTTP vocabulary shared by both sides (hop-by-hop headers, reason phrases).
 * Pure functions, no state, any thread.
 */
#include "proxy/upstream/http.h"
#include "mem/base.h"

#include <string.h>
#include <strings.h>

bool px_http_ieq(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return a_len == b_len && strncasecmp(a, b, a_len) == 0;
}

#define IS(lit) px_http_ieq(name, name_len, lit, sizeof(lit) - 1)

bool px_http_is_hop_by_hop(const char *name, size_t name_len, const char *value, size_t value_len)
{
    MEM_ASSERT_HOT(name != NULL);
    if (name_len < 2 || name_len > 17)
        return false;
    if (IS("connection") || IS("keep-alive") || IS("proxy-connection") || IS("transfer-encoding") ||
        IS("upgrade"))
        return true;
    if (IS("te"))
        return !px_http_ieq(value, value_len, "trailers", 8);
    return false;
}

#undef IS

const char *px_http_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 103:
        return "Early Hints";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int64_t px_http_parse_content_length(const char *s, size_t len)
{
    MEM_ASSERT(s != NULL || len == 0);
    if (len == 0 || len > 18)
        return -1; /* 18 digits cannot overflow int64_t */
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    MEM_ASSERT(v >= 0);
    return v;
}

void px_http_count_status(px_stats_t *s, int status)
{
    if (status < 200)
        MEM_STAT_ADD(s->responses_1xx, 1);
    else if (status < 300)
        MEM_STAT_ADD(s->responses_2xx, 1);
    else if (status < 400)
        MEM_STAT_ADD(s->responses_3xx, 1);
    else if (status < 500)
        MEM_STAT_ADD(s->responses_4xx, 1);
    else
        MEM_STAT_ADD(s->responses_5xx, 1);
}
