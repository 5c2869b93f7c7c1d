/*
 * proxy/core/cfgwatch.c: the config file watch (see cfgwatch.h): inotify on the file's folder,
 * a settle timer, and a hash of the file's bytes; a stat poll where inotify cannot be had.
 *
 * Everything runs on the main loop; the watch is freed in its last handle's close callback.
 */
#include "proxy/core/cfgwatch.h"
#include "mem/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "mem/malloc.h"

struct px_cfgwatch_s {
    uv_poll_t event;   /* the folder's inotify descriptor, when inotify works */
    int ifd;           /* owns: that descriptor (closed once `event` has closed), or -1 */
    uv_fs_poll_t poll; /* the file, otherwise */
    uv_timer_t settle;
    bool use_event;
    int handles_open;
    char *path;       /* owns */
    const char *base; /* borrows path: the file's name in its folder */
    uint64_t hash;
    void (*on_change)(void *ud);
    void *ud;
};

int px_cfgwatch_file_hash(const char *path, uint64_t *out)
{
    MEM_ASSERT(path != NULL);
    MEM_ASSERT(out != NULL);
    /* open/read, not stdio: fopen takes its buffer from libc's malloc, and weir makes no libc
     * allocation once it serves (e2e 08 and 93 count them); the folder may see many events. */
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    uint64_t h = 0xcbf29ce484222325ull;
    unsigned char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            h = (h ^ buf[i]) * 0x100000001b3ull;
    }
    int rc = n < 0 ? -errno : 0;
    close(fd);
    if (rc == 0)
        *out = h;
    return rc;
}

static void on_settle(uv_timer_t *t)
{
    px_cfgwatch_t *w = t->data;
    uint64_t h;
    /* A file missing in the middle of a swap: the next event looks again. */
    if (px_cfgwatch_file_hash(w->path, &h) != 0 || h == w->hash)
        return;
    w->hash = h;
    w->on_change(w->ud);
}

/* Whether an event on `name` in the folder may change the file: the file itself, or a name
 * Kubernetes swaps in (`..data`, `..2024_...`). Writes to other files there (logs beside the
 * config) are not looked at. */
static bool event_concerns(const px_cfgwatch_t *w, const char *name)
{
    return strcmp(name, w->base) == 0 || (name[0] == '.' && name[1] == '.');
}

static void on_event(uv_poll_t *e, int status, int events)
{
    (void)events;
    px_cfgwatch_t *w = e->data;
    if (status < 0)
        return;
    /* inotify_event records, aligned as the kernel writes them. */
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool concerns = false;
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));
        if (n <= 0)
            break; /* EAGAIN: drained */
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *)(void *)p;
            if ((ev->mask & IN_Q_OVERFLOW) || (ev->len > 0 && event_concerns(w, ev->name)))
                concerns = true;
            p += sizeof(*ev) + ev->len;
        }
    }
    if (concerns)
        uv_timer_start(&w->settle, on_settle, PX_CFGWATCH_SETTLE_MS, 0);
}

static void on_poll(uv_fs_poll_t *p, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    (void)prev;
    (void)curr;
    px_cfgwatch_t *w = p->data;
    if (status < 0 && status != UV_ENOENT)
        return;
    uv_timer_start(&w->settle, on_settle, PX_CFGWATCH_SETTLE_MS, 0);
}

static void on_closed(uv_handle_t *h)
{
    px_cfgwatch_t *w = h->data;
    MEM_ASSERT(w->handles_open > 0);
    if (h == (uv_handle_t *)&w->event && w->ifd >= 0) {
        close(w->ifd); /* after its poll handle: libuv no longer watches it */
        w->ifd = -1;
    }
    if (--w->handles_open > 0)
        return;
    mem_free(w->path);
    mem_free(w);
}

/* The folder of `path` into `out` ("." for a bare name). */
static void folder_of(const char *path, char *out, size_t out_len)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        snprintf(out, out_len, ".");
    else if (slash == path)
        snprintf(out, out_len, "/");
    else
        snprintf(out, out_len, "%.*s", (int)(slash - path), path);
}

int px_cfgwatch_start(uv_loop_t *loop, const char *path, uint64_t hash, uint32_t poll_ms,
                      bool poll_only, void (*on_change)(void *ud), void *ud, px_cfgwatch_t **out,
                      bool *inotify)
{
    MEM_ASSERT(loop != NULL && path != NULL);
    MEM_ASSERT(on_change != NULL && out != NULL);
    px_cfgwatch_t *w = mem_calloc(1, sizeof(*w));
    char *copy = mem_strdup(path);
    if (w == NULL || copy == NULL) {
        mem_free(copy);
        mem_free(w);
        return -ENOMEM;
    }
    w->path = copy;
    const char *slash = strrchr(copy, '/');
    w->base = slash != NULL ? slash + 1 : copy;
    w->hash = hash;
    w->on_change = on_change;
    w->ud = ud;
    uv_timer_init(loop, &w->settle);
    w->settle.data = w;
    w->handles_open = 1;
    char dir[4096];
    folder_of(path, dir, sizeof(dir));
    /* The events that can change the file: a write closed, a rename into the folder (an
     * editor's save, Kubernetes' ..data swap), a name made or removed. Not IN_MODIFY: a log
     * written beside the config would wake the main loop on every write. */
    w->ifd = -1;
    int rc = UV_ENOTSUP;
    if (!poll_only) {
        w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        rc = w->ifd < 0 ? -errno : 0;
        if (rc == 0 && inotify_add_watch(w->ifd, dir,
                                         IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                             IN_DELETE | IN_ATTRIB) < 0)
            rc = -errno;
        if (rc == 0)
            rc = uv_poll_init(loop, &w->event, w->ifd);
        if (rc == 0) {
            w->event.data = w;
            w->handles_open++;
            rc = uv_poll_start(&w->event, UV_READABLE, on_event);
            if (rc == 0)
                w->use_event = true;
            else
                uv_close((uv_handle_t *)&w->event, on_closed); /* closes ifd */
        } else if (w->ifd >= 0) {
            close(w->ifd);
            w->ifd = -1;
        }
    }
    if (!w->use_event) {
        rc = uv_fs_poll_init(loop, &w->poll);
        if (rc == 0) {
            w->poll.data = w;
            w->handles_open++;
            rc = uv_fs_poll_start(&w->poll, on_poll, path, poll_ms);
        }
        if (rc != 0) {
            px_cfgwatch_stop(w);
            return rc;
        }
    }
    *inotify = w->use_event;
    *out = w;
    return 0;
}

void px_cfgwatch_set_hash(px_cfgwatch_t *w, uint64_t hash)
{
    MEM_ASSERT(w != NULL);
    w->hash = hash;
}

void px_cfgwatch_stop(px_cfgwatch_t *w)
{
    if (w == NULL)
        return;
    MEM_ASSERT(w->handles_open > 0);
    uv_timer_stop(&w->settle);
    uv_close((uv_handle_t *)&w->settle, on_closed);
    if (w->use_event)
        uv_close((uv_handle_t *)&w->event, on_closed);
    else if (!uv_is_closing((uv_handle_t *)&w->poll) && w->poll.data == w)
        uv_close((uv_handle_t *)&w->poll, on_closed);
}
