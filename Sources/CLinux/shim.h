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

// io_uring through its raw system calls (no liburing): a submission ring used to
// hand a loop turn's socket sends to the kernel in one io_uring_enter.
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <string.h>
#include <errno.h>

#ifndef IORING_SETUP_COOP_TASKRUN
#define IORING_SETUP_COOP_TASKRUN (1U << 8)
#endif
#ifndef IORING_SETUP_SUBMIT_ALL
#define IORING_SETUP_SUBMIT_ALL (1U << 7)
#endif

struct parley_ring {
    int fd;
    unsigned entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
    void *ring_map;
    size_t ring_map_len;
    size_t sqe_map_len;
    unsigned queued;   /* SQEs written since the last submit */
};

/* 0, or -errno (ENOSYS: no io_uring; EPERM: refused by policy or seccomp). */
static inline int parley_ring_init(struct parley_ring *r, unsigned entries) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    /* Completions need no interrupt; a send refused at submission does not stop
       the ones after it. (Not SINGLE_ISSUER: a loop is made on one thread and run
       on another, and another loop's thread may submit while it is parked.) */
    p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
    int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    if (fd < 0 && errno == EINVAL) {
        /* A kernel older than the flags: plain set-up. */
        memset(&p, 0, sizeof p);
        fd = (int)syscall(__NR_io_uring_setup, entries, &p);
    }
    if (fd < 0) return -errno;
    if (!(p.features & IORING_FEAT_SINGLE_MMAP)) { close(fd); return -ENOTSUP; }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t len = sq_len > cq_len ? sq_len : cq_len;
    char *map = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (map == MAP_FAILED) { int e = errno; close(fd); return -e; }
    size_t sqe_len = p.sq_entries * sizeof(struct io_uring_sqe);
    void *sqes = mmap(0, sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) { int e = errno; munmap(map, len); close(fd); return -e; }
    r->fd = fd;
    r->entries = p.sq_entries;
    r->sq_head = (unsigned *)(map + p.sq_off.head);
    r->sq_tail = (unsigned *)(map + p.sq_off.tail);
    r->sq_mask = (unsigned *)(map + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(map + p.sq_off.array);
    r->cq_head = (unsigned *)(map + p.cq_off.head);
    r->cq_tail = (unsigned *)(map + p.cq_off.tail);
    r->cq_mask = (unsigned *)(map + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(map + p.cq_off.cqes);
    r->sqes = (struct io_uring_sqe *)sqes;
    r->ring_map = map;
    r->ring_map_len = len;
    r->sqe_map_len = sqe_len;
    return 0;
}

static inline void parley_ring_close(struct parley_ring *r) {
    if (r->fd < 0) return;
    munmap(r->sqes, r->sqe_map_len);
    munmap(r->ring_map, r->ring_map_len);
    close(r->fd);
    r->fd = -1;
}

/* Queues a non-blocking send (a full socket completes with -EAGAIN, never waits).
   0, or -1 when the ring is full (submit first). */
static inline int parley_ring_send(struct parley_ring *r, int fd, const void *buf, unsigned len,
                                   unsigned long long tag) {
    unsigned tail = *r->sq_tail;
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    if (tail - head >= r->entries) return -1;
    unsigned index = tail & *r->sq_mask;
    struct io_uring_sqe *e = &r->sqes[index];
    memset(e, 0, sizeof *e);
    e->opcode = IORING_OP_SEND;
    e->fd = fd;
    e->addr = (unsigned long long)(uintptr_t)buf;
    e->len = len;
    e->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
    e->user_data = tag;
    r->sq_array[index] = index;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    r->queued++;
    return 0;
}

/* Submits what is queued and waits until `wait` completions are there.
   The number submitted, or -errno. */
static inline int parley_ring_submit(struct parley_ring *r, unsigned wait) {
    for (;;) {
        int n = (int)syscall(__NR_io_uring_enter, r->fd, r->queued, wait, wait ? IORING_ENTER_GETEVENTS : 0,
                             NULL, (size_t)0);
        if (n >= 0) { r->queued -= (unsigned)n > r->queued ? r->queued : (unsigned)n; return n; }
        if (errno != EINTR) return -errno;
    }
}

/* Takes back what the kernel did not consume from the submission ring (a failed
   or short submit), so that it is never sent later. The number taken back. */
static inline unsigned parley_ring_unqueue(struct parley_ring *r) {
    unsigned head = __atomic_load_n(r->sq_head, __ATOMIC_ACQUIRE);
    unsigned tail = *r->sq_tail;
    __atomic_store_n(r->sq_tail, head, __ATOMIC_RELEASE);
    r->queued = 0;
    return tail - head;
}

/* Takes one completion: 1 with its tag and result (bytes or -errno), or 0 when none is there. */
static inline int parley_ring_reap(struct parley_ring *r, unsigned long long *tag, int *result) {
    unsigned head = *r->cq_head;
    if (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) return 0;
    struct io_uring_cqe *c = &r->cqes[head & *r->cq_mask];
    *tag = c->user_data;
    *result = c->res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

#endif
