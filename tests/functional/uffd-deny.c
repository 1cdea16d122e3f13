/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * uffd-deny: run a program with userfaultfd unavailable, for the postcopy
 * "no userfaultfd" test. In a private mount namespace /dev/userfaultfd is
 * covered by /dev/null (its ioctl then fails), and a seccomp filter makes
 * userfaultfd(2) fail with EPERM. Needs root (CAP_SYS_ADMIN).
 *     uffd-deny PROGRAM [ARGS...]
 */
#include "qemu/osdep.h"

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static int deny_userfaultfd_syscall(void)
{
    struct sock_filter filter[] = {
        /* Only judge x86-64 system calls; anything else is let through. */
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_userfaultfd, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {
        .len = G_N_ELEMENTS(filter),
        .filter = filter,
    };

    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
        return -1;
    }
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: uffd-deny PROGRAM [ARGS...]\n");
        return 2;
    }
    if (unshare(CLONE_NEWNS) < 0) {
        fprintf(stderr, "uffd-deny: unshare(CLONE_NEWNS): %s\n", strerror(errno));
        return 2;
    }
    /* Keep our mounts to ourselves. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
        fprintf(stderr, "uffd-deny: making / private: %s\n", strerror(errno));
        return 2;
    }
    if (access("/dev/userfaultfd", F_OK) == 0 &&
        mount("/dev/null", "/dev/userfaultfd", NULL, MS_BIND, NULL) < 0) {
        fprintf(stderr, "uffd-deny: hiding /dev/userfaultfd: %s\n",
                strerror(errno));
        return 2;
    }
    if (deny_userfaultfd_syscall() < 0) {
        fprintf(stderr, "uffd-deny: seccomp: %s\n", strerror(errno));
        return 2;
    }
    execv(argv[1], argv + 1);
    fprintf(stderr, "uffd-deny: cannot run %s: %s\n", argv[1], strerror(errno));
    return 127;
}
