/*
 * tests/unit/core/overload_test.c: the overload manager's level state machine (thresholds,
 * hysteresis both ways), the limit's source, cgroup v2/v1 file parsing (memory, and the CPU
 * quota that caps the worker count) against temp folders
 * laid out like /sys/fs/cgroup (nested limits, "max", v1's "no limit", container views,
 * memory.stat), and the monitor itself ticking against the real memory budget: levels rise
 * with held memory, cached free memory is released before it counts, recovery is automatic.
 * Single-threaded; ends with zero live mem/ bytes.
 */
#include "mem/base.h"

#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "mem/budget.h"
#include "mem/malloc.h"
#include "mem/mem.h"
#include "mem/stats.h"
#include "proxy/config/config.h"
#include "proxy/core/overload.h"
#include "proxy/core/server.h"
#include "tests/harness.h"

static char tmp_dir[256];
static mem_stats_t stats; /* large: not on the stack */

static const px_overload_thresholds_t TH = {0.80, 0.95, 0.05};

#define N PX_OVERLOAD_NORMAL
#define E PX_OVERLOAD_ELEVATED
#define C PX_OVERLOAD_CRITICAL

/* Writes `text` to tmp_dir/rel, creating folders on the way. Returns 0 or -1. */
static int put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmp_dir, rel);
    for (char *s = p + strlen(tmp_dir) + 1; (s = strchr(s, '/')) != NULL; s++) {
        *s = '\0';
        (void)mkdir(p, 0755);
        *s = '/';
    }
    FILE *f = fopen(p, "w");
    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static const char *path(const char *rel)
{
    static char p[512];
    snprintf(p, sizeof(p), "%s/%s", tmp_dir, rel);
    return p;
}

TEST(levels_rise_at_thresholds)
{
    CHECK_EQ(px_overload_next(N, 0.0, &TH), N);
    CHECK_EQ(px_overload_next(N, 0.7999, &TH), N);
    CHECK_EQ(px_overload_next(N, 0.80, &TH), E);
    CHECK_EQ(px_overload_next(N, 0.9499, &TH), E);
    CHECK_EQ(px_overload_next(N, 0.95, &TH), C); /* straight from normal to critical */
    CHECK_EQ(px_overload_next(E, 0.95, &TH), C);
    CHECK_EQ(px_overload_next(E, 1.0, &TH), C);
    CHECK_EQ(px_overload_next(C, 1.0, &TH), C);
}

TEST(levels_fall_only_past_hysteresis)
{
    /* ELEVATED holds in [0.75, 0.80), leaves below 0.75. */
    CHECK_EQ(px_overload_next(E, 0.79, &TH), E);
    CHECK_EQ(px_overload_next(E, 0.75, &TH), E);
    CHECK_EQ(px_overload_next(E, 0.7499, &TH), N);
    /* CRITICAL holds in [0.90, 0.95), then ELEVATED's own band applies. */
    CHECK_EQ(px_overload_next(C, 0.9499, &TH), C);
    CHECK_EQ(px_overload_next(C, 0.90, &TH), C);
    CHECK_EQ(px_overload_next(C, 0.8999, &TH), E);
    CHECK_EQ(px_overload_next(C, 0.78, &TH), E);
    CHECK_EQ(px_overload_next(C, 0.7499, &TH), N); /* a sudden drop goes all the way */
    CHECK_EQ(px_overload_next(C, 0.0, &TH), N);
    /* NORMAL never enters a band from below without crossing the threshold. */
    CHECK_EQ(px_overload_next(N, 0.78, &TH), N);
    /* Oscillating around a threshold within the band causes no flapping. */
    px_overload_level_t lv = N;
    int changes = 0;
    const double seq[] = {0.81, 0.79, 0.805, 0.77, 0.80, 0.76, 0.79};
    for (size_t i = 0; i < MEM_ARRAY_LEN(seq); i++) {
        px_overload_level_t nx = px_overload_next(lv, seq[i], &TH);
        changes += nx != lv;
        lv = nx;
    }
    CHECK_EQ(changes, 1);
    CHECK_EQ(lv, E);
    /* Zero hysteresis: a plain threshold. */
    const px_overload_thresholds_t z = {0.5, 0.9, 0.0};
    CHECK_EQ(px_overload_next(E, 0.4999, &z), N);
    CHECK_EQ(px_overload_next(C, 0.8999, &z), E);
    CHECK(strcmp(px_overload_level_name(C), "critical") == 0);
    CHECK(strcmp(px_overload_level_name(N), "normal") == 0);
}

