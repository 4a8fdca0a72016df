/* Minimal single-threaded epoll TCP echo server: the C reference for `make bench`.
 * Usage: echo_server [BIND_ADDR]   (default 127.0.0.1; binds an ephemeral port)
 * Prints "PORT <n>" on stdout once listening; runs until SIGTERM/SIGINT. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ (256 * 1024)
#define ROUNDS 8 /* read/write rounds per event, for fairness between connections */

struct conn {
    int fd;
    unsigned events;
    size_t len, off;
    char buf[BUFSZ];
};

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static void drop(int ep, struct conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void want(int ep, struct conn *c, unsigned events) {
    if (c->events == events) return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

/* Echo what can be echoed now. Returns 0 to keep the connection, -1 to drop it. */
static int serve(int ep, struct conn *c) {
    for (int round = 0; round < ROUNDS; round++) {
        if (c->off < c->len) {
            ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN) { want(ep, c, EPOLLOUT); return 0; }
                return -1;
            }
            c->off += (size_t)n;
            continue;
        }
        ssize_t n = recv(c->fd, c->buf, BUFSZ, 0);
        if (n == 0) return -1; /* peer done and everything echoed: close (FIN) */
        if (n < 0) {
            if (errno == EAGAIN) { want(ep, c, EPOLLIN); return 0; }
            return -1;
        }
        c->len = (size_t)n;
        c->off = 0;
    }
    want(ep, c, c->off < c->len ? EPOLLOUT : EPOLLIN);
    return 0;
}

int main(int argc, char **argv) {
    const char *addr = argc > 1 ? argv[1] : "127.0.0.1";
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); return 2; }
    if (bind(ls, (struct sockaddr *)&sa, sizeof sa) || listen(ls, 4096)) { perror("bind/listen"); return 1; }
    socklen_t salen = sizeof sa;
    getsockname(ls, (struct sockaddr *)&sa, &salen);
    printf("PORT %d\n", ntohs(sa.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    c = malloc(sizeof *c);
                    if (!c) { close(fd); continue; }
                    c->fd = fd; c->len = c->off = 0; c->events = EPOLLIN;
                    struct epoll_event cev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (serve(ep, c) < 0) drop(ep, c);
        }
    }
    return 0;
}
