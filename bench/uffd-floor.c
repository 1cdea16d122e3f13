/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The floor under a postcopy fault: one 4 KiB page from a peer process into
 * UFFDIO_COPY over a stream socket (unix or loopback TCP), one page at a time.
 * Built and run by bench/migrate-bench.py with the system cc; standalone:
 *   uffd-floor [unix|tcp] [PAGES] [CPU_A CPU_B]   (CPU -1 = free to run anywhere)
 */
#include "qemu/osdep.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#define PAGE 4096
/* The first faults warm caches and the scheduler; they are not counted. */
#define WARMUP 50

typedef struct Faulter {
    uint8_t *base;
    long pages;
    uint64_t *ns;       /* per page: touch to resume, as the faulting thread sees it */
    long bad;           /* pages whose content was not what the peer sent */
} Faulter;

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void pin(int cpu)
{
    cpu_set_t set;

    if (cpu < 0) {
        return;
    }
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) < 0) {
        fprintf(stderr, "uffd-floor: cannot pin to CPU %d: %s\n", cpu, strerror(errno));
        exit(2);
    }
}

static bool full_io(int fd, void *buf, size_t len, bool writing)
{
    uint8_t *p = buf;

    while (len) {
        ssize_t n = writing ? send(fd, p, len, MSG_NOSIGNAL) : recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return false;
        }
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* The page's byte pattern, so the faulting side can check what it reads. */
static uint8_t pattern(uint64_t off)
{
    return (uint8_t)((off / PAGE) * 7 + 1);
}

/* Process B: answer each 8-byte offset with that page's 4 KiB. */
static void peer(int fd)
{
    uint8_t page[PAGE];
    uint64_t off;

    while (full_io(fd, &off, sizeof(off), false)) {
        memset(page, pattern(off), sizeof(page));
        if (!full_io(fd, page, sizeof(page), true)) {
            break;
        }
    }
    _exit(0);
}

static void *faulter_run(void *opaque)
{
    Faulter *f = opaque;

    for (long i = 0; i < f->pages; i++) {
        volatile uint8_t *p = f->base + (size_t)i * PAGE;
        uint64_t t0 = now_ns();
        uint8_t v = *p;     /* a read fault on a missing anonymous page */
        f->ns[i] = now_ns() - t0;
        if (v != pattern((uint64_t)i * PAGE) || p[PAGE - 1] != v) {
            f->bad++;
        }
    }
    return NULL;
}

static int open_uffd(void)
{
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

    if (fd < 0) {
        /* Root without vm.unprivileged_userfaultfd still has the device. */
        int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
        if (dev >= 0) {
            fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
            close(dev);
        }
    }
    return fd;
}

/* Two connected stream sockets of the requested kind. */
static bool make_pair(const char *transport, int sv[2])
{
    if (strcmp(transport, "unix") == 0) {
        return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0;
    }
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t len = sizeof(sa);
    int one = 1;
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(ls, 1) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) < 0) {
        return false;
    }
    sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sv[1] < 0 || connect(sv[1], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        return false;
    }
    sv[0] = accept(ls, NULL, NULL);
    close(ls);
    if (sv[0] < 0) {
        return false;
    }
    /* As godwit's migration socket: small requests must not wait for Nagle. */
    setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return true;
}