TEST(limit_source)
{
    px_memory_cfg_t m = {0};
    m.limit_cgroup_fraction = 0.9;
    CHECK_EQ(px_overload_limit_for(&m, 0), 0);            /* no cgroup limit: off */
    CHECK_EQ(px_overload_limit_for(&m, 1000000), 900000); /* 90% of the cgroup limit */
    m.limit_bytes = 64u << 20;
    CHECK_EQ(px_overload_limit_for(&m, 1000000), 64u << 20); /* an explicit size wins */
    m.limit_bytes = 0;
    m.limit_cgroup_fraction = 0.0;
    CHECK_EQ(px_overload_limit_for(&m, 1000000), 0); /* "off" */
    m.limit_cgroup_fraction = 0.5;
    CHECK_EQ(px_overload_limit_for(&m, 1u << 30), 1u << 29);
}

TEST(cgroup_files)
{
    uint64_t v = 1;
    REQUIRE(put("f/num", "12345\n") == 0);
    CHECK_OK(px_cgroup_read_u64(path("f/num"), &v));
    CHECK_EQ(v, 12345);
    REQUIRE(put("f/max", "max\n") == 0);
    CHECK_OK(px_cgroup_read_u64(path("f/max"), &v));
    CHECK_EQ(v, 0);
    REQUIRE(put("f/v1none", "9223372036854771712\n") == 0);
    CHECK_OK(px_cgroup_read_u64(path("f/v1none"), &v));
    CHECK_EQ(v, 0);
    REQUIRE(put("f/bad", "12ab\n") == 0);
    CHECK_EQ(px_cgroup_read_u64(path("f/bad"), &v), -EINVAL);
    REQUIRE(put("f/empty", "") == 0);
    CHECK_EQ(px_cgroup_read_u64(path("f/empty"), &v), -EINVAL);
    CHECK_EQ(px_cgroup_read_u64(path("f/missing"), &v), -ENOENT);
    REQUIRE(put("f/stat", "anon 100\nfile 7\ninactive_file_x 1\ninactive_file 4096\n") == 0);
    CHECK_OK(px_cgroup_stat_get(path("f/stat"), "inactive_file", &v));
    CHECK_EQ(v, 4096);
    CHECK_OK(px_cgroup_stat_get(path("f/stat"), "file", &v));
    CHECK_EQ(v, 7);
    CHECK_EQ(px_cgroup_stat_get(path("f/stat"), "active_file", &v), -ENOENT);
    CHECK_EQ(px_cgroup_stat_get(path("f/nostat"), "file", &v), -ENOENT);
}

