/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Test-side vhost-user front-end, virtio driver rings and child processes
 * (see vu-frontend.h). Written for clarity over speed.
 */
#include "vu-frontend.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define VUFE_ERROR (g_quark_from_static_string("vufe"))

VuFe *vufe_adopt(int fd)
{
    VuFe *fe = g_new0(VuFe, 1);

    fe->sock = fd;
    return fe;
}

VuFe *vufe_connect(const char *path, int timeout_ms, GError **errp)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    g_strlcpy(sa.sun_path, path, sizeof(sa.sun_path));
    for (;;) {
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            g_set_error(errp, VUFE_ERROR, 0, "socket: %s", g_strerror(errno));
            return NULL;
        }
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            return vufe_adopt(fd);
        }
        int e = errno;
        close(fd);
        if (g_get_monotonic_time() > deadline) {
            g_set_error(errp, VUFE_ERROR, 0, "cannot connect to %s: %s", path, g_strerror(e));
            return NULL;
        }
        g_usleep(20000);
    }
}

void vufe_free(VuFe *fe)
{
    if (fe) {
        if (fe->sock >= 0) {
            close(fe->sock);
        }
        g_free(fe);
    }
}

bool vufe_send(VuFe *fe, uint32_t request, uint32_t flags, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, GError **errp)
{
    VhostUserHeader hdr = { .request = request, .flags = flags, .size = size };
    struct iovec iov[2] = {
        { .iov_base = &hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)payload, .iov_len = payload ? size : 0 },
    };
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = payload && size ? 2 : 1 };

    g_assert(nfds <= 16);
    if (nfds) {
        memset(&control, 0, sizeof(control));
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    ssize_t want = (ssize_t)(sizeof(hdr) + (payload ? size : 0));
    ssize_t n = sendmsg(fe->sock, &mh, MSG_NOSIGNAL);
    if (n != want) {
        g_set_error(errp, VUFE_ERROR, 0, "sending request %u: %s", request,
                    n < 0 ? g_strerror(errno) : "short write");
        return false;
    }
    return true;
}

static bool wait_readable(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int r;

    do {
        r = poll(&p, 1, timeout_ms);
    } while (r < 0 && errno == EINTR);
    return r > 0;
}

static int read_exact(int sock, void *buf, size_t len, int timeout_ms)
{
    size_t done = 0;

    while (done < len) {
        if (!wait_readable(sock, timeout_ms)) {
            return -1;
        }
        ssize_t n = recv(sock, (uint8_t *)buf + done, len - done, 0);
        if (n <= 0) {
            return n == 0 ? 0 : -1;
        }
        done += (size_t)n;
    }
    return 1;
}

int vufe_recv(VuFe *fe, VhostUserHeader *hdr, void *payload, size_t cap, int *fd,
              int timeout_ms, GError **errp)
{
    union {
        char buf[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = hdr, .iov_len = sizeof(*hdr) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
                         .msg_control = control.buf, .msg_controllen = sizeof(control.buf) };

    if (fd) {
        *fd = -1;
    }
    if (!wait_readable(fe->sock, timeout_ms)) {
        g_set_error(errp, VUFE_ERROR, 0, "no message within %d ms", timeout_ms);
        return -1;
    }
    ssize_t n = recvmsg(fe->sock, &mh, MSG_CMSG_CLOEXEC);
    if (n == 0) {
        return 0;
    }
    if (n < 0) {
        g_set_error(errp, VUFE_ERROR, 0, "recvmsg: %s", g_strerror(errno));
        return -1;
    }
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got;
            memcpy(&got, CMSG_DATA(c), sizeof(int));
            if (fd && *fd < 0) {
                *fd = got;
            } else {
                close(got);
            }
        }
    }
    if ((size_t)n < sizeof(*hdr) &&
        read_exact(fe->sock, (uint8_t *)hdr + n, sizeof(*hdr) - (size_t)n, timeout_ms) != 1) {
        g_set_error(errp, VUFE_ERROR, 0, "truncated reply header");
        return -1;
    }
    if (hdr->size > cap) {
        g_set_error(errp, VUFE_ERROR, 0, "reply to %u has %u payload bytes, more than %zu",
                    hdr->request, hdr->size, cap);
        return -1;
    }
    if (hdr->size && read_exact(fe->sock, payload, hdr->size, timeout_ms) != 1) {
        g_set_error(errp, VUFE_ERROR, 0, "truncated reply payload");
        return -1;
    }
    return 1;
}

bool vufe_wait_closed(VuFe *fe, int timeout_ms)
{
    char c;

    if (!wait_readable(fe->sock, timeout_ms)) {
        return false;
    }
    return recv(fe->sock, &c, 1, MSG_DONTWAIT) == 0;
}

bool vufe_quiet(VuFe *fe, int timeout_ms)
{
    return !wait_readable(fe->sock, timeout_ms);
}

