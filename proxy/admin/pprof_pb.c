/*
 * proxy/admin/pprof_pb.c: the encoder of pprof's protobuf profile (proxy/admin/pprof_pb.h).
 *
 * profile.proto (github.com/google/pprof/proto/profile.proto) field numbers used here:
 *   Profile:  1 sample_type, 2 sample, 4 location, 5 function, 6 string_table, 9 time_nanos,
 *             11 period_type, 12 period, 13 comment, 14 default_sample_type
 *   ValueType: 1 type, 2 unit          Sample: 1 location_id (packed), 2 value (packed), 3 label
 *   Label: 1 key, 2 str                Location: 1 id, 3 address, 4 line   Line: 1 function_id
 *   Function: 1 id, 2 name, 3 system_name
 * Fields may come in any order and repeated fields may be split, so the samples, locations
 * and functions are each encoded into their own buffer in one pass over the buckets and
 * concatenated at the end. No mapping is written: every location carries its function, so
 * pprof has nothing left to symbolize.
 *
 * One call owns all its state; nothing is kept between calls. Thread: any.
 */
#include "proxy/admin/pprof_pb.h"
#include "mem/base.h"

#include <dlfcn.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "mem/heapsnap.h"
#include "mem/malloc.h"
#include "proxy/admin/symbolize.h"

/* A profile of 8,192 buckets of 32 frames is a few MiB; anything past this is a bug. */
#define PB_LEN_MAX  (64u << 20)
#define PB_GZ_CHUNK 16384u
#define MAP_SLOTS0  1024u
#define STR_MAX_LEN 512u

/* ---- growable byte buffer ------------------------------------------------------------- */

typedef struct pb_s {
    uint8_t *p; /* owns: mem_malloc */
    size_t len, cap;
    int err; /* sticky */
} pb_t;

static void pb_fini(pb_t *b)
{
    mem_free(b->p);
    memset(b, 0, sizeof(*b));
}

static bool pb_reserve(pb_t *b, size_t more)
{
    if (b->err)
        return false;
    if (b->len + more <= b->cap)
        return true;
    size_t cap = MEM_MAX(b->cap * 2, MEM_MAX(b->len + more, (size_t)256));
    if (cap > PB_LEN_MAX) {
        b->err = -E2BIG;
        return false;
    }
    uint8_t *q = mem_realloc(b->p, cap);
    if (q == NULL) {
        b->err = -ENOMEM;
        return false;
    }
    b->p = q;
    b->cap = cap;
    return true;
}

static void pb_raw(pb_t *b, const void *p, size_t len)
{
    if (len == 0 || !pb_reserve(b, len))
        return;
    memcpy(b->p + b->len, p, len);
    b->len += len;
}

static void pb_varint(pb_t *b, uint64_t v)
{
    uint8_t tmp[10];
    size_t n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    MEM_ASSERT(n <= sizeof(tmp));
    pb_raw(b, tmp, n);
}

/* Wire types: 0 varint, 2 length-delimited. */
static void pb_uint(pb_t *b, unsigned field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3 | 0);
    pb_varint(b, v);
}

static void pb_bytes(pb_t *b, unsigned field, const void *p, size_t len)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, len);
    pb_raw(b, p, len);
}

/* A submessage from scratch buffer `sub` (emptied for reuse). */
static void pb_msg(pb_t *b, unsigned field, pb_t *sub)
{
    if (sub->err && !b->err)
        b->err = sub->err;
    pb_bytes(b, field, sub->p, sub->len);
    sub->len = 0;
}

/* ---- an open-addressing map from a 64-bit key to a 32-bit value ------------------------ */

typedef struct map_s {
    uint64_t *keys; /* owns: mem_malloc, cap entries; values follow in the same block */
    uint32_t *vals;
    size_t cap, cnt;
} map_t;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int map_init(map_t *m, size_t cap)
{
    MEM_ASSERT(MEM_IS_POW2(cap));
    m->keys = mem_calloc(cap, sizeof(uint64_t) + sizeof(uint32_t));
    if (m->keys == NULL)
        return -ENOMEM;
    m->vals = (uint32_t *)(m->keys + cap);
    m->cap = cap;
    m->cnt = 0;
    return 0;
}