TEST(cgroup_v2_nested)
{
    /* root (no memory.max, as on a host) / a (100 MiB) / a/b ("max"): b is where we run. */
    REQUIRE(put("v2/cgroup.controllers", "cpuset cpu io memory pids\n") == 0);
    REQUIRE(put("v2/memory.stat", "anon 1\n") == 0);
    REQUIRE(put("v2/a/memory.max", "104857600\n") == 0);
    REQUIRE(put("v2/a/memory.current", "52428800\n") == 0);
    REQUIRE(put("v2/a/memory.stat", "anon 40000000\ninactive_file 2428800\n") == 0);
    REQUIRE(put("v2/a/b/memory.max", "max\n") == 0);
    REQUIRE(put("v2/a/b/memory.current", "1000\n") == 0);
    REQUIRE(put("proc-v2", "0::/a/b\n") == 0);
    px_cgroup_mem_t cg;
    char root[300];
    snprintf(root, sizeof(root), "%s/v2", tmp_dir);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v2"), &cg));
    CHECK_EQ(cg.version, 2);
    CHECK_EQ(cg.limit_bytes, 104857600); /* the ancestor's limit binds */
    CHECK(strstr(cg.dir, "/v2/a") != NULL && strstr(cg.dir, "/v2/a/b") == NULL);
    CHECK_EQ(cg.usage_bytes, 52428800);
    CHECK_EQ(cg.inactive_file_bytes, 2428800);
    /* A tighter limit deeper down wins. */
    REQUIRE(put("v2/a/b/memory.max", "33554432\n") == 0);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v2"), &cg));
    CHECK_EQ(cg.limit_bytes, 33554432);
    CHECK_EQ(cg.usage_bytes, 1000);
    CHECK_EQ(cg.inactive_file_bytes, 0); /* b has no memory.stat */
    /* Usage follows the file. */
    REQUIRE(put("v2/a/b/memory.current", "2000\n") == 0);
    CHECK_OK(px_cgroup_mem_read_usage(&cg));
    CHECK_EQ(cg.usage_bytes, 2000);
    /* A container without its own cgroup namespace: our path is not visible, and the mount's
     * root is our cgroup (memory.max at the root). */
    REQUIRE(put("v2c/cgroup.controllers", "memory\n") == 0);
    REQUIRE(put("v2c/memory.max", "268435456\n") == 0);
    REQUIRE(put("v2c/memory.current", "4096\n") == 0);
    REQUIRE(put("proc-v2c", "0::/docker/0123abcd\n") == 0);
    snprintf(root, sizeof(root), "%s/v2c", tmp_dir);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v2c"), &cg));
    CHECK_EQ(cg.version, 2);
    CHECK_EQ(cg.limit_bytes, 268435456);
    CHECK_EQ(cg.usage_bytes, 4096);
    /* Unlimited everywhere: measured, but no limit. */
    REQUIRE(put("v2u/cgroup.controllers", "memory\n") == 0);
    REQUIRE(put("v2u/x/memory.max", "max\n") == 0);
    REQUIRE(put("v2u/x/memory.current", "777\n") == 0);
    REQUIRE(put("proc-v2u", "0::/x\n") == 0);
    snprintf(root, sizeof(root), "%s/v2u", tmp_dir);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v2u"), &cg));
    CHECK_EQ(cg.limit_bytes, 0);
    CHECK_EQ(cg.usage_bytes, 777);
}