static bool check_reply(const VhostUserHeader *hdr, uint32_t request, uint32_t size,
                        GError **errp)
{
    if (hdr->request != request || hdr->flags != (VHOST_USER_VERSION | VHOST_USER_FLAG_REPLY) ||
        hdr->size != size) {
        g_set_error(errp, VUFE_ERROR, 0, "bad reply to %u: request %u, flags 0x%x, size %u"
                    " (wanted %u, 0x5, %u)", request, hdr->request, hdr->flags, hdr->size,
                    request, size);
        return false;
    }
    return true;
}

bool vufe_get_u64(VuFe *fe, uint32_t request, uint64_t *out, GError **errp)
{
    VhostUserHeader hdr;

    if (!vufe_send(fe, request, VHOST_USER_VERSION, NULL, 0, NULL, 0, errp)) {
        return false;
    }
    if (vufe_recv(fe, &hdr, out, sizeof(*out), NULL, 5000, errp) != 1) {
        if (errp && !*errp) {
            g_set_error(errp, VUFE_ERROR, 0, "the back-end closed the connection");
        }
        return false;
    }
    return check_reply(&hdr, request, 8, errp);
}

bool vufe_request(VuFe *fe, uint32_t request, const void *payload, uint32_t size,
                  const int *fds, unsigned nfds, bool need_reply, uint64_t *ack, GError **errp)
{
    uint32_t flags = VHOST_USER_VERSION | (need_reply ? VHOST_USER_FLAG_NEED_REPLY : 0);
    VhostUserHeader hdr;
    uint64_t v;

    if (!vufe_send(fe, request, flags, payload, size, fds, nfds, errp)) {
        return false;
    }
    if (!need_reply) {
        return true;
    }
    int r = vufe_recv(fe, &hdr, &v, sizeof(v), NULL, 5000, errp);
    if (r != 1) {
        if (r == 0) {
            g_set_error(errp, VUFE_ERROR, 0, "the back-end closed the connection");
        }
        return false;
    }
    if (!check_reply(&hdr, request, 8, errp)) {
        return false;
    }
    if (ack) {
        *ack = v;
    }
    return true;
}

void vufe_must(VuFe *fe, uint32_t request, const void *payload, uint32_t size,
               const int *fds, unsigned nfds, bool need_reply)
{
    g_autoptr(GError) err = NULL;
    uint64_t ack = 0;

    if (!vufe_request(fe, request, payload, size, fds, nfds, need_reply, &ack, &err)) {
        g_error("request %u: %s", request, err->message);
    }
    g_assert_cmpuint(ack, ==, 0);
}

void vufe_must_u64(VuFe *fe, uint32_t request, uint64_t value, bool need_reply)
{
    vufe_must(fe, request, &value, sizeof(value), NULL, 0, need_reply);
}

void vufe_must_state(VuFe *fe, uint32_t request, uint32_t index, uint32_t num)
{
    VhostUserVringState st = { .index = index, .num = num };

    vufe_must(fe, request, &st, sizeof(st), NULL, 0, true);
}

/* ---- guest memory ------------------------------------------------------ */

VuGuestMem *vu_guest_mem_new(uint64_t size)
{
    VuGuestMem *m = g_new0(VuGuestMem, 1);

    m->fd = memfd_create("vu-test-ram", MFD_CLOEXEC);
    g_assert_cmpint(m->fd, >=, 0);
    g_assert_cmpint(ftruncate(m->fd, (off_t)size), ==, 0);
    m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, 0);
    g_assert(m->base != MAP_FAILED);
    m->size = size;
    return m;
}

void vu_guest_mem_free(VuGuestMem *m)
{
    if (m) {
        munmap(m->base, m->size);
        close(m->fd);
        g_free(m);
    }
}

/* ---- rings ------------------------------------------------------------- */

void vu_ring_init(VuRing *r, uint8_t *image, uint32_t num, uint64_t desc_gpa,
                  uint64_t avail_gpa, uint64_t used_gpa)
{
    memset(r, 0, sizeof(*r));
    r->image = image;
    r->num = num;
    r->desc_gpa = desc_gpa;
    r->avail_gpa = avail_gpa;
    r->used_gpa = used_gpa;
    memset(image + desc_gpa, 0, VRING_DESC_SIZE(num));
    memset(image + avail_gpa, 0, VRING_AVAIL_SIZE(num));
    memset(image + used_gpa, 0, VRING_USED_SIZE(num));
    r->kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    r->call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    g_assert(r->kick_fd >= 0 && r->call_fd >= 0);
}

void vu_ring_cleanup(VuRing *r)
{
    close(r->kick_fd);
    close(r->call_fd);
}

void vu_ring_set_desc(VuRing *r, uint16_t i, uint64_t gpa, uint32_t len, uint16_t flags,
                      uint16_t next)
{
    VringDesc d = { .addr = gpa, .len = len, .flags = flags, .next = next };

    memcpy(r->image + r->desc_gpa + 16u * i, &d, sizeof(d));
}

void vu_ring_publish(VuRing *r, uint16_t head)
{
    VringAvail *a = (VringAvail *)(r->image + r->avail_gpa);

    a->ring[r->avail_idx % r->num] = head;
    r->avail_idx++;
    __atomic_store_n(&a->idx, r->avail_idx, __ATOMIC_RELEASE);
}

