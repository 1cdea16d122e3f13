/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Runs inside a Linux test guest (statically linked, started by the
 * initramfs of linux-guest.py): sends numbered frames out of a network
 * interface with an AF_PACKET socket and checks the ones that come back
 * (a reflecting vhost-user back-end behind the virtio NIC). Prints a
 * progress line every second and a final line, both "key=value".
 *
 *   vu-guest-frames [--count N (0: until killed)] [--rate FPS] [--size BYTES]
 *                   [--stream ID] [--linger MS] [--down] [--idle [--dirty PAGES]] [IFNAME]
 */
#include "frame-check.h"
#include "net/numbered-frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netpacket/packet.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Frames sent at once to make up for lost time, at most. */
#define MAX_CATCH_UP 16u

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    printf("vu-guest: error: %s: %s\n", what, strerror(errno));
    fflush(stdout);
    exit(1);
}

/* The first interface that is not loopback. */
static void pick_interface(char *name, size_t len)
{
    struct if_nameindex *ifs = if_nameindex();

    if (!ifs) {
        die("if_nameindex");
    }
    for (struct if_nameindex *i = ifs; i->if_index; i++) {
        if (strcmp(i->if_name, "lo") != 0) {
            snprintf(name, len, "%s", i->if_name);
            if_freenameindex(ifs);
            return;
        }
    }
    errno = ENODEV;
    die("no network interface besides lo");
}