TEST(cgroup_v1_and_none)
{
    /* Hybrid host: v1 memory hierarchy under root/memory, a "0::/" line that must not be
     * taken for v2 (no cgroup.controllers at the root). */
    REQUIRE(put("v1/memory/memory.limit_in_bytes", "9223372036854771712\n") == 0);
    REQUIRE(put("v1/memory/w/memory.limit_in_bytes", "67108864\n") == 0);
    REQUIRE(put("v1/memory/w/memory.usage_in_bytes", "10485760\n") == 0);
    REQUIRE(put("v1/memory/w/memory.stat", "inactive_file 1\ntotal_inactive_file 1048576\n") == 0);
    REQUIRE(put("proc-v1", "9:name=systemd:/\n4:cpu,memory:/w\n0::/\n") == 0);
    px_cgroup_mem_t cg;
    char root[300];
    snprintf(root, sizeof(root), "%s/v1", tmp_dir);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v1"), &cg));
    CHECK_EQ(cg.version, 1);
    CHECK_EQ(cg.limit_bytes, 67108864);
    CHECK_EQ(cg.usage_bytes, 10485760);
    CHECK_EQ(cg.inactive_file_bytes, 1048576); /* the hierarchical figure */
    /* "memoryx" is not "memory". */
    REQUIRE(put("proc-v1x", "4:memoryx:/w\n") == 0);
    CHECK_OK(px_cgroup_mem_probe(root, path("proc-v1x"), &cg));
    CHECK_EQ(cg.limit_bytes, 0); /* fell back to the root: no limit */
    /* No memory controller at all. */
    REQUIRE(put("none/unified/cgroup.procs", "") == 0);
    snprintf(root, sizeof(root), "%s/none", tmp_dir);
    CHECK_EQ(px_cgroup_mem_probe(root, path("proc-v1"), &cg), -ENOENT);
    CHECK_EQ(cg.version, 0);
    CHECK_EQ(cg.limit_bytes, 0);
    /* Missing /proc file: the root's own figures. */
    snprintf(root, sizeof(root), "%s/v1", tmp_dir);
    CHECK_OK(px_cgroup_mem_probe(root, path("no-such-proc"), &cg));
    CHECK_EQ(cg.version, 1);
    CHECK_EQ(cg.limit_bytes, 0);
}

