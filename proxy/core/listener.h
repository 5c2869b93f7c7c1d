/*
 * proxy/core/listener.h: one listening socket of one worker, made by hand with SO_REUSEPORT so
 * every worker accepts on its own socket for the same address (libuv 1.44 has no
 * UV_TCP_REUSEPORT).
 *
 * The sockets are created by the main thread before workers start (so bind errors are
 * reported at start-up and port 0 resolves to one port for all workers); each worker then
 * adopts its descriptors with uv_tcp_open.
 */
#ifndef PX_LISTENER_H
#define PX_LISTENER_H

#include "mem/base.h"

#include <sys/socket.h>

#define PX_LISTEN_BACKLOG 1024

/* Creates a non-blocking TCP socket with SO_REUSEADDR and SO_REUSEPORT, binds it to `sa`
 * and listens. `*port_out` gets the bound port (useful when `sa` says port 0).
 * Returns the descriptor or a negative errno. Ownership: gives (close(2)). Thread: main. */
int px_listener_socket(const struct sockaddr *sa, socklen_t sa_len, uint16_t *port_out);

/* Copies `sa` into `out` with its port replaced by `port`. */
void px_listener_set_port(struct sockaddr_storage *out, const struct sockaddr *sa, socklen_t sa_len,
                          uint16_t port);

#endif /* PX_LISTENER_H */
