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
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <poll.h>
#include <stdatomic.h>

#define MAX_PACKET (1u << 20)           /* bytes after the fixed header's first byte, at most */
#define READ_CHUNK 65536
#define OUT_LIMIT (16u << 20)
#define BUCKETS 65536

typedef struct topic topic;
typedef struct conn conn;

struct topic {
    topic *next;
    uint16_t len;
    conn **members;
    int n, cap;
    char name[];
};

struct conn {
    int fd;
    int version;            /* 0 until CONNECT; 3, 4 or 5 */
    int dead;
    int want_out;
    uint8_t *in;
    size_t in_len, in_cap;
    uint8_t *out;
    size_t out_off, out_len, out_cap;
    topic **subs;
    int nsubs, subs_cap;
    uint32_t id;
    int sending, flushing, polling;
};

static conn **conns;        /* by fd */
static int conns_cap;
static topic *buckets[BUCKETS];
static conn **dead_list;
static int ndead, dead_cap;
static uint8_t scratch4[MAX_PACKET + 16], scratch5[MAX_PACKET + 16];
static volatile sig_atomic_t stop;
static unsigned long long n_reads, n_writes, n_deliveries, n_dropped, n_publishes, n_accepted;

static void on_signal(int s) { (void)s; stop = 1; }

static void *xrealloc(void *p, size_t n) {
    void *q = realloc(p, n);
    if (!q) { perror("floor: realloc"); exit(1); }
    return q;
}

static uint32_t hash(const uint8_t *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 16777619u;
    return h;
}

static topic *topic_find(const uint8_t *name, size_t len, int create) {
    uint32_t b = hash(name, len) & (BUCKETS - 1);
    for (topic *t = buckets[b]; t; t = t->next)
        if (t->len == len && memcmp(t->name, name, len) == 0) return t;
    if (!create) return NULL;
    topic *t = calloc(1, sizeof *t + len);
    if (!t) { perror("floor: calloc"); exit(1); }
    t->len = (uint16_t)len;
    memcpy(t->name, name, len);
    t->next = buckets[b];
    buckets[b] = t;
    return t;
}

static void topic_remove_member(topic *t, conn *c) {
    for (int i = 0; i < t->n; i++)
        if (t->members[i] == c) { t->members[i] = t->members[--t->n]; return; }
}

static void kill_conn(conn *c) {
    if (c->dead) return;
    c->dead = 1;
    if (ndead == dead_cap) { dead_cap = dead_cap ? dead_cap * 2 : 256; dead_list = xrealloc(dead_list, dead_cap * sizeof *dead_list); }
    dead_list[ndead++] = c;   /* freed after this batch of completions */
}

static void free_conn(conn *c) {
    for (int i = 0; i < c->nsubs; i++) topic_remove_member(c->subs[i], c);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in); free(c->out); free(c->subs); free(c);
}