static void report(const char *what, uint64_t sent, uint64_t received, FrameCheck *fc,
                   uint64_t rtt_max_us)
{
    printf("vu-guest: %s sent=%llu received=%llu ok=%llu gaps=%llu dups=%llu corrupt=%llu"
           " other=%llu before_first=%llu rtt_max_us=%llu\n", what,
           (unsigned long long)sent, (unsigned long long)received,
           (unsigned long long)atomic_load(&fc->ok), (unsigned long long)atomic_load(&fc->gaps),
           (unsigned long long)atomic_load(&fc->dups),
           (unsigned long long)atomic_load(&fc->corrupt),
           (unsigned long long)atomic_load(&fc->other),
           (unsigned long long)atomic_load(&fc->before_first),
           (unsigned long long)rtt_max_us);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint64_t count = 1000, rate = 500, linger_ms = 2000;
    bool idle = false, down = false;
    uint64_t dirty_pages = 0;
    uint32_t size = 256;
    uint16_t stream = 1;
    char ifname[IF_NAMESIZE] = "";
    static uint8_t frame[NF_MAX_LEN], rx[2048];
    FrameCheck fc;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--count") && v) {
            count = strtoull(v, NULL, 0), i++;
        } else if (!strcmp(a, "--rate") && v) {
            rate = strtoull(v, NULL, 0), i++;
        } else if (!strcmp(a, "--size") && v) {
            size = (uint32_t)strtoul(v, NULL, 0), i++;
        } else if (!strcmp(a, "--stream") && v) {
            stream = (uint16_t)strtoul(v, NULL, 0), i++;
        } else if (!strcmp(a, "--linger") && v) {
            linger_ms = strtoull(v, NULL, 0), i++;
        } else if (!strcmp(a, "--idle")) {
            idle = true;
        } else if (!strcmp(a, "--down")) {
            down = true;
        } else if (!strcmp(a, "--dirty") && v) {
            dirty_pages = strtoull(v, NULL, 0), i++;
        } else if (a[0] != '-') {
            snprintf(ifname, sizeof(ifname), "%s", a);
        } else {
            printf("vu-guest: error: unknown argument '%s'\n", a);
            return 2;
        }
    }
    if (!ifname[0]) {
        pick_interface(ifname, sizeof(ifname));
    }
    if (!frame_check_init(&fc)) {
        die("frame checker");
    }
    int s = socket(AF_PACKET, SOCK_RAW, htons(NF_ETHERTYPE));
    if (s < 0) {
        die("AF_PACKET socket");
    }
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
    if (ioctl(s, SIOCGIFINDEX, &ifr) < 0) {
        die("SIOCGIFINDEX");
    }
    int ifindex = ifr.ifr_ifindex;
    if (ioctl(s, SIOCGIFHWADDR, &ifr) < 0) {
        die("SIOCGIFHWADDR");
    }
    uint8_t mac[6];
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    if (down) {
        /*
         * The RX buffers the driver posted stay with the device, which may
         * fill them; the guest never looks at them while the link is down.
         */
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
            die("SIOCGIFFLAGS");
        }
        ifr.ifr_flags &= ~IFF_UP;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
            die("SIOCSIFFLAGS");
        }
    }
    if (idle) {
        /*
         * Send nothing: migration tests watch what a back-end writes. With
         * --dirty N the guest touches N pages a second of a 16 MiB buffer,
         * so a migration on a slower link cannot converge until told.
         */
        static uint8_t area[16 << 20];
        size_t page = 0, pages = sizeof(area) / 4096;
        printf("vu-guest: %s %s, idle, dirtying %llu pages/s\n", ifname, down ? "down" : "up",
               (unsigned long long)dirty_pages);
        fflush(stdout);
        for (;;) {
            if (!dirty_pages) {
                pause();
                continue;
            }
            uint64_t n = dirty_pages / 100 ? dirty_pages / 100 : 1;
            for (uint64_t k = 0; k < n; k++) {
                area[page * 4096]++;
                page = (page + 1) % pages;
            }
            usleep(10000);
        }
    }
    struct sockaddr_ll sll = {
        .sll_family = AF_PACKET, .sll_protocol = htons(NF_ETHERTYPE), .sll_ifindex = ifindex,
    };
    if (bind(s, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
        die("bind");
    }
    printf("vu-guest: sending on %s (%02x:%02x:%02x:%02x:%02x:%02x), count %llu, rate %llu/s\n",
           ifname, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5], (unsigned long long)count,
           (unsigned long long)rate);
    fflush(stdout);

    uint64_t start = now_ns(), last_report = start, done_at = 0;
    uint64_t sent = 0, received = 0, rtt_max_us = 0, skipped = 0;
    for (;;) {
        uint64_t t = now_ns();
        bool sending = count == 0 || sent < count;
        /* Frames due by now at the rate. */
        uint64_t due = rate ? (t - start) / (1000000000u / rate) + 1 - skipped : sent + 1;
        /*
         * After a stall (the VM paused, a migration, postcopy faults) do not
         * catch up with a burst that would only overflow the rings: the
         * frames the stall cost are not sent at all.
         */
        if (due > sent + MAX_CATCH_UP) {
            skipped += due - sent - MAX_CATCH_UP;
            due = sent + MAX_CATCH_UP;
        }
        while (sending && sent < due && (count == 0 || sent < count)) {
            uint32_t len = nf_fill(frame, size, mac, stream, sent, now_ns());
            if (send(s, frame, len, 0) != (ssize_t)len) {
                if (errno == ENOBUFS || errno == EAGAIN) {
                    break;      /* the queue is full: try again shortly */
                }
                die("send");
            }
            sent++;
        }
        if (!done_at && count && sent >= count) {
            done_at = now_ns();
        }
        if (done_at && (received >= sent || now_ns() - done_at > linger_ms * 1000000u)) {
            break;
        }
        struct pollfd p = { .fd = s, .events = POLLIN };
        int timeout = rate ? (int)(1000 / rate) : 0;
        if (poll(&p, 1, timeout > 0 ? timeout : 1) > 0) {
            for (;;) {
                struct sockaddr_ll from;
                socklen_t flen = sizeof(from);
                ssize_t n = recvfrom(s, rx, sizeof(rx), MSG_DONTWAIT, (struct sockaddr *)&from,
                                     &flen);
                if (n < 0) {
                    break;
                }
                if (from.sll_pkttype == PACKET_OUTGOING) {
                    continue;
                }
                received++;
                if (frame_check_add(&fc, rx, (uint32_t)n) == NF_OK) {
                    uint64_t rtt = (now_ns() - nf_get64(rx + NF_OFF_SENT)) / 1000;
                    rtt_max_us = rtt > rtt_max_us ? rtt : rtt_max_us;
                }
            }
        }
        if (now_ns() - last_report >= 1000000000u) {
            last_report = now_ns();
            report("progress", sent, received, &fc, rtt_max_us);
        }
    }
    report("final", sent, received, &fc, rtt_max_us);
    return 0;
}
