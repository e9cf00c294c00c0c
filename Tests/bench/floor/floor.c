/*
 * floor.c: the naive floor for Tests/bench/compare.py (issue 14).
 *
 * The least an MQTT broker can do with one system call per delivery: a
 * single-threaded epoll loop, QoS 0 only, exact topics only, no batching.
 * Every readable connection gets one read(); every delivery of a PUBLISH to a
 * subscriber is one write() of that one packet (bytes that do not fit in the
 * socket wait in a per-connection buffer, flushed on EPOLLOUT, so order holds).
 *
 *   cc -O2 -o floor floor.c && ./floor PORT        # listens on 127.0.0.1:PORT only
 *
 * Speaks what `parley bench` needs, in MQTT 3.1.1 (and 3.1) and 5:
 *   CONNECT -> CONNACK (accepted, no session), SUBSCRIBE -> SUBACK granting QoS 0
 *   (a wildcard or shared filter is refused), UNSUBSCRIBE -> UNSUBACK,
 *   PUBLISH QoS 0 -> forwarded to every subscriber of that exact topic (the
 *   publisher too, if subscribed; v5 properties are not forwarded; retain is
 *   ignored), PINGREQ -> PINGRESP, DISCONNECT -> close. A PUBLISH at QoS 1/2,
 *   a packet over 1 MiB or anything malformed closes the connection.
 *   Keep alive is not enforced.
 * A subscriber whose pending output passes 16 MiB loses further messages
 * (QoS 0) until it drains. SIGTERM or SIGINT: prints counters to stderr, exits 0.
 */
#define _GNU_SOURCE
#include "floor_mqtt.h"
#include <sys/epoll.h>

static int ep;

static void free_conn(conn *c) {
    for (int i = 0; i < c->nsubs; i++) topic_remove_member(c->subs[i], c);
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in); free(c->out); free(c->subs); free(c);
}

static void set_want_out(conn *c, int on) {
    if (c->want_out == on) return;
    c->want_out = on;
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = c->fd};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* One packet to one connection: one write(), unless output is already waiting. */
static void send_packet(conn *c, const uint8_t *p, size_t n, int droppable) {
    if (c->dead) return;
    size_t pending = c->out_len - c->out_off;
    if (pending > 0) {
        if (droppable && pending + n > OUT_LIMIT) { n_dropped++; return; }
        append_out(c, p, n);
        return;
    }
    n_writes++;
    ssize_t w = write(c->fd, p, n);
    if (w == (ssize_t)n) return;
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { kill_conn(c); return; }
        w = 0;
    }
    append_out(c, p + w, n - (size_t)w);
    set_want_out(c, 1);
}

static void flush_out(conn *c) {
    while (c->out_off < c->out_len) {
        n_writes++;
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            kill_conn(c);
            return;
        }
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    if (c->out_cap > (1u << 20)) { free(c->out); c->out = NULL; c->out_cap = 0; }
    set_want_out(c, 0);
}

/* One read(), then every complete packet in the buffer. */
static void readable(conn *c) {
    if (c->in_cap - c->in_len < READ_CHUNK) {
        size_t cap = c->in_cap ? c->in_cap : READ_CHUNK;
        while (cap - c->in_len < READ_CHUNK) cap *= 2;
        c->in = xrealloc(c->in, cap);
        c->in_cap = cap;
    }
    n_reads++;
    ssize_t r = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (r == 0) { kill_conn(c); return; }
    if (r < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) kill_conn(c);
        return;
    }
    c->in_len += (size_t)r;
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
    if (c->in_len == 0 && c->in_cap > 4 * READ_CHUNK) { free(c->in); c->in = NULL; c->in_cap = 0; }
}

static void accept_all(int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED) perror("floor: accept");
            return;
        }
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
        if (!c) { close(fd); continue; }
        c->fd = fd;
        conns[fd] = c;
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) { conns[fd] = NULL; close(fd); free(c); }
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
    struct sigaction sa = {.sa_handler = on_signal};   /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);   /* 127.0.0.1 only */
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 4096) < 0) {
        perror("floor: listen");
        return 1;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &lev);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("floor: epoll_wait");
            return 1;
        }
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) { accept_all(lfd); continue; }
            conn *c = fd < conns_cap ? conns[fd] : NULL;
            if (!c || c->dead) continue;
            if (evs[i].events & EPOLLOUT) flush_out(c);
            if (!c->dead && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) readable(c);
        }
        for (int i = 0; i < ndead; i++) free_conn(dead_list[i]);
        ndead = 0;
    }
    fprintf(stderr, "floor: accepted %llu, reads %llu, writes %llu, publishes %llu, deliveries %llu, dropped %llu\n",
            n_accepted, n_reads, n_writes, n_publishes, n_deliveries, n_dropped);
    return 0;
}
