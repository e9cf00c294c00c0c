/*
 * floor_ring.c: the floor of Tests/bench/floor/floor.c with every system call
 * io_uring can save, for Tests/bench/compare.py (`--brokers ...,floor-ring`).
 *
 * The same forwarder (QoS 0, exact topics, one thread, MQTT 3.1.1, 3.1 and 5 as
 * far as `parley bench` needs; see floor.c for what it speaks), but with no
 * epoll and no read() or write(): connections are accepted by a multishot accept,
 * read by a multishot receive into a ring of provided buffers, and a turn's
 * output goes out as one send per connection (a turn's deliveries to one
 * connection coalesce, as in Parley); the sends of a turn are submitted by the
 * same io_uring_enter that waits for the next completions (DEFER_TASKRUN, so
 * the kernel completes receives only then). It answers one question: how far
 * below one read and one write per delivery a single-threaded forwarder gets
 * on this kernel, measured, rather than assumed.
 *
 *   cc -O2 -o floor_ring floor_ring.c && ./floor_ring PORT   # 127.0.0.1:PORT only
 *
 * Needs Linux 6.1 or later (provided-buffer rings, DEFER_TASKRUN); exits with a
 * message where io_uring is refused. SIGTERM or SIGINT: counters to stderr, exit 0.
 */
#define _GNU_SOURCE
/* Per connection: a tag for its completions, and where its output stands. */
#define CONN_EXTRA uint32_t id; int sending, flushing, polling;
#include "floor_mqtt.h"
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <poll.h>
#include <stdatomic.h>

static void free_conn(conn *c) {
    for (int i = 0; i < c->nsubs; i++) topic_remove_member(c->subs[i], c);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in); free(c->out); free(c->subs); free(c);
}

/* ---- io_uring ---- */
static int rfd;
static unsigned sq_entries, *sq_khead, *sq_ktail, *sq_kmask, *sq_array, *cq_khead, *cq_ktail, *cq_kmask;
static struct io_uring_sqe *sqes;
static struct io_uring_cqe *cqes;
static unsigned sq_tail_local, pending_submit;
#define NBUF 4096
#define BUFSZ 4096
static struct io_uring_buf_ring *br;
static uint8_t *bufbase;
static unsigned short br_tail;
static conn **flush_list;
static int nflush, flush_cap;
static uint32_t next_id = 1;
static unsigned long long n_enters, n_cqes;
enum { K_ACCEPT = 1, K_RECV, K_SEND, K_POLL };

static int enter(unsigned submit, unsigned minc, unsigned flags) {
    n_enters++;
    return (int)syscall(__NR_io_uring_enter, rfd, submit, minc, flags, NULL, 0);
}

static void publish_sq(void) { atomic_store_explicit((_Atomic unsigned *)sq_ktail, sq_tail_local, memory_order_release); }

static struct io_uring_sqe *get_sqe(void) {
    unsigned head = atomic_load_explicit((_Atomic unsigned *)sq_khead, memory_order_acquire);
    if (sq_tail_local - head >= sq_entries) {
        publish_sq();
        enter(pending_submit, 0, 0);
        pending_submit = 0;
    }
    unsigned idx = sq_tail_local & *sq_kmask;
    sq_array[idx] = idx;
    sq_tail_local++;
    pending_submit++;
    struct io_uring_sqe *e = &sqes[idx];
    memset(e, 0, sizeof *e);
    return e;
}

static uint64_t tag(int kind, conn *c) { return (uint64_t)kind << 56 | (uint64_t)c->id << 24 | (uint64_t)c->fd; }

static void arm_recv(conn *c) {
    struct io_uring_sqe *e = get_sqe();
    e->opcode = IORING_OP_RECV;
    e->fd = c->fd;
    e->flags = IOSQE_BUFFER_SELECT;
    e->buf_group = 0;
    e->ioprio = IORING_RECV_MULTISHOT;
    e->user_data = tag(K_RECV, c);
}

static void arm_pollout(conn *c) {
    struct io_uring_sqe *e = get_sqe();
    e->opcode = IORING_OP_POLL_ADD;
    e->fd = c->fd;
    e->poll32_events = POLLOUT;
    e->user_data = tag(K_POLL, c);
    c->polling = 1;
}

