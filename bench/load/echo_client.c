/* Streaming TCP echo client: the C reference the Python engine is measured against.
 * Same work as `lab load`: every echoed byte is checked (memcmp) against a seeded
 * pattern. Single-threaded, epoll.
 *   echo_client -m stream|ping|connect -c CONNS -t SECONDS [-s MSGSIZE] [-w WINDOW] HOST PORT
 * Prints one JSON line: bytes echoed, ops, seconds, errors and (ping/connect) latency
 * percentiles in microseconds (from the sorted samples). */
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PERIOD (1u << 20)
#define CHUNK (256u * 1024)

enum mode { STREAM, PING, CONNECT };
enum phase { CONNECTING, TALKING, CLOSING };

struct conn {
    int fd;
    unsigned events;
    enum phase phase;
    uint64_t start, sent, recvd, t0;
};

static unsigned char pattern[PERIOD + CHUNK];
static unsigned char rbuf[CHUNK];
static enum mode mode = STREAM;
static size_t msg = 64, window = 1u << 20;
static struct sockaddr_in dst;
static int ep;
static uint64_t ops, bytes, errors, *lat, nlat, caplat;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(uint64_t ns) {
    if (nlat == caplat) {
        caplat = caplat ? caplat * 2 : 1u << 16;
        lat = realloc(lat, caplat * sizeof *lat);
        if (!lat) { perror("realloc"); exit(1); }
    }
    lat[nlat++] = ns;
}

static void want(struct conn *c, unsigned events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void open_conn(struct conn *c, uint64_t seq) {
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->start = (seq * 2654435761u) % PERIOD;
    c->sent = c->recvd = 0;
    c->phase = CONNECTING;
    c->t0 = now_ns();
    c->events = EPOLLOUT;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    if (connect(c->fd, (struct sockaddr *)&dst, sizeof dst) < 0 && errno != EINPROGRESS) {
        perror("connect");
        exit(1);
    }
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
}

static void fail(struct conn *c, const char *what) {
    errors++;
    fprintf(stderr, "echo_client: %s: %s\n", what, strerror(errno));
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void send_some(struct conn *c) {
    size_t limit = mode == STREAM ? window : msg;
    while (c->sent - c->recvd < limit) {
        size_t room = limit - (size_t)(c->sent - c->recvd);
        if (room > CHUNK) room = CHUNK;
        if (mode != STREAM) c->t0 = now_ns();
        ssize_t n = send(c->fd, pattern + (c->start + c->sent) % PERIOD, room, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN) { want(c, EPOLLIN | EPOLLOUT); return; }
            fail(c, "send");
            return;
        }
        c->sent += (uint64_t)n;
    }
    want(c, EPOLLIN);
}

/* Returns 1 when the connect-mode cycle finished (the caller opens the next one). */
static int on_event(struct conn *c, unsigned events, uint64_t seq) {
    if (c->phase == CONNECTING) {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) { errno = err; fail(c, "connect"); return 0; }
        c->phase = TALKING;
        send_some(c);
        return 0;
    }
    if (events & EPOLLOUT && c->phase == TALKING) send_some(c);
    for (;;) {
        ssize_t n = recv(c->fd, rbuf, CHUNK, 0);
        if (n < 0) {
            if (errno == EAGAIN) return 0;
            fail(c, "recv");
            return 0;
        }
        if (n == 0) {
            if (c->phase == CLOSING) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                ops++;
                open_conn(c, seq);
                return 1;
            }
            errno = ECONNABORTED;
            fail(c, "short echo");
            return 0;
        }
        if (memcmp(rbuf, pattern + (c->start + c->recvd) % PERIOD, (size_t)n) != 0) {
            errno = EILSEQ;
            fail(c, "mismatch");
            return 0;
        }
        c->recvd += (uint64_t)n;
        bytes += (uint64_t)n;
        if (mode == STREAM) {
            send_some(c);
        } else if (c->recvd == c->sent && c->phase == TALKING) {
            record(now_ns() - c->t0);
            if (mode == PING) {
                ops++;
                send_some(c);
            } else {
                c->phase = CLOSING;
                shutdown(c->fd, SHUT_WR);
            }
        }
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(double p) {
    if (!nlat) return 0;
    size_t i = (size_t)(p / 100.0 * (double)nlat);
    if (i >= nlat) i = nlat - 1;
    return (double)lat[i] / 1000.0;
}

int main(int argc, char **argv) {
    int conns = 1, opt;
    double seconds = 3;
    while ((opt = getopt(argc, argv, "m:c:t:s:w:")) != -1) {
        switch (opt) {
        case 'm': mode = !strcmp(optarg, "ping") ? PING : !strcmp(optarg, "connect") ? CONNECT : STREAM; break;
        case 'c': conns = atoi(optarg); break;
        case 't': seconds = atof(optarg); break;
        case 's': msg = (size_t)atol(optarg); break;
        case 'w': window = (size_t)atol(optarg); break;
        default: return 2;
        }
    }
    if (argc - optind != 2 || conns < 1 || msg < 1 || msg > CHUNK) {
        fprintf(stderr, "usage: echo_client [-m stream|ping|connect] [-c N] [-t S] [-s MSG] [-w WIN] HOST PORT\n");
        return 2;
    }
    dst.sin_family = AF_INET;
    dst.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
    if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1) return 2;
    signal(SIGPIPE, SIG_IGN);
    uint64_t x = 88172645463325252ull; /* xorshift64 pattern, fixed seed */
    for (size_t i = 0; i < PERIOD; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        pattern[i] = (unsigned char)x;
    }
    memcpy(pattern + PERIOD, pattern, CHUNK);

    ep = epoll_create1(0);
    struct conn *cs = calloc((size_t)conns, sizeof *cs);
    uint64_t seq = 0;
    for (int i = 0; i < conns; i++) open_conn(&cs[i], seq++);
    uint64_t t_start = now_ns(), t_end = t_start + (uint64_t)(seconds * 1e9);
    struct epoll_event evs[256];
    int live = conns;
    while (live > 0 && now_ns() < t_end) {
        int n = epoll_wait(ep, evs, 256, 10);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c->fd < 0) continue;
            if (on_event(c, evs[i].events, seq)) seq++;
            if (c->fd < 0) live--;
        }
    }
    double elapsed = (double)(now_ns() - t_start) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    printf("{\"mode\": \"%s\", \"connections\": %d, \"seconds\": %.3f, \"bytes\": %llu, "
           "\"ops\": %llu, \"errors\": %llu, \"throughput\": %.1f, \"ops_per_second\": %.1f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"p999_us\": %.2f, \"max_us\": %.2f}\n",
           mode == STREAM ? "stream" : mode == PING ? "ping" : "connect", conns, elapsed,
           (unsigned long long)bytes, (unsigned long long)ops, (unsigned long long)errors,
           (double)bytes / elapsed, (double)ops / elapsed, pct(50), pct(99), pct(99.9),
           nlat ? (double)lat[nlat - 1] / 1000.0 : 0.0);
    return errors ? 1 : 0;
}
