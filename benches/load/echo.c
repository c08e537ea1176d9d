/*
 * UDP echo server for the fair benchmark (benches/load/fair.sh): answers every
 * datagram with itself, received and sent in batches with recvmmsg/sendmmsg.
 *
 * Why: it does no DNS work at all, so its rate is what dnsperf and the kernel's
 * loopback path can carry on this machine -- the ceiling every DNS server in
 * the same run is measured against. dnsperf accepts the echoed query as the
 * answer (same ID, same question, rcode NOERROR).
 *
 *   echo 127.0.0.1 PORT
 *
 * Invariants: binds only the address given (fair.sh passes 127.0.0.1); runs
 * until killed; every buffer is fixed-size (BATCH datagrams of MAXLEN bytes).
 * Compiled by fair.sh with gcc into benches/load/.cache; not part of the Rust build.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXLEN 4096
#define SOCKBUF (4 * 1024 * 1024) /* the same socket buffers clusterdns asks for */

static unsigned char bufs[BATCH][MAXLEN];
static struct sockaddr_in peers[BATCH];
static struct iovec iov[BATCH];
static struct mmsghdr msgs[BATCH];

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDRESS PORT\n", argv[0]);
        return 2;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    char *end = NULL;
    long port = strtol(argv[2], &end, 10);
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1 || *end != '\0' || port < 1 || port > 65535) {
        fprintf(stderr, "echo: bad address or port: %s %s\n", argv[1], argv[2]);
        return 2;
    }
    addr.sin_port = htons((unsigned short)port);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0) {
        perror("echo: socket");
        return 1;
    }
    int size = SOCKBUF;
    /* Best effort: the kernel caps these at net.core.[rw]mem_max. */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror("echo: bind");
        return 1;
    }
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = MAXLEN;
            memset(&msgs[i].msg_hdr, 0, sizeof msgs[i].msg_hdr);
            msgs[i].msg_hdr.msg_name = &peers[i];
            msgs[i].msg_hdr.msg_namelen = sizeof peers[i];
            msgs[i].msg_hdr.msg_iov = &iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        /* Block for the first datagram, then take whatever else is queued. */
        int n = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            perror("echo: recvmmsg");
            return 1;
        }
        for (int i = 0; i < n; i++)
            iov[i].iov_len = msgs[i].msg_len; /* send back exactly what came in */
        int sent = 0;
        while (sent < n) {
            int k = sendmmsg(fd, msgs + sent, (unsigned)(n - sent), 0);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                sent++; /* this datagram failed (e.g. the client is gone): drop it, keep the rest */
                continue;
            }
            sent += k;
        }
    }
}