static void return_buf(unsigned bid) {
    struct io_uring_buf *b = &br->bufs[br_tail & (NBUF - 1)];
    b->addr = (uint64_t)(uintptr_t)(bufbase + (size_t)bid * BUFSZ);
    b->len = BUFSZ;
    b->bid = (uint16_t)bid;
    br_tail++;
    atomic_store_explicit((_Atomic unsigned short *)&br->tail, br_tail, memory_order_release);
}

static void ring_init(void) {
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    p.cq_entries = 16384;
    rfd = (int)syscall(__NR_io_uring_setup, 4096, &p);
    if (rfd < 0) { perror("io_uring_setup"); exit(1); }
    sq_entries = p.sq_entries;
    size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    size_t len = sq_len > cq_len ? sq_len : cq_len;
    uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, IORING_OFF_SQ_RING);
    if (m == MAP_FAILED) { perror("mmap"); exit(1); }
    sq_khead = (unsigned *)(m + p.sq_off.head); sq_ktail = (unsigned *)(m + p.sq_off.tail);
    sq_kmask = (unsigned *)(m + p.sq_off.ring_mask); sq_array = (unsigned *)(m + p.sq_off.array);
    cq_khead = (unsigned *)(m + p.cq_off.head); cq_ktail = (unsigned *)(m + p.cq_off.tail);
    cq_kmask = (unsigned *)(m + p.cq_off.ring_mask); cqes = (struct io_uring_cqe *)(m + p.cq_off.cqes);
    sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, rfd, IORING_OFF_SQES);
    if (sqes == MAP_FAILED) { perror("mmap sqes"); exit(1); }
    sq_tail_local = *sq_ktail;
    br = mmap(NULL, NBUF * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    bufbase = malloc((size_t)NBUF * BUFSZ);
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)br;
    reg.ring_entries = NBUF;
    reg.bgid = 0;
    if (syscall(__NR_io_uring_register, rfd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) { perror("register pbuf"); exit(1); }
    for (unsigned i = 0; i < NBUF; i++) return_buf(i);
}

static void want_flush(conn *c) {
    if (c->flushing) return;
    c->flushing = 1;
    if (nflush == flush_cap) { flush_cap = flush_cap ? flush_cap * 2 : 256; flush_list = xrealloc(flush_list, flush_cap * sizeof *flush_list); }
    flush_list[nflush++] = c;
}

/* One packet to one connection: appended; sent at the end of the turn. */
static void send_packet(conn *c, const uint8_t *p, size_t n, int droppable) {
    if (c->dead) return;
    size_t pending = c->out_len - c->out_off;
    if (droppable && pending + n > OUT_LIMIT) { n_dropped++; return; }
    append_out(c, p, n);
    if (!c->polling) want_flush(c);
}

static unsigned flush_all(void) {
    unsigned n = 0;
    for (int i = 0; i < nflush; i++) {
        conn *c = flush_list[i];
        c->flushing = 0;
        if (c->dead || c->sending || c->polling || c->out_off == c->out_len) continue;
        struct io_uring_sqe *e = get_sqe();
        e->opcode = IORING_OP_SEND;
        e->fd = c->fd;
        e->addr = (uint64_t)(uintptr_t)(c->out + c->out_off);
        e->len = (uint32_t)(c->out_len - c->out_off);
        e->msg_flags = MSG_DONTWAIT | MSG_NOSIGNAL;
        e->user_data = tag(K_SEND, c);
        c->sending = 1;
        n_writes++;
        n++;
    }
    nflush = 0;
    return n;
}

static void parse_in(conn *c) {
    size_t at = 0;
    while (!c->dead && c->in_len - at >= 2) {
        uint32_t rem = 0;
        int k = get_varint(c->in + at + 1, c->in_len - at - 1, &rem);
        if (k == 0) break;
        if (k < 0 || rem > MAX_PACKET) { kill_conn(c); return; }
        if (c->in_len - at - 1 - k < rem) break;
        if (!handle(c, c->in[at], c->in + at + 1 + k, rem)) { kill_conn(c); return; }
        at += 1 + (size_t)k + rem;
    }
    if (at > 0) {
        memmove(c->in, c->in + at, c->in_len - at);
        c->in_len -= at;
    }
}

static void on_recv(conn *c, const uint8_t *data, size_t n) {
    if (c->in_cap - c->in_len < n) {
        size_t cap = c->in_cap ? c->in_cap : BUFSZ;
        while (cap - c->in_len < n) cap *= 2;
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, data, n);
    c->in_len += n;
    n_reads++;
    parse_in(c);
}

