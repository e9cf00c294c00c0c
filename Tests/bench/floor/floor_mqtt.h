/*
 * floor_mqtt.h: what floor.c and floor_ring.c share, the MQTT side of the floor
 * (issue 14): connections, the exact-topic table and the packet handling. The
 * including file defines the I/O: send_packet() (declared here) and everything
 * that reads, writes, accepts and frees connections. A file that needs more
 * fields per connection defines CONN_EXTRA before including this.
 */
#ifndef FLOOR_MQTT_H
#define FLOOR_MQTT_H
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
#ifdef CONN_EXTRA
    CONN_EXTRA
#endif
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
    dead_list[ndead++] = c;   /* freed after this batch of events, so no fd is reused within it */
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

/* One packet to one connection: defined by the including file. */
static void send_packet(conn *c, const uint8_t *p, size_t n, int droppable);

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

#endif
