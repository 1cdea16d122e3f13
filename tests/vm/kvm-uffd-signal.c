/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * One fact of the KVM under us: does a vCPU thread that is blocked in
 * KVM_RUN on a guest page registered with userfaultfd (a missing postcopy
 * page) return from KVM_RUN when it gets an ordinary signal?
 *
 * godwit never joins its vCPU threads at exit because on the hosts it was
 * first built on the answer was no (docs/devel/architecture.md). Run it on
 * any KVM, natively or in the test VM:
 *
 *     build/tests/vm/kvm-uffd-signal
 *
 * Prints one line. Exit 0: the vCPU left KVM_RUN on the signal; 1: it did
 * not (it left only when the page arrived); 2: the probe could not run.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define SLOT_SIZE   0x10000u      /* 64 KiB: code at 0, the missing page at 0x10000 */
#define WAIT_MS     1000

static int vcpu_fd;
static struct kvm_run *run;
static atomic_int run_done;
static int run_errno;

static void die(const char *what)
{
    fprintf(stderr, "kvm-uffd-signal: %s: %s\n", what, strerror(errno));
    exit(2);
}

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void on_signal(int sig)
{
    (void)sig;
}

static void *vcpu_thread(void *arg)
{
    (void)arg;
    int r = ioctl(vcpu_fd, KVM_RUN, 0);
    run_errno = r < 0 ? errno : 0;
    atomic_store(&run_done, 1);
    return NULL;
}

static void *map_slot(void)
{
    void *p = mmap(NULL, SLOT_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        die("mmap");
    }
    return p;
}

static void set_slot(int vm, unsigned slot, uint64_t gpa, void *host)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot, .guest_phys_addr = gpa, .memory_size = SLOT_SIZE,
        .userspace_addr = (uint64_t)(uintptr_t)host,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        die("KVM_SET_USER_MEMORY_REGION");
    }
}

int main(void)
{
    /* Real mode: mov ax,0x1000; mov ds,ax; mov al,[0]; hlt -- reads GPA 0x10000. */
    static const unsigned char code[] = { 0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xa0, 0x00, 0x00, 0xf4 };
    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) {
        die("/dev/kvm");
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) {
        die("KVM_CREATE_VM");
    }
    unsigned char *low = map_slot();
    memcpy(low, code, sizeof(code));
    set_slot(vm, 0, 0, low);

    unsigned char *missing = map_slot();
    int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (uffd < 0) {
        die("userfaultfd (vm.unprivileged_userfaultfd?)");
    }
    struct uffdio_api api = { .api = UFFD_API };
    if (ioctl(uffd, UFFDIO_API, &api) < 0) {
        die("UFFDIO_API");
    }
    struct uffdio_register reg = {
        .range = { .start = (uint64_t)(uintptr_t)missing, .len = SLOT_SIZE },
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg) < 0) {
        die("UFFDIO_REGISTER");
    }
    set_slot(vm, 1, SLOT_SIZE, missing);

    vcpu_fd = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu_fd < 0) {
        die("KVM_CREATE_VCPU");
    }
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu_fd, 0);
    if (run == MAP_FAILED) {
        die("mmap kvm_run");
    }
    struct kvm_sregs sregs;
    if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0) {
        die("KVM_GET_SREGS");
    }
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    if (ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0) {
        die("KVM_SET_SREGS");
    }
    struct kvm_regs regs = { .rip = 0, .rflags = 2 };
    if (ioctl(vcpu_fd, KVM_SET_REGS, &regs) < 0) {
        die("KVM_SET_REGS");
    }

    struct sigaction sa = { .sa_handler = on_signal };   /* no SA_RESTART */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, vcpu_thread, NULL)) {
        fprintf(stderr, "kvm-uffd-signal: pthread_create failed\n");
        return 2;
    }

    struct pollfd pfd = { .fd = uffd, .events = POLLIN };
    if (poll(&pfd, 1, 10000) != 1) {
        fprintf(stderr, "kvm-uffd-signal: the vCPU never touched the missing page "
                "(KVM_RUN %s)\n", atomic_load(&run_done) ? "returned" : "still running");
        return 2;
    }
    struct uffd_msg msg;
    if (read(uffd, &msg, sizeof(msg)) != sizeof(msg) || msg.event != UFFD_EVENT_PAGEFAULT) {
        die("read userfaultfd");
    }

    /* The vCPU is blocked on the page now. */
    long t0 = now_ms();
    while (!atomic_load(&run_done) && now_ms() - t0 < WAIT_MS) {
        pthread_kill(t, SIGUSR1);       /* again and again: one may land early */
        usleep(10000);
    }
    int left = atomic_load(&run_done);
    long waited = now_ms() - t0;

    struct uffdio_zeropage zp = {
        .range = { .start = msg.arg.pagefault.address & ~0xfffull, .len = 4096 },
    };
    if (ioctl(uffd, UFFDIO_ZEROPAGE, &zp) < 0) {
        die("UFFDIO_ZEROPAGE");
    }
    pthread_join(t, NULL);
    if (left) {
        printf("a vCPU blocked on a userfaultfd page left KVM_RUN on SIGUSR1 after %ld ms "
               "(%s)\n", waited, run_errno ? strerror(run_errno) : "returned 0");
        return 0;
    }
    printf("a vCPU blocked on a userfaultfd page did not leave KVM_RUN on SIGUSR1 in %d ms; "
           "it left when the page arrived (%s, exit reason %u)\n", WAIT_MS,
           run_errno ? strerror(run_errno) : "returned 0", run->exit_reason);
    return 1;
}
