/*
 * proxy/core/listener.c: SO_REUSEPORT listening sockets (see listener.h). Main thread only.
 */
#include "proxy/core/listener.h"
#include "mem/base.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <unistd.h>

int px_listener_socket(const struct sockaddr *sa, socklen_t sa_len, uint16_t *port_out)
{
    MEM_ASSERT(sa != NULL);
    MEM_ASSERT(port_out != NULL);
    int one = 1, rc;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0)
        goto fail;
    if (sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, sa, sa_len) != 0 || listen(fd, PX_LISTEN_BACKLOG) != 0)
        goto fail;
    struct sockaddr_storage got;
    socklen_t got_len = sizeof(got);
    if (getsockname(fd, (struct sockaddr *)&got, &got_len) != 0)
        goto fail;
    *port_out = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
                                                : ((struct sockaddr_in *)&got)->sin_port);
    return fd;
fail:
    rc = -errno;
    close(fd);
    return rc;
}

void px_listener_set_port(struct sockaddr_storage *out, const struct sockaddr *sa, socklen_t sa_len,
                          uint16_t port)
{
    MEM_ASSERT(sa_len <= sizeof(*out));
    memset(out, 0, sizeof(*out));
    memcpy(out, sa, sa_len);
    if (sa->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)out)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)out)->sin_port = htons(port);
}
