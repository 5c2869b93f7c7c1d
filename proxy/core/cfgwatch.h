/*
 * proxy/core/cfgwatch.h: watches the config file and says when its bytes changed, so that weir
 * reloads a Kubernetes ConfigMap without a sidecar.
 *
 * Kubernetes updates a mounted ConfigMap by writing a new timestamped folder and renaming a
 * `..data` symlink over the old one: the file's own inode never changes, and a watch on the file
 * sees nothing. So the watch is on the file's folder (inotify: a write closed, a rename, a name
 * made or removed, for the file's own name or a Kubernetes "..*" name; never IN_MODIFY, so a log
 * written beside the config wakes nothing), any such event
 * there starts a short settle timer, and then the file's bytes are hashed again and compared
 * with the last hash: only a real change calls back. Where inotify is unavailable (or the
 * folder cannot be watched) a stat poll (uv_fs_poll_t, which follows the symlink) stands in.
 *
 * One per server, on the main loop; created and closed by proxy/core/reload.c.
 */
#ifndef PX_CFGWATCH_H
#define PX_CFGWATCH_H

#include "mem/base.h"

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

typedef struct px_cfgwatch_s px_cfgwatch_t;

/* How long after the last event in the folder the file is read (a ConfigMap update is a few
 * renames in a row). */
#define PX_CFGWATCH_SETTLE_MS 200u

/* FNV-1a 64 of the bytes of `path` (following symlinks) into `*out`. Returns 0 or a negative
 * errno. Thread: any. Alloc: none. */
int px_cfgwatch_file_hash(const char *path, uint64_t *out);

/* Starts watching `path` on `loop`; `on_change(ud)` runs on that loop when the file's bytes
 * differ from `hash` (and from then on, from the last bytes seen). `poll_ms` is the stat poll
 * interval of the fallback; `poll_only` skips inotify (a network or FUSE file system, whose
 * changes made elsewhere raise no inotify event). `*inotify` says which way it watches. Returns 0
 * or a negative errno. Ownership: gives `*out` (px_cfgwatch_stop). Thread: the loop's. Alloc:
 * tcache. */
int px_cfgwatch_start(uv_loop_t *loop, const char *path, uint64_t hash, uint32_t poll_ms,
                      bool poll_only, void (*on_change)(void *ud), void *ud, px_cfgwatch_t **out,
                      bool *inotify);

/* Records `hash` as the file's last seen bytes (after a reload read the file). */
void px_cfgwatch_set_hash(px_cfgwatch_t *w, uint64_t hash);

/* Stops and frees the watch (its memory goes in the last close callback). NULL is ignored.
 * Thread: the loop's. */
void px_cfgwatch_stop(px_cfgwatch_t *w);

#endif /* PX_CFGWATCH_H */
