/*
 * tests/unit/core/cfgwatch_test.c: the config file watch (proxy/core/cfgwatch.c) on a real libuv
 * loop over a temp folder laid out as Kubernetes mounts a ConfigMap (weir.yaml -> ..data/
 * weir.yaml, ..data -> ..v1): renaming a new ..data over the old one calls back once, with the
 * new bytes' hash recorded; a change that leaves the bytes as they were (the same content in a
 * new folder, an unrelated file in the folder) does not; the stat-poll mode sees a swap too;
 * the hash is FNV-1a 64 of the bytes. Single-threaded; ends with zero live mem/ bytes.
 */
#include "mem/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/core/cfgwatch.h"
#include "tests/harness.h"

static char tmp_dir[256];
static mem_stats_t stats; /* large: not on the stack */
static int g_changes;

static void on_change(void *ud)
{
    int *n = ud;
    (*n)++;
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Runs `loop` until `*count` reaches `want` or `ms` pass. */
static void run_until(uv_loop_t *loop, const int *count, int want, uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(loop, &t);
    uint64_t end = uv_now(loop) + ms;
    while (*count < want && uv_now(loop) < end) {
        uv_timer_start(&t, on_deadline, 20, 0);
        uv_run(loop, UV_RUN_DEFAULT);
        uv_update_time(loop);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
}

/* Writes `text` into folder `ver` (made here) and swaps ..data to it, as kubelet does. */
static void swap(const char *dir, const char *ver, const char *text)
{
    char p[512], q[512];
    snprintf(p, sizeof(p), "%s/%s", dir, ver);
    CHECK_EQ(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/%s/weir.yaml", dir, ver);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs(text, f);
    fclose(f);
    snprintf(q, sizeof(q), "%s/..data_tmp", dir);
    CHECK_EQ(symlink(ver, q), 0);
    snprintf(p, sizeof(p), "%s/..data", dir);
    CHECK_EQ(rename(q, p), 0);
}

static void setup(const char *dir)
{
    char p[512];
    CHECK_EQ(mkdir(dir, 0700), 0);
    swap(dir, "..v1", "routes: []\n");
    snprintf(p, sizeof(p), "%s/weir.yaml", dir);
    CHECK_EQ(symlink("..data/weir.yaml", p), 0);
}

TEST(hash_is_fnv1a_of_the_bytes)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/h.txt", tmp_dir);
    FILE *f = fopen(p, "w");
    REQUIRE(f != NULL);
    fputs("a", f);
    fclose(f);
    uint64_t h = 0;
    CHECK_OK(px_cfgwatch_file_hash(p, &h));
    CHECK_EQ(h, 0xaf63dc4c8601ec8cull); /* FNV-1a 64 of "a" */
    snprintf(p, sizeof(p), "%s/none.txt", tmp_dir);
    CHECK_EQ(px_cfgwatch_file_hash(p, &h), -ENOENT);
}

static void watch_case(bool poll_only)
{
    char dir[300], path[400], other[400];
    snprintf(dir, sizeof(dir), "%s/cm-%s", tmp_dir, poll_only ? "poll" : "inotify");
    setup(dir);
    snprintf(path, sizeof(path), "%s/weir.yaml", dir);
    uint64_t h0 = 0;
    CHECK_OK(px_cfgwatch_file_hash(path, &h0));
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    px_cfgwatch_t *w = NULL;
    bool inotify = false;
    g_changes = 0;
    CHECK_OK(
        px_cfgwatch_start(&loop, path, h0, 100, poll_only, on_change, &g_changes, &w, &inotify));
    REQUIRE(w != NULL);
    CHECK_EQ(inotify, !poll_only);
    /* Same bytes in a new folder, and an unrelated file: no call. */
    swap(dir, "..v2", "routes: []\n");
    snprintf(other, sizeof(other), "%s/unrelated", dir);
    FILE *f = fopen(other, "w");
    REQUIRE(f != NULL);
    fclose(f);
    run_until(&loop, &g_changes, 1, 600);
    CHECK_EQ(g_changes, 0);
    /* New bytes: one call. */
    swap(dir, "..v3", "routes: [x]\n");
    run_until(&loop, &g_changes, 1, 5000);
    CHECK_EQ(g_changes, 1);
    run_until(&loop, &g_changes, 2, 400);
    CHECK_EQ(g_changes, 1);
    px_cfgwatch_stop(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
}

TEST(inotify_sees_the_data_swap)
{
    watch_case(false);
}

TEST(stat_poll_sees_the_data_swap)
{
    watch_case(true);
}

TEST(nothing_live)
{
    mem_stats_snapshot(&stats);
    CHECK_EQ(stats.live, 0);
}

int main(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/weir-cfgwatch-test.XXXXXX");
    if (mkdtemp(tmp_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    int rc = mem_init(NULL);
    if (rc != 0 && rc != -EALREADY) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(hash_is_fnv1a_of_the_bytes);
    RUN(inotify_sees_the_data_swap);
    RUN(stat_poll_sees_the_data_swap);
    RUN(nothing_live);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return TEST_SUMMARY();
}