static void map_fini(map_t *m)
{
    mem_free(m->keys);
    memset(m, 0, sizeof(*m));
}

/* The value for `key` (keys are never 0), or 0 when absent. */
static uint32_t map_get(const map_t *m, uint64_t key)
{
    MEM_ASSERT(key != 0);
    for (size_t i = mix(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == 0)
            return 0;
    }
}

static int map_put(map_t *m, uint64_t key, uint32_t val)
{
    MEM_ASSERT(key != 0 && val != 0);
    if ((m->cnt + 1) * 2 > m->cap) {
        map_t n;
        if (map_init(&n, m->cap * 2) != 0)
            return -ENOMEM;
        for (size_t i = 0; i < m->cap; i++)
            if (m->keys[i] != 0)
                (void)map_put(&n, m->keys[i], m->vals[i]);
        map_fini(m);
        *m = n;
    }
    size_t i = mix(key) & (m->cap - 1);
    while (m->keys[i] != 0)
        i = (i + 1) & (m->cap - 1);
    m->keys[i] = key;
    m->vals[i] = val;
    m->cnt++;
    return 0;
}

/* ---- the profile under construction --------------------------------------------------- */

typedef struct prof_s {
    pb_t samples, locs, funcs, strs; /* encoded repeated fields of Profile */
    pb_t sub, sub2;                  /* scratch for submessages */
    map_t str_ix;                    /* FNV-1a of the string -> string index + 1 */
    map_t loc_ix;                    /* pc -> location id */
    map_t fn_ix;                     /* name's string index + 1 -> function id */
    uint32_t strs_cnt, locs_cnt, fns_cnt;
    px_symbolizer_t *sym; /* owns */
    size_t interval;
    int err;
} prof_t;