TEST(cgroup_cpu_quota)
{
    char root[300];
    /* v2: root (no cpu.max, as on a host) / pod ("250000 100000": 2.5 CPUs) / ctr ("max"). */
    REQUIRE(put("c2/cgroup.controllers", "cpuset cpu io memory pids\n") == 0);
    REQUIRE(put("c2/pod/cpu.max", "250000 100000\n") == 0);
    REQUIRE(put("c2/pod/ctr/cpu.max", "max 100000\n") == 0);
    REQUIRE(put("proc-c2", "0::/pod/ctr\n") == 0);
    snprintf(root, sizeof(root), "%s/c2", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c2")), 3); /* the ancestor's, rounded up */
    /* A tighter quota deeper down wins. */
    REQUIRE(put("c2/pod/ctr/cpu.max", "100000 100000\n") == 0);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c2")), 1);
    /* A container with its own cgroup namespace ("0::/"): the mount's root is ours. */
    REQUIRE(put("c2ns/cgroup.controllers", "cpu\n") == 0);
    REQUIRE(put("c2ns/cpu.max", "200000 100000\n") == 0);
    REQUIRE(put("proc-c2ns", "0::/\n") == 0);
    snprintf(root, sizeof(root), "%s/c2ns", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c2ns")), 2);
    /* Our cgroup's folder not visible (no namespace of its own): root itself. */
    REQUIRE(put("proc-c2hid", "0::/kubepods/burstable/pod1/abc\n") == 0);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c2hid")), 2);
    /* Unlimited everywhere. */
    REQUIRE(put("c2u/cgroup.controllers", "cpu\n") == 0);
    REQUIRE(put("c2u/x/cpu.max", "max 100000\n") == 0);
    REQUIRE(put("proc-c2u", "0::/x\n") == 0);
    snprintf(root, sizeof(root), "%s/c2u", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c2u")), 0);
    /* v1, the joint "cpu,cpuacct" hierarchy: -1 at the root (none), 1.5 CPUs in w. */
    REQUIRE(put("c1/cpu,cpuacct/cpu.cfs_quota_us", "-1\n") == 0);
    REQUIRE(put("c1/cpu,cpuacct/cpu.cfs_period_us", "100000\n") == 0);
    REQUIRE(put("c1/cpu,cpuacct/w/cpu.cfs_quota_us", "75000\n") == 0);
    REQUIRE(put("c1/cpu,cpuacct/w/cpu.cfs_period_us", "50000\n") == 0);
    REQUIRE(put("proc-c1", "9:name=systemd:/\n4:memory:/m\n2:cpu,cpuacct:/w\n0::/\n") == 0);
    snprintf(root, sizeof(root), "%s/c1", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c1")), 2);
    /* "cpuacct" alone is not "cpu": the root's (none). */
    REQUIRE(put("proc-c1x", "2:cpuacct:/w\n") == 0);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c1x")), 0);
    /* v1 "cpu" on its own, and no cpu controller at all. */
    REQUIRE(put("c1s/cpu/cpu.cfs_quota_us", "300000\n") == 0);
    REQUIRE(put("c1s/cpu/cpu.cfs_period_us", "100000\n") == 0);
    snprintf(root, sizeof(root), "%s/c1s", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("no-such-proc")), 3);
    snprintf(root, sizeof(root), "%s/none", tmp_dir);
    CHECK_EQ(px_cgroup_cpu_quota(root, path("proc-c1")), 0);
}

/* Allocates 32 KiB blocks until the budget's pressure reaches `target`. */
static size_t fill(void **blocks, size_t have, size_t max, double target)
{
    while (have < max && mem_budget_pressure() < target) {
        blocks[have] = mem_malloc(32768);
        if (blocks[have] == NULL)
            break;
        memset(blocks[have], 0xa5, 32768);
        have++;
    }
    return have;
}

/* Frees blocks (releasing cached memory as it goes) until the pressure is below `target`. */
static size_t drop_to(void **blocks, size_t have, double target)
{
    while (have > 0) {
        (void)mem_release_now();
        if (mem_budget_pressure() < target)
            break;
        for (int i = 0; i < 8 && have > 0; i++)
            mem_free(blocks[--have]);
    }
    return have;
}

/* Frees blocks from the end until `keep` remain. */
static size_t drop(void **blocks, size_t have, size_t keep)
{
    while (have > keep)
        mem_free(blocks[--have]);
    return have;
}

TEST(monitor_against_the_budget)
{
    px_config_t *cfg = NULL;
    REQUIRE(px_config_default(&cfg) == 0);
    px_server_t s;
    memset(&s, 0, sizeof(s));
    s.cfg = cfg;
    uv_loop_t loop;
    REQUIRE(uv_loop_init(&loop) == 0);
    const size_t limit = (size_t)32 << 20;
    mem_budget_set_limit(limit);
    enum { MAXB = 2048 };
    static void *blocks[MAXB];
    size_t nb = 0;
    px_overload_info_t info;

    px_overload_snapshot(&s, &info); /* no monitor yet: live figures, zero counts */
    CHECK_EQ(info.limit_bytes, limit);
    CHECK_EQ(info.samples, 0);
    REQUIRE(px_overload_start(&s, &loop) == 0);
    REQUIRE(s.overload != NULL);
    px_overload_snapshot(&s, &info);
    CHECK_EQ(info.level, N);
    CHECK_EQ(info.samples, 1);
    CHECK(info.thresholds.elevated == 0.80);
    CHECK_EQ(info.limit_bytes, limit);

    /* Held memory past elevated: ELEVATED, published for workers. */
    nb = fill(blocks, nb, MAXB, 0.86);
    REQUIRE(mem_budget_pressure() >= 0.86);
    px_overload_tick(&s);
    px_overload_snapshot(&s, &info);
    CHECK_EQ(px_server_overload(&s), E);
    CHECK_EQ(info.level, E);
    CHECK_EQ(info.transitions, 1);
    CHECK_EQ(info.entered_elevated, 1);
    CHECK(info.releases >= 1); /* released first, still above: acted */
    CHECK(info.pressure >= 0.80);
    CHECK(info.last_transition_ms > 0);

    /* Past critical. */
    nb = fill(blocks, nb, MAXB, 0.97);
    REQUIRE(mem_budget_pressure() >= 0.95);
    px_overload_tick(&s);
    px_overload_snapshot(&s, &info);
    CHECK_EQ(px_server_overload(&s), C);
    CHECK_EQ(info.entered_critical, 1);
    /* Critical ticks alternate: release only (the first), then shed if still critical. */
    CHECK_EQ(info.shed_requests, 0);
    CHECK(!px_overload__shed_now(&s));
    px_overload_tick(&s);
    CHECK_EQ(px_server_overload(&s), C);
    CHECK(px_overload__shed_now(&s));
    px_overload_tick(&s);
    CHECK(!px_overload__shed_now(&s));
    px_overload_snapshot(&s, &info);
    CHECK_EQ(info.shed_requests, 1);
    CHECK_EQ(info.transitions, 2);

    /* Free down into critical's hysteresis band [0.90, 0.95): stays CRITICAL. */
    nb = drop_to(blocks, nb, 0.93);
    double p = mem_budget_pressure();
    CHECK(p >= 0.90 && p < 0.95);
    px_overload_tick(&s);
    CHECK_EQ(px_server_overload(&s), C);

    /* Below 0.90 but inside elevated's band: one step down, to ELEVATED. */
    nb = drop_to(blocks, nb, 0.85);
    p = mem_budget_pressure();
    CHECK(p >= 0.80 && p < 0.90);
    px_overload_tick(&s);
    CHECK_EQ(px_server_overload(&s), E);
    nb = drop_to(blocks, nb, 0.77); /* [0.75, 0.80): holds */
    px_overload_tick(&s);
    CHECK_EQ(px_server_overload(&s), E);

    /* Free everything: recovery to NORMAL is automatic. */
    nb = drop(blocks, nb, 0);
    (void)mem_release_now();
    px_overload_tick(&s);
    px_overload_snapshot(&s, &info);
    CHECK_EQ(px_server_overload(&s), N);
    CHECK_EQ(info.level, N);
    CHECK(info.pressure < 0.75);
    uint64_t transitions = info.transitions;
    CHECK(transitions >= 3);

    /* Release first: memory freed but still cached must not raise the level. Fill past
     * elevated, free it all without releasing, tick: the monitor releases and stays. */
    nb = fill(blocks, nb, MAXB, 0.92);
    nb = drop(blocks, nb, 0);
    double raw = mem_budget_pressure();
    CHECK(raw >= 0.80); /* freed blocks stay cached in this thread until released */
    px_overload_snapshot(&s, &info);
    uint64_t releases = info.releases;
    px_overload_tick(&s);
    px_overload_snapshot(&s, &info);
    CHECK_EQ(px_server_overload(&s), N);
    CHECK_EQ(info.transitions, transitions);
    CHECK_EQ(info.releases, releases + 1); /* the release is what kept the level normal */
    CHECK(info.pressure < 0.80);
    fprintf(stderr, "  release-first: raw pressure %.2f after free, %.2f after release\n", raw,
            info.pressure);

    px_overload_stop(&s);
    px_overload_stop(&s); /* idempotent */
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK_EQ(uv_loop_close(&loop), 0);
    px_overload_free(&s);
    CHECK(s.overload == NULL);
    px_config_free(cfg);
    mem_budget_set_limit(0);
}

TEST(nothing_live)
{
    mem_stats_snapshot(&stats);
    CHECK_EQ(stats.live, 0);
}

int main(void)
{
    snprintf(tmp_dir, sizeof(tmp_dir), "/tmp/weir-overload-test.XXXXXX");
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = mem_init(NULL);
    if (rc != 0 && rc != -EALREADY) {
        fprintf(stderr, "mem_init: %d\n", rc);
        return 1;
    }
    RUN(levels_rise_at_thresholds);
    RUN(levels_fall_only_past_hysteresis);
    RUN(limit_source);
    RUN(cgroup_files);
    RUN(cgroup_v2_nested);
    RUN(cgroup_v1_and_none);
    RUN(cgroup_cpu_quota);
    RUN(monitor_against_the_budget);
    RUN(nothing_live);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return TEST_SUMMARY();
}
