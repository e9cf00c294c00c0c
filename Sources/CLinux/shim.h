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
#include <sys/syscall.h>

// read, write and epoll_wait straight through syscall(2): glibc's own wrappers are
// thread cancellation points, and in a multi-threaded process each call switches
// asynchronous cancellation on and off around the system call (two calls into
// libpthread per read or write, per message on the forwarding path). Parley never
// cancels a thread. Results and errno are those of the usual wrappers.
static inline ssize_t parley_read(int fd, void *buf, size_t count) {
    return syscall(SYS_read, fd, buf, count);
}
static inline ssize_t parley_write(int fd, const void *buf, size_t count) {
    return syscall(SYS_write, fd, buf, count);
}
/* epoll_pwait with no signal mask is epoll_wait; SYS_epoll_wait is missing on some architectures. */
static inline int parley_epoll_wait(int epfd, struct epoll_event *events, int max, int timeout) {
    return (int)syscall(SYS_epoll_pwait, epfd, events, max, timeout, (void *)0, (size_t)8);  /* the kernel's sigset: 64 bits */
}

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
// hand a loop turn's socket sends to the kernel in one io_uring_enter. The kernel's
// ABI is declared here rather than taken from <linux/io_uring.h>: the kernel's UAPI
// headers in this module hid glibc's socket names from Swift code that imports Glibc.
#include <sys/mman.h>
#include <string.h>
#include <errno.h>
#include <stdint.h>

#define PARLEY_NR_io_uring_setup 425   /* the same number on every architecture */
#define PARLEY_NR_io_uring_enter 426
#define PARLEY_IORING_OFF_SQ_RING 0ULL
#define PARLEY_IORING_OFF_SQES 0x10000000ULL
#define PARLEY_IORING_ENTER_GETEVENTS 1U
#define PARLEY_IORING_FEAT_SINGLE_MMAP 1U
#define PARLEY_IORING_SETUP_SUBMIT_ALL (1U << 7)
#define PARLEY_IORING_SETUP_COOP_TASKRUN (1U << 8)
#define PARLEY_IORING_OP_SEND 26

struct parley_sqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, flags, dropped, array, resv1;
    uint64_t user_addr;
};
struct parley_cqring_offsets {
    uint32_t head, tail, ring_mask, ring_entries, overflow, cqes, flags, resv1;
    uint64_t user_addr;
};
struct parley_uring_params {
    uint32_t sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle, features, wq_fd, resv[3];
    struct parley_sqring_offsets sq_off;
    struct parley_cqring_offsets cq_off;
};
struct parley_uring_sqe {
    uint8_t opcode, flags;
    uint16_t ioprio;
    int32_t fd;
    uint64_t off, addr;
    uint32_t len, msg_flags;
    uint64_t user_data;
    uint16_t buf_index, personality;
    int32_t splice_fd_in;
    uint64_t addr3, pad2;
};
struct parley_uring_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
_Static_assert(sizeof(struct parley_uring_params) == 120, "io_uring_params");
_Static_assert(sizeof(struct parley_uring_sqe) == 64, "io_uring_sqe");
_Static_assert(sizeof(struct parley_uring_cqe) == 16, "io_uring_cqe");

extern long syscall(long number, ...);

struct parley_ring {
    int fd;
    unsigned entries;
    unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct parley_uring_sqe *sqes;
    struct parley_uring_cqe *cqes;
    void *ring_map;
    size_t ring_map_len;
    size_t sqe_map_len;
    unsigned queued;   /* SQEs written since the last submit */
};

/* 0, or -errno (ENOSYS: no io_uring; EPERM: refused by policy or seccomp). */
static inline int parley_ring_init(struct parley_ring *r, unsigned entries) {
    memset(r, 0, sizeof *r);
    r->fd = -1;
    struct parley_uring_params p;
    memset(&p, 0, sizeof p);
    /* Completions need no interrupt; a send refused at submission does not stop
       the ones after it. (Not SINGLE_ISSUER: a loop is made on one thread and run
       on another, and another loop's thread may submit while it is parked.) */
    p.flags = PARLEY_IORING_SETUP_COOP_TASKRUN | PARLEY_IORING_SETUP_SUBMIT_ALL;
    int fd = (int)syscall(PARLEY_NR_io_uring_setup, entries, &p);
    if (fd < 0 && errno == EINVAL) {
        /* A kernel older than the flags: plain set-up. */
        memset(&p, 0, sizeof p);
        fd = (int)syscall(PARLEY_NR_io_uring_setup, entries, &p);
    }
    if (fd < 0) return -errno;
    if (!(p.features & PARLEY_IORING_FEAT_SINGLE_MMAP)) { close(fd); return -ENOTSUP; }
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct parley_uring_cqe);
    size_t len = sq_len > cq_len ? sq_len : cq_len;
    char *map = mmap(0, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, PARLEY_IORING_OFF_SQ_RING);
    if (map == MAP_FAILED) { int e = errno; close(fd); return -e; }
    size_t sqe_len = p.sq_entries * sizeof(struct parley_uring_sqe);
    void *sqes = mmap(0, sqe_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, PARLEY_IORING_OFF_SQES);
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
    r->cqes = (struct parley_uring_cqe *)(map + p.cq_off.cqes);
    r->sqes = (struct parley_uring_sqe *)sqes;
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
    struct parley_uring_sqe *e = &r->sqes[index];
    memset(e, 0, sizeof *e);
    e->opcode = PARLEY_IORING_OP_SEND;
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
        int n = (int)syscall(PARLEY_NR_io_uring_enter, r->fd, r->queued, wait, wait ? PARLEY_IORING_ENTER_GETEVENTS : 0,
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
    struct parley_uring_cqe *c = &r->cqes[head & *r->cq_mask];
    *tag = c->user_data;
    *result = c->res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 1;
}

#endif
