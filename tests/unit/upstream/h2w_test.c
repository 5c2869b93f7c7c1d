/*
 * tests/unit/upstream/h2w_test.c: the upstream driver tests (h2_test.c) run with the h2c
 * upstream on weir's own codec (proxy/upstream/h2w.c, WEIR_CODEC=weir) instead of nghttp2's
 * session: the same cases against the same real node upstream (bodies and checksums,
 * trailers, errors, retries, timeouts, an upstream dying mid-stream, flow control,
 * cancellation at every stage, GOAWAY failover, idle and keep-alive handling), each ending
 * with no live region and no live mem/ bytes.
 */
#define UP_TEST_CODEC 1
#include "h2_test.c"