static void append_out(conn *c, const uint8_t *p, size_t n) {
    if (c->out_off > 0 && c->out_off == c->out_len) c->out_off = c->out_len = 0;
    if (c->out_len + n > c->out_cap) {
        if (c->out_off > 0) {
            memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
            c->out_len -= c->out_off; c->out_off = 0;
        }
        if (c->out_len + n > c->out_cap) {
            size_t cap = c->out_cap ? c->out_cap : 4096;
            while (cap < c->out_len + n) cap *= 2;
            c->out = xrealloc(c->out, cap);
            c->out_cap = cap;
        }
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
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

static size_t put_varint(uint8_t *p, uint32_t v) {
    size_t i = 0;
    do {
        uint8_t b = v & 0x7F;
        v >>= 7;
        p[i++] = b | (v ? 0x80 : 0);
    } while (v);
    return i;
}

/* A variable byte integer at p[0..n): its value and size, 0 if incomplete, -1 if bad. */
static int get_varint(const uint8_t *p, size_t n, uint32_t *v) {
    uint32_t x = 0;
    for (int i = 0; i < 4; i++) {
        if ((size_t)i >= n) return 0;
        x |= (uint32_t)(p[i] & 0x7F) << (7 * i);
        if (!(p[i] & 0x80)) { *v = x; return i + 1; }
    }
    return -1;
}

static int is_exact(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) if (s[i] == '+' || s[i] == '#' || s[i] == 0) return 0;
    if (n >= 7 && memcmp(s, "$share/", 7) == 0) return 0;
    return 1;
}

static void subscribe(conn *c, topic *t) {
    for (int i = 0; i < c->nsubs; i++) if (c->subs[i] == t) return;
    if (t->n == t->cap) { t->cap = t->cap ? t->cap * 2 : 8; t->members = xrealloc(t->members, t->cap * sizeof *t->members); }
    t->members[t->n++] = c;
    if (c->nsubs == c->subs_cap) { c->subs_cap = c->subs_cap ? c->subs_cap * 2 : 4; c->subs = xrealloc(c->subs, c->subs_cap * sizeof *c->subs); }
    c->subs[c->nsubs++] = t;
}

static int unsubscribe(conn *c, topic *t) {
    for (int i = 0; i < c->nsubs; i++)
        if (c->subs[i] == t) { c->subs[i] = c->subs[--c->nsubs]; topic_remove_member(t, c); return 1; }
    return 0;
}

/* Returns 0 to close the connection. b: the packet after its fixed header, n bytes. */
static int handle(conn *c, uint8_t b0, const uint8_t *b, size_t n) {
    int type = b0 >> 4;
    if (c->version == 0 && type != 1) return 0;
    switch (type) {
    case 1: { /* CONNECT */
        if (c->version != 0 || n < 2) return 0;
        size_t plen = (size_t)b[0] << 8 | b[1];
        if (2 + plen + 1 > n) return 0;
        int level = b[2 + plen];
        if (level != 3 && level != 4 && level != 5) return 0;
        c->version = level;
        static const uint8_t ack4[] = {0x20, 2, 0, 0}, ack5[] = {0x20, 3, 0, 0, 0};
        if (level == 5) send_packet(c, ack5, sizeof ack5, 0); else send_packet(c, ack4, sizeof ack4, 0);
        return 1;
    }
    case 3: { /* PUBLISH */
        if (((b0 >> 1) & 3) != 0) return 0; /* QoS 0 only */
        if (n < 2) return 0;
        size_t tlen = (size_t)b[0] << 8 | b[1];
        size_t at = 2 + tlen;
        if (at > n || !is_exact(b + 2, tlen)) return 0;
        if (c->version == 5) {
            uint32_t plen;
            int k = get_varint(b + at, n - at, &plen);
            if (k <= 0 || at + k + plen > n) return 0;
            at += k + plen;
        }
        n_publishes++;
        topic *t = topic_find(b + 2, tlen, 0);
        if (!t || t->n == 0) return 1;
        const uint8_t *payload = b + at;
        size_t paylen = n - at;
        size_t len4 = 0, len5 = 0;
        for (int i = 0; i < t->n; i++) {
            conn *s = t->members[i];
            if (s->dead) continue;
            uint8_t *pk;
            size_t len;
            if (s->version == 5) {
                if (!len5) {
                    uint8_t *p = scratch5;
                    *p++ = 0x30;
                    p += put_varint(p, (uint32_t)(2 + tlen + 1 + paylen));
                    memcpy(p, b, 2 + tlen); p += 2 + tlen;
                    *p++ = 0;
                    memcpy(p, payload, paylen); p += paylen;
                    len5 = (size_t)(p - scratch5);
                }
                pk = scratch5; len = len5;
            } else {
                if (!len4) {
                    uint8_t *p = scratch4;
                    *p++ = 0x30;
                    p += put_varint(p, (uint32_t)(2 + tlen + paylen));
                    memcpy(p, b, 2 + tlen); p += 2 + tlen;
                    memcpy(p, payload, paylen); p += paylen;
                    len4 = (size_t)(p - scratch4);
                }
                pk = scratch4; len = len4;
            }
            n_deliveries++;
            send_packet(s, pk, len, 1);
        }
        return 1;
    }
    case 8:   /* SUBSCRIBE */
    case 10: { /* UNSUBSCRIBE */
        if ((b0 & 0x0F) != 2 || n < 2) return 0;
        size_t at = 2;
        if (c->version == 5) {
            uint32_t plen;
            int k = get_varint(b + at, n - at, &plen);
            if (k <= 0 || at + k + plen > n) return 0;
            at += k + plen;
        }
        uint8_t codes[4096];
        size_t nc = 0;
        while (at < n) {
            if (at + 2 > n) return 0;
            size_t flen = (size_t)b[at] << 8 | b[at + 1];
            const uint8_t *f = b + at + 2;
            at += 2 + flen + (type == 8 ? 1 : 0);
            if (at > n || nc == sizeof codes) return 0;
            if (type == 8) {
                if (is_exact(f, flen)) { subscribe(c, topic_find(f, flen, 1)); codes[nc++] = 0x00; }
                else codes[nc++] = c->version == 5 ? 0xA2 : 0x80;
            } else {
                topic *t = topic_find(f, flen, 0);
                codes[nc++] = (t && unsubscribe(c, t)) ? 0x00 : 0x11;
            }
        }
        if (nc == 0) return 0;
        uint8_t ack[16 + sizeof codes], *p = ack;
        int v5 = c->version == 5;
        size_t rem = 2 + (size_t)v5 + ((type == 8 || v5) ? nc : 0);
        *p++ = type == 8 ? 0x90 : 0xB0;
        p += put_varint(p, (uint32_t)rem);
        *p++ = b[0]; *p++ = b[1];
        if (v5) *p++ = 0;
        if (type == 8 || v5) { memcpy(p, codes, nc); p += nc; }
        send_packet(c, ack, (size_t)(p - ack), 0);
        return 1;
    }
    case 12: { /* PINGREQ */
        static const uint8_t resp[] = {0xD0, 0};
        send_packet(c, resp, sizeof resp, 0);
        return 1;
    }
    case 14: /* DISCONNECT */
    default:
        return 0;
    }
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