void vu_ring_set_used_event(VuRing *r, uint16_t v)
{
    VringAvail *a = (VringAvail *)(r->image + r->avail_gpa);

    __atomic_store_n(&a->ring[r->num], v, __ATOMIC_RELEASE);
}

uint16_t vu_ring_avail_event(VuRing *r)
{
    VringUsed *u = (VringUsed *)(r->image + r->used_gpa);

    return __atomic_load_n((uint16_t *)&u->ring[r->num], __ATOMIC_ACQUIRE);
}

void vu_ring_kick(VuRing *r)
{
    uint64_t one = 1;

    g_assert_cmpint(write(r->kick_fd, &one, sizeof(one)), ==, 8);
}

uint16_t vu_ring_used_idx(VuRing *r)
{
    VringUsed *u = (VringUsed *)(r->image + r->used_gpa);

    return __atomic_load_n(&u->idx, __ATOMIC_ACQUIRE);
}

VringUsedElem vu_ring_used_elem(VuRing *r, uint16_t i)
{
    VringUsed *u = (VringUsed *)(r->image + r->used_gpa);
    VringUsedElem e;

    memcpy(&e, &u->ring[i % r->num], sizeof(e));
    return e;
}

bool vu_ring_wait_used(VuRing *r, uint16_t idx, int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    while ((int16_t)(vu_ring_used_idx(r) - idx) < 0) {
        if (g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(1000);
    }
    return true;
}

uint64_t vu_ring_take_calls(VuRing *r)
{
    uint64_t v = 0;

    if (read(r->call_fd, &v, sizeof(v)) != sizeof(v)) {
        return 0;
    }
    return v;
}

bool vu_ring_wait_call(VuRing *r, int timeout_ms)
{
    return wait_readable(r->call_fd, timeout_ms);
}

void vufe_setup_ring(VuFe *fe, uint32_t index, VuRing *r, uint64_t uva_base, uint64_t log_gpa)
{
    VhostUserVringAddr a = {
        .index = index,
        .flags = log_gpa ? VHOST_VRING_F_LOG : 0,
        .desc_user_addr = uva_base + r->desc_gpa,
        .used_user_addr = uva_base + r->used_gpa,
        .avail_user_addr = uva_base + r->avail_gpa,
        .log_guest_addr = log_gpa,
    };
    uint64_t idx = index;

    vufe_must_state(fe, VHOST_USER_SET_VRING_NUM, index, r->num);
    vufe_must_state(fe, VHOST_USER_SET_VRING_BASE, index, 0);
    vufe_must(fe, VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0, true);
    vufe_must(fe, VHOST_USER_SET_VRING_CALL, &idx, 8, &r->call_fd, 1, true);
    vufe_must(fe, VHOST_USER_SET_VRING_KICK, &idx, 8, &r->kick_fd, 1, true);
    vufe_must_state(fe, VHOST_USER_SET_VRING_ENABLE, index, 1);
}

/* ---- processes ------------------------------------------------------------ */

pid_t vu_spawn(char *const *argv, const char *out_path, const char *err_path)
{
    pid_t parent = getpid();
    int out = out_path ? open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    int err = err_path ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();

    g_assert_cmpint(pid, >=, 0);
    if (pid == 0) {
        sigset_t none;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) {
            _exit(127);
        }
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        dup2(in, 0);
        if (out >= 0) {
            dup2(out, 1);
        }
        if (err >= 0) {
            dup2(err, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    close(in);
    if (out >= 0) {
        close(out);
    }
    if (err >= 0) {
        close(err);
    }
    return pid;
}

bool vu_wait_pid(pid_t pid, int timeout_ms, int *status)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            if (status) {
                *status = st;
            }
            return true;
        }
        if (r < 0 || g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(10000);
    }
}

int vu_stop_pid(pid_t pid, int grace_ms)
{
    int status = -1;

    kill(pid, SIGTERM);
    if (!vu_wait_pid(pid, grace_ms, &status)) {
        kill(pid, SIGKILL);
        vu_wait_pid(pid, 5000, &status);
    }
    return status;
}

char *vu_wait_file_contains(const char *path, const char *needle, int timeout_ms, pid_t alive)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        char *text = NULL;
        if (g_file_get_contents(path, &text, NULL, NULL) && strstr(text, needle)) {
            return text;
        }
        g_free(text);
        siginfo_t si = { 0 };
        /* Peek without reaping: the caller still waits for the status. */
        if (alive > 0 && waitid(P_PID, (id_t)alive, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            si.si_pid == alive) {
            return NULL;
        }
        if (g_get_monotonic_time() > deadline) {
            return NULL;
        }
        g_usleep(20000);
    }
}

gint64 vu_stat_value(const char *text, const char *prefix, const char *key)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autofree char *pat = g_strdup_printf(" %s=", key);
    gint64 v = -1;

    for (char **l = lines; *l; l++) {
        if (!g_str_has_prefix(*l, prefix)) {
            continue;
        }
        const char *p = strstr(*l, pat);
        if (p) {
            v = g_ascii_strtoll(p + strlen(pat), NULL, 10);
        }
    }
    return v;
}