static uint64_t fnv(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

/* The string table index of `s` (adding it). Distinct strings whose hashes collide would
 * share an index; with 64-bit hashes over a few thousand names that does not happen in
 * practice, and the outcome would be a wrong name, never a malformed profile. */
static uint64_t str_ix(prof_t *pr, const char *s)
{
    size_t len = strnlen(s, STR_MAX_LEN);
    uint64_t h = fnv(s, len);
    uint32_t v = map_get(&pr->str_ix, h);
    if (v != 0)
        return v - 1;
    uint32_t ix = pr->strs_cnt++;
    pb_bytes(&pr->strs, 6, s, len);
    if (map_put(&pr->str_ix, h, ix + 1) != 0)
        pr->err = -ENOMEM;
    return ix;
}

static uint64_t fn_id(prof_t *pr, const char *name)
{
    uint64_t s = str_ix(pr, name);
    uint32_t id = map_get(&pr->fn_ix, s + 1);
    if (id != 0)
        return id;
    id = ++pr->fns_cnt;
    pb_uint(&pr->sub, 1, id);
    pb_uint(&pr->sub, 2, s);
    pb_uint(&pr->sub, 3, s);
    pb_msg(&pr->funcs, 5, &pr->sub);
    if (map_put(&pr->fn_ix, s + 1, id) != 0)
        pr->err = -ENOMEM;
    return id;
}

static uint64_t loc_id(prof_t *pr, const void *pc)
{
    uint64_t key = (uint64_t)(uintptr_t)pc;
    if (key == 0)
        key = 1; /* never a real return address */
    uint32_t id = map_get(&pr->loc_ix, key);
    if (id != 0)
        return id;
    const char *name = px_symbolizer_name(pr->sym, pc);
    char alt[128];
    if (name == NULL) {
        /* A library's static function (no symbol left in its stripped image): name it by
         * object and offset, which `addr2line -e` resolves against the debug file. */
        Dl_info di;
        memset(&di, 0, sizeof(di));
        if (dladdr(pc, &di) != 0 && di.dli_fname != NULL && di.dli_fbase != NULL) {
            const char *base = strrchr(di.dli_fname, '/');
            snprintf(alt, sizeof(alt), "%s+0x%llx", base ? base + 1 : di.dli_fname,
                     (unsigned long long)(key - (uint64_t)(uintptr_t)di.dli_fbase));
        } else {
            snprintf(alt, sizeof(alt), "0x%llx", (unsigned long long)key);
        }
        name = alt;
    }
    uint64_t fid = fn_id(pr, name);
    id = ++pr->locs_cnt;
    pb_uint(&pr->sub, 1, id);
    pb_uint(&pr->sub, 3, key);
    pb_uint(&pr->sub2, 1, fid);
    pb_msg(&pr->sub, 4, &pr->sub2);
    pb_msg(&pr->locs, 4, &pr->sub);
    if (map_put(&pr->loc_ix, key, id) != 0)
        pr->err = -ENOMEM;
    return id;
}

/* pprof's un-sampling (as for the legacy heap_v2 format): a sample of average size s was
 * taken with probability 1 - exp(-s / interval), so it stands for 1 / that many. */
static void unsample(size_t interval, uint64_t objs, uint64_t bytes, uint64_t out[2])
{
    out[0] = objs;
    out[1] = bytes;
    if (interval <= 1 || objs == 0)
        return;
    double avg = (double)bytes / (double)objs;
    double scale = 1.0 / (1.0 - exp(-avg / (double)interval));
    out[0] = (uint64_t)((double)objs * scale + 0.5);
    out[1] = (uint64_t)((double)bytes * scale + 0.5);
}

static void label(prof_t *pr, const char *key, const char *val)
{
    pb_uint(&pr->sub2, 1, str_ix(pr, key));
    pb_uint(&pr->sub2, 2, str_ix(pr, val));
    pb_msg(&pr->sub, 3, &pr->sub2);
}

static int on_row(void *ud, const mem_heapprof_row_t *r)
{
    prof_t *pr = ud;
    MEM_ASSERT(r->depth <= MEM_HEAPPROF_FRAMES_MAX);
    MEM_ASSERT(r->live_objs <= r->alloc_objs);
    if (r->alloc_objs == 0)
        return 0;
    uint64_t ids[MEM_HEAPPROF_FRAMES_MAX];
    for (uint32_t f = 0; f < r->depth; f++)
        ids[f] = loc_id(pr, r->pcs[f]);
    /* Sample.location_id, packed. The sample's scratch is `sub`: loc_id() used it and left
     * it empty. */
    pb_t *packed = &pr->sub2;
    for (uint32_t f = 0; f < r->depth; f++)
        pb_varint(packed, ids[f]);
    pb_bytes(&pr->sub, 1, packed->p, packed->len);
    packed->len = 0;
    uint64_t a[2], l[2];
    unsample(pr->interval, r->alloc_objs, r->alloc_bytes, a);
    unsample(pr->interval, r->live_objs, r->live_bytes, l);
    uint64_t vals[4] = {a[0], a[1], l[0], l[1]};
    for (unsigned k = 0; k < 4; k++)
        pb_varint(packed, vals[k]);
    pb_bytes(&pr->sub, 2, packed->p, packed->len);
    packed->len = 0;
    /* Labels: the sample's own scratch `sub` is being filled, so a label goes through
     * `sub2` (label() appends it to `sub`). */
    label(pr, "worker", r->thread[0] ? r->thread : "unknown");
    label(pr, "owner", r->owner);
    bool bump = strcmp(r->owner, "region") == 0 || strcmp(r->owner, "subregion") == 0;
    if (!bump) {
        char sc[16];
        if (r->sc_bytes)
            snprintf(sc, sizeof(sc), "%u", r->sc_bytes);
        else
            snprintf(sc, sizeof(sc), "large");
        label(pr, "size_class", sc);
    }
    pb_msg(&pr->samples, 2, &pr->sub);
    if (pr->err == 0)
        pr->err = pr->samples.err ? pr->samples.err : pr->locs.err ? pr->locs.err : pr->funcs.err;
    return pr->err;
}

static void value_type(prof_t *pr, pb_t *out, unsigned field, const char *type, const char *unit)
{
    pb_uint(&pr->sub2, 1, str_ix(pr, type));
    pb_uint(&pr->sub2, 2, str_ix(pr, unit));
    pb_msg(out, field, &pr->sub2);
}

/* ---- gzip ------------------------------------------------------------------------------ */

static voidpf on_zalloc(voidpf opaque, uInt items, uInt size)
{
    (void)opaque;
    return mem_calloc(items, size);
}

static void on_zfree(voidpf opaque, voidpf p)
{
    (void)opaque;
    mem_free(p);
}

static int gzip_out(const pb_t *in, mem_write_fn write, void *ud)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    z.zalloc = on_zalloc;
    z.zfree = on_zfree;
    /* windowBits 15 + 16: a gzip header and trailer instead of zlib's. memLevel 8 keeps the
     * state at about 256 KiB. */
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    uint8_t *chunk = mem_malloc(PB_GZ_CHUNK);
    if (chunk == NULL) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = in->p;
    z.avail_in = (uInt)in->len;
    int err = 0, zr;
    do {
        z.next_out = chunk;
        z.avail_out = PB_GZ_CHUNK;
        zr = deflate(&z, Z_FINISH);
        if (zr == Z_STREAM_ERROR || (zr == Z_BUF_ERROR && z.avail_out == PB_GZ_CHUNK)) {
            err = -ENOMEM;
            break;
        }
        size_t n = PB_GZ_CHUNK - z.avail_out;
        if (n > 0)
            err = write(ud, (const char *)chunk, n);
    } while (zr != Z_STREAM_END && err == 0);
    mem_free(chunk);
    deflateEnd(&z);
    return err;
}

