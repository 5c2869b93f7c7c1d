/*
 * tests/harness.h: the minimal test harness every C test uses.
 *
 * A test binary defines TEST(name) functions and a main() that calls RUN(name) for each,
 * then returns TEST_SUMMARY(). CHECK* macros report file:line and mark the test failed
 * without aborting, so one run shows every failure; REQUIRE* abort the current test.
 * ctest gives each binary its own process and timeout.
 */
#ifndef TESTS_HARNESS_H
#define TESTS_HARNESS_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int th_failed_checks;
static int th_tests_run;
static int th_tests_failed;
static int th_cur_failed;

#define TEST(name) static void test_##name(void)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);               \
            th_failed_checks++;                                                                    \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long th_a_ = (long long)(a), th_b_ = (long long)(b);                                  \
        if (th_a_ != th_b_) {                                                                      \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n", __FILE__,         \
                    __LINE__, #a, #b, th_a_, th_b_);                                               \
            th_failed_checks++;                                                                    \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_OK(expr)                                                                             \
    do {                                                                                           \
        long long th_r_ = (long long)(expr);                                                       \
        if (th_r_ != 0) {                                                                          \
            fprintf(stderr, "%s:%d: CHECK_OK failed: %s returned %lld\n", __FILE__, __LINE__,      \
                    #expr, th_r_);                                                                 \
            th_failed_checks++;                                                                    \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *th_sa_ = (a), *th_sb_ = (b);                                                   \
        if (!th_sa_ || !th_sb_ || strcmp(th_sa_, th_sb_) != 0) {                                   \
            fprintf(stderr, "%s:%d: CHECK_STR failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__,     \
                    th_sa_ ? th_sa_ : "(null)", th_sb_ ? th_sb_ : "(null)");                       \
            th_failed_checks++;                                                                    \
            th_cur_failed = 1;                                                                     \
        }                                                                                          \
    } while (0)

/* REQUIRE stops the current test function: later steps would only cascade. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond);             \
            th_failed_checks++;                                                                    \
            th_cur_failed = 1;                                                                     \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#define RUN(name)                                                                                  \
    do {                                                                                           \
        th_cur_failed = 0;                                                                         \
        th_tests_run++;                                                                            \
        test_##name();                                                                             \
        if (th_cur_failed)                                                                         \
            th_tests_failed++;                                                                     \
        fprintf(stderr, "%s %s\n", th_cur_failed ? "FAIL" : "ok  ", #name);                        \
    } while (0)

#define TEST_SUMMARY()                                                                             \
    (fprintf(stderr, "%d passed, %d failed\n", th_tests_run - th_tests_failed, th_tests_failed),   \
     th_tests_failed ? 1 : 0)

#endif /* TESTS_HARNESS_H */