static void new_conn(int fd) {
    n_accepted++;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fd >= conns_cap) {
        int cap = conns_cap ? conns_cap : 1024;
        while (cap <= fd) cap *= 2;
        conns = xrealloc(conns, cap * sizeof *conns);
        memset(conns + conns_cap, 0, (cap - conns_cap) * sizeof *conns);
        conns_cap = cap;
    }
    conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->id = next_id++ & 0xFFFFFFFF;
    conns[fd] = c;
    arm_recv(c);
}

static void arm_accept(int lfd) {
    struct io_uring_sqe *e = get_sqe();
    e->opcode = IORING_OP_ACCEPT;
    e->fd = lfd;
    e->ioprio = IORING_ACCEPT_MULTISHOT;
    e->accept_flags = SOCK_NONBLOCK | SOCK_CLOEXEC;
    e->user_data = (uint64_t)K_ACCEPT << 56;
}

static void dispatch(struct io_uring_cqe *q, int lfd) {
    int kind = (int)(q->user_data >> 56);
    if (kind == K_ACCEPT) {
        if (q->res >= 0) new_conn(q->res);
        if (!(q->flags & IORING_CQE_F_MORE)) arm_accept(lfd);
        return;
    }
    int fd = (int)(q->user_data & 0xFFFFFF);
    uint32_t id = (uint32_t)(q->user_data >> 24);
    conn *c = fd < conns_cap ? conns[fd] : NULL;
    if (c && c->id != id) c = NULL;
    if (kind == K_RECV) {
        if (q->flags & IORING_CQE_F_BUFFER) {
            unsigned bid = q->flags >> 16;
            if (c && !c->dead && q->res > 0) on_recv(c, bufbase + (size_t)bid * BUFSZ, (size_t)q->res);
            return_buf(bid);
        }
        if (!c || c->dead) return;
        if (q->res == 0 || (q->res < 0 && q->res != -ENOBUFS)) { kill_conn(c); return; }
        if (!(q->flags & IORING_CQE_F_MORE)) arm_recv(c);
        return;
    }
    if (!c) return;
    if (kind == K_SEND) {
        c->sending = 0;
        if (q->res < 0 && q->res != -EAGAIN) { kill_conn(c); return; }
        if (q->res > 0) c->out_off += (size_t)q->res;
        if (c->out_off == c->out_len) { c->out_off = c->out_len = 0; return; }
        if (!c->dead) arm_pollout(c);
        return;
    }
    if (kind == K_POLL) {
        c->polling = 0;
        want_flush(c);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: floor PORT   (listens on 127.0.0.1:PORT, QoS 0, exact topics)\n");
        return 2;
    }
    char *end;
    long port = strtol(argv[1], &end, 10);
    if (*end || port < 1 || port > 65535) { fprintf(stderr, "floor: bad port %s\n", argv[1]); return 2; }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("floor: listen");
        return 1;
    }
    ring_init();
    arm_accept(lfd);
    while (!stop) {
        unsigned sends = flush_all();
        publish_sq();
        int r = enter(pending_submit, sends + 1, IORING_ENTER_GETEVENTS);
        if (r >= 0) pending_submit -= (unsigned)r < pending_submit ? (unsigned)r : pending_submit;
        if (r < 0 && errno != EINTR && errno != EBUSY) { perror("io_uring_enter"); return 1; }
        unsigned head = *cq_khead;
        unsigned tail = atomic_load_explicit((_Atomic unsigned *)cq_ktail, memory_order_acquire);
        while (head != tail) {
            struct io_uring_cqe *q = &cqes[head & *cq_kmask];
            n_cqes++;
            dispatch(q, lfd);
            head++;
            if (head == tail) {
                atomic_store_explicit((_Atomic unsigned *)cq_khead, head, memory_order_release);
                tail = atomic_load_explicit((_Atomic unsigned *)cq_ktail, memory_order_acquire);
            }
        }
        atomic_store_explicit((_Atomic unsigned *)cq_khead, head, memory_order_release);
        for (int i = 0; i < ndead; i++) free_conn(dead_list[i]);
        ndead = 0;
    }
    fprintf(stderr, "floor-ring: accepted %llu, recvs %llu, sends %llu, publishes %llu, deliveries %llu, dropped %llu, enters %llu, cqes %llu\n",
            n_accepted, n_reads, n_writes, n_publishes, n_deliveries, n_dropped, n_enters, n_cqes);
    return 0;
}