int main(int argc, char **argv)
{
    const char *transport = argc > 1 ? argv[1] : "unix";
    long pages = argc > 2 ? atol(argv[2]) : 2000;
    int cpu_a = argc > 3 ? atoi(argv[3]) : -1;
    int cpu_b = argc > 4 ? atoi(argv[4]) : -1;
    long total = pages + WARMUP;
    int sv[2];

    if (pages < 10 || (strcmp(transport, "unix") && strcmp(transport, "tcp"))) {
        fprintf(stderr, "usage: uffd-floor [unix|tcp] [PAGES>=10] [CPU_A CPU_B]\n");
        return 2;
    }
    if (!make_pair(transport, sv)) {
        fprintf(stderr, "uffd-floor: cannot set up the %s socket pair: %s\n", transport,
                strerror(errno));
        return 1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "uffd-floor: fork: %s\n", strerror(errno));
        return 1;
    }
    if (pid == 0) {
        close(sv[0]);
        pin(cpu_b);
        peer(sv[1]);
    }
    close(sv[1]);
    pin(cpu_a);

    int uffd = open_uffd();
    struct uffdio_api api = { .api = UFFD_API };
    if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) < 0) {
        fprintf(stderr, "uffd-floor: userfaultfd is not available here: %s\n", strerror(errno));
        kill(pid, SIGKILL);
        return 1;
    }
    size_t size = (size_t)total * PAGE;
    uint8_t *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        fprintf(stderr, "uffd-floor: mmap: %s\n", strerror(errno));
        kill(pid, SIGKILL);
        return 1;
    }
    /* One fault per 4 KiB page, as on a discarded guest range. */
    madvise(base, size, MADV_NOHUGEPAGE);
    struct uffdio_register reg = {
        .range = { .start = (uintptr_t)base, .len = size },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        fprintf(stderr, "uffd-floor: UFFDIO_REGISTER: %s\n", strerror(errno));
        kill(pid, SIGKILL);
        return 1;
    }

    Faulter f = { .base = base, .pages = total, .ns = calloc((size_t)total, sizeof(uint64_t)) };
    uint64_t *handler_ns = calloc((size_t)total, sizeof(uint64_t));
    uint8_t *page = aligned_alloc(PAGE, PAGE);
    pthread_t th;

    if (!f.ns || !handler_ns || !page || pthread_create(&th, NULL, faulter_run, &f)) {
        fprintf(stderr, "uffd-floor: out of memory or threads\n");
        kill(pid, SIGKILL);
        return 1;
    }

    /* The fault handler: read the fault, ask the peer, place the page. */
    long done = 0;
    bool failed = false;
    while (done < total && !failed) {
        struct pollfd pfd = { .fd = uffd, .events = POLLIN };
        struct uffd_msg msg;

        if (poll(&pfd, 1, 5000) <= 0) {
            fprintf(stderr, "uffd-floor: no fault within 5 s after %ld pages\n", done);
            failed = true;
            break;
        }
        ssize_t n = read(uffd, &msg, sizeof(msg));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            continue;
        }
        if (n != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) {
            continue;
        }
        uint64_t t0 = now_ns();
        uint64_t addr = msg.arg.pagefault.address & ~(uint64_t)(PAGE - 1);
        uint64_t off = addr - (uintptr_t)base;
        if (!full_io(sv[0], &off, sizeof(off), true) ||
            !full_io(sv[0], page, PAGE, false)) {
            fprintf(stderr, "uffd-floor: the peer went away\n");
            failed = true;
            break;
        }
        struct uffdio_copy copy = { .dst = addr, .src = (uintptr_t)page, .len = PAGE };
        while (ioctl(uffd, UFFDIO_COPY, &copy) < 0) {
            if (errno != EAGAIN && errno != EINTR) {
                fprintf(stderr, "uffd-floor: UFFDIO_COPY: %s\n", strerror(errno));
                failed = true;
                break;
            }
            copy.len = PAGE - (copy.copy > 0 ? (uint64_t)copy.copy : 0);
            copy.dst = addr + (PAGE - copy.len);
            copy.src = (uintptr_t)page + (PAGE - copy.len);
            copy.copy = 0;
        }
        handler_ns[done++] = now_ns() - t0;
    }
    if (failed) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return 1;
    }
    pthread_join(th, NULL);
    close(sv[0]);
    waitpid(pid, NULL, 0);
    if (f.bad) {
        fprintf(stderr, "uffd-floor: %ld pages read back wrong\n", f.bad);
        return 1;
    }

    /* Sorted copies past the warm-up; percentiles by rank. */
    uint64_t *h = handler_ns + WARMUP, *t = f.ns + WARMUP;
    qsort(h, (size_t)pages, sizeof(*h), cmp_u64);
    qsort(t, (size_t)pages, sizeof(*t), cmp_u64);
    printf("transport=%s pages=%ld cpu_a=%d cpu_b=%d"
           " place_p50_us=%.2f place_p99_us=%.2f place_max_us=%.2f"
           " fault_p50_us=%.2f fault_p99_us=%.2f fault_max_us=%.2f\n",
           transport, pages, cpu_a, cpu_b,
           h[pages / 2] / 1e3, h[pages * 99 / 100] / 1e3, h[pages - 1] / 1e3,
           t[pages / 2] / 1e3, t[pages * 99 / 100] / 1e3, t[pages - 1] / 1e3);
    free(page);
    free(handler_ns);
    free(f.ns);
    munmap(base, size);
    close(uffd);
    return 0;
}