/* ---- the whole profile ----------------------------------------------------------------- */

static uint64_t time_nanos(long which)
{
    mem_heapsnap_info_t hi;
    if (which != MEM_HEAPSNAP_LIVE && mem_heapsnap_info(which, &hi) == 0)
        return hi.wall_ms * 1000000u;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int px_pprof_pb_write(long which, mem_write_fn write, void *ud)
{
    MEM_ASSERT(write != NULL);
    prof_t *pr = mem_calloc(1, sizeof(*pr));
    if (pr == NULL)
        return -ENOMEM;
    pb_t out;
    memset(&out, 0, sizeof(out));
    int err = -ENOMEM;
    pr->sym = px_symbolizer_new();
    if (pr->sym == NULL || map_init(&pr->str_ix, MAP_SLOTS0) != 0 ||
        map_init(&pr->loc_ix, MAP_SLOTS0) != 0 || map_init(&pr->fn_ix, MAP_SLOTS0) != 0)
        goto done;
    (void)str_ix(pr, ""); /* string_table[0] must be "" */
    MEM_ASSERT(pr->strs_cnt == 1);
    err = mem_heapprof_each_row(which, on_row, pr, &pr->interval);
    if (err == 0)
        err = pr->err;
    if (err != 0)
        goto done;
    value_type(pr, &out, 1, "alloc_objects", "count");
    value_type(pr, &out, 1, "alloc_space", "bytes");
    value_type(pr, &out, 1, "inuse_objects", "count");
    value_type(pr, &out, 1, "inuse_space", "bytes");
    pb_raw(&out, pr->samples.p, pr->samples.len);
    pb_raw(&out, pr->locs.p, pr->locs.len);
    pb_raw(&out, pr->funcs.p, pr->funcs.len);
    pb_uint(&out, 9, time_nanos(which));
    value_type(pr, &out, 11, "space", "bytes");
    pb_uint(&out, 12, pr->interval ? pr->interval : 1);
    char comment[96];
    snprintf(comment, sizeof(comment), "weir heap profile: %s",
             which == MEM_HEAPSNAP_LIVE   ? "live"
             : which == MEM_HEAPSNAP_PEAK ? "peak snapshot"
                                          : "overload snapshot");
    pb_uint(&out, 13, str_ix(pr, comment));
    pb_uint(&out, 14, str_ix(pr, "inuse_space"));
    /* The string table last: every index above has been handed out by now. */
    pb_raw(&out, pr->strs.p, pr->strs.len);
    err = out.err ? out.err : pr->err ? pr->err : pr->strs.err ? pr->strs.err : pr->sub2.err;
    if (err == 0)
        err = gzip_out(&out, write, ud);
done:
    pb_fini(&out);
    pb_fini(&pr->samples);
    pb_fini(&pr->locs);
    pb_fini(&pr->funcs);
    pb_fini(&pr->strs);
    pb_fini(&pr->sub);
    pb_fini(&pr->sub2);
    map_fini(&pr->str_ix);
    map_fini(&pr->loc_ix);
    map_fini(&pr->fn_ix);
    px_symbolizer_free(pr->sym);
    mem_free(pr);
    return err;
}
