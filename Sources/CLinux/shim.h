// Linux system calls and constants that Swift's Glibc module does not expose.
#ifndef PARLEY_CLINUX_SHIM_H
#define PARLEY_CLINUX_SHIM_H

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>
#include <fcntl.h>
#include <malloc.h>

#ifndef __USE_GNU
// Glibc declares these only with _GNU_SOURCE, which the Clang importer does not set.
struct mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};
extern int accept4(int fd, struct sockaddr *addr, socklen_t *addr_len, int flags);
extern int sendmmsg(int fd, struct mmsghdr *vmessages, unsigned int vlen, int flags);
extern int recvmmsg(int fd, struct mmsghdr *vmessages, unsigned int vlen, int flags,
                    struct timespec *tmo);
extern int pipe2(int pipedes[2], int flags);
#endif

#endif
