/*
 * tests/unit/upstream/h1_test.c: the upstream driver tests (h2_test.c) run
 * against an HTTP/1.1 upstream: keep-alive pooling, chunked and content-length request
 * bodies, trailers both ways, flow control by stopping the socket reads, error mapping and
 * cancellation.
 */
#define UP_TEST_HTTP1 1
#include "h2_test.c"
