/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * godwit-vhost-user-net: an example vhost-user net back-end built on
 * libgwvhostuser. It reflects the guest's frames or generates numbered
 * ones, checks the numbered frames it sees, and reports counters (and
 * postcopy fault latency) on stdout and in an optional JSON file. Made to
 * be started by tests: a "ready" line once the socket exists, a final
 * line and exit status 0 on SIGTERM/SIGINT or when the front-end leaves.
 */
#include "net-backend.h"
#include "net/numbered-frame.h"
#include "vhost-user-backend.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#define PROG "godwit-vhost-user-net"

typedef struct Options {
    const char *socket_path;
    bool client;
    bool postcopy;
    bool reconnect;
    const char *stats_file;
    double interval;            /* seconds between stats lines; 0: only at exit */
    int connect_timeout_ms;
    VubLogLevel log_level;
    NetConfig net;
} Options;

static void usage(FILE *f)
{
    fprintf(f,
        "Usage: " PROG " --socket-path PATH [options]\n"
        "A vhost-user virtio-net back-end (one queue pair) that reflects or generates frames.\n"
        "\n"
        "  --socket-path PATH     the vhost-user socket (required)\n"
        "  --client               connect to a front-end listening on PATH (default: listen)\n"
        "  --mode reflect|generate  send TX frames back into RX (default), or generate\n"
        "                         numbered frames into RX\n"
        "  --mac-swap             reflect: swap source and destination MAC addresses\n"
        "  --rate N               generate: frames per second (default 1000; 0: as fast as\n"
        "                         the guest offers buffers)\n"
        "  --count N              generate: stop after N frames (default: never)\n"
        "  --frame-size N         generate: frame length in bytes, %u..%u (default 128)\n"
        "  --stream N             generate: numbered-frame stream id (default 32768)\n"
        "  --start-paused         generate: wait for SIGUSR1, which pauses and resumes\n"
        "                         generating\n"
        "  --postcopy             offer PAGEFAULT, i.e. support postcopy live migration\n"
        "  --reconnect            keep serving after the front-end disconnects\n"
        "  --connect-timeout MS   with --client: give up after MS milliseconds (default:\n"
        "                         retry forever)\n"
        "  --stats-file FILE      also write the counters as JSON to FILE (every interval and\n"
        "                         at exit)\n"
        "  --interval SECONDS     print counters every SECONDS (default 1; 0: only at exit)\n"
        "  --verbose              log every vhost-user message\n"
        "  --quiet                log only warnings and errors\n"
        "  --help                 this text\n",
        NF_MIN_LEN, NF_MAX_LEN);
}

static void bad_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void bad_arg(const char *fmt, ...)
{
    va_list ap;

    fputs(PROG ": ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see --help)\n", stderr);
    exit(1);
}

static uint64_t parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);

    if (!*s || *end || errno || s[0] == '-') {
        bad_arg("%s: '%s' is not a number", opt, s);
    }
    if (v < min || v > max) {
        bad_arg("%s: %llu is outside %" PRIu64 "..%" PRIu64, opt, v, min, max);
    }
    return v;
}

static void parse_args(int argc, char **argv, Options *o)
{
    enum { O_SOCKET = 256, O_CLIENT, O_MODE, O_MACSWAP, O_RATE, O_COUNT, O_FRAME, O_STREAM,
           O_PAUSED,
           O_POSTCOPY, O_RECONNECT, O_CTIMEOUT, O_STATS, O_INTERVAL, O_VERBOSE, O_QUIET, O_HELP };
    static const struct option longopts[] = {
        { "socket-path", required_argument, NULL, O_SOCKET },
        { "client", no_argument, NULL, O_CLIENT },
        { "mode", required_argument, NULL, O_MODE },
        { "mac-swap", no_argument, NULL, O_MACSWAP },
        { "rate", required_argument, NULL, O_RATE },
        { "count", required_argument, NULL, O_COUNT },
        { "frame-size", required_argument, NULL, O_FRAME },
        { "stream", required_argument, NULL, O_STREAM },
        { "start-paused", no_argument, NULL, O_PAUSED },
        { "postcopy", no_argument, NULL, O_POSTCOPY },
        { "reconnect", no_argument, NULL, O_RECONNECT },
        { "connect-timeout", required_argument, NULL, O_CTIMEOUT },
        { "stats-file", required_argument, NULL, O_STATS },
        { "interval", required_argument, NULL, O_INTERVAL },
        { "verbose", no_argument, NULL, O_VERBOSE },
        { "quiet", no_argument, NULL, O_QUIET },
        { "help", no_argument, NULL, O_HELP },
        { NULL, 0, NULL, 0 },
    };
    int c;

    *o = (Options){
        .interval = 1.0,
        .connect_timeout_ms = -1,
        .log_level = VUB_LOG_INFO,
        .net = { .mode = NET_MODE_REFLECT, .rate = 1000, .frame_len = 128, .stream = 0x8000 },
    };
    opterr = 0;
    /* A leading ':' makes a missing value ':' rather than '?'. */
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        switch (c) {
        case O_SOCKET:
            o->socket_path = optarg;
            break;
        case O_CLIENT:
            o->client = true;
            break;
        case O_MODE:
            if (!strcmp(optarg, "reflect")) {
                o->net.mode = NET_MODE_REFLECT;
            } else if (!strcmp(optarg, "generate")) {
                o->net.mode = NET_MODE_GENERATE;
            } else {
                bad_arg("--mode: '%s' is neither 'reflect' nor 'generate'", optarg);
            }
            break;
        case O_MACSWAP:
            o->net.mac_swap = true;
            break;
        case O_RATE:
            o->net.rate = parse_u64("--rate", optarg, 0, 100000000);
            break;
        case O_COUNT:
            o->net.count = parse_u64("--count", optarg, 0, UINT64_MAX);
            break;
        case O_FRAME:
            o->net.frame_len = (uint32_t)parse_u64("--frame-size", optarg, NF_MIN_LEN, NF_MAX_LEN);
            break;
        case O_STREAM:
            o->net.stream = (uint16_t)parse_u64("--stream", optarg, 0, 65535);
            break;
        case O_PAUSED:
            o->net.start_paused = true;
            break;
        case O_POSTCOPY:
            o->postcopy = true;
            break;
        case O_RECONNECT:
            o->reconnect = true;
            break;
        case O_CTIMEOUT:
            o->connect_timeout_ms = (int)parse_u64("--connect-timeout", optarg, 0, 86400000);
            break;
        case O_STATS:
            o->stats_file = optarg;
            break;
        case O_INTERVAL: {
            char *end;
            errno = 0;
            o->interval = strtod(optarg, &end);
            if (!*optarg || *end || errno || !(o->interval >= 0 && o->interval <= 86400)) {
                bad_arg("--interval: '%s' is not a number of seconds from 0 to 86400", optarg);
            }
            break;
        }
        case O_VERBOSE:
            o->log_level = VUB_LOG_DEBUG;
            break;
        case O_QUIET:
            o->log_level = VUB_LOG_WARNING;
            break;
        case O_HELP:
            usage(stdout);
            exit(0);
        case ':':
            bad_arg("option '%s' needs a value", argv[optind - 1]);
        default:
            bad_arg("option '%s' is not known", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        bad_arg("unexpected argument '%s'", argv[optind]);
    }
    if (!o->socket_path) {
        bad_arg("--socket-path is required");
    }
    if (o->net.start_paused && o->net.mode != NET_MODE_GENERATE) {
        bad_arg("--start-paused only applies with --mode generate");
    }
    if (o->connect_timeout_ms >= 0 && !o->client) {
        bad_arg("--connect-timeout only applies with --client");
    }
}

static const char *const level_names[] = { "error", "warning", "info", "debug" };

static void log_line(VubLogLevel level, const char *msg, void *opaque)
{
    (void)opaque;
    fprintf(stderr, PROG ": %s: %s\n", level_names[level], msg);
}

static uint64_t get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* One "key=value ..." line (and the same as JSON if asked). */
static void report(VubDev *dev, NetBackend *nb, const char *what, const char *stats_file)
{
    VubStats vs;
    NetCounters *c = &nb->counters;
    FrameCheck *fc = &nb->check;

    vub_get_stats(dev, &vs);
    printf(PROG ": %s connected=%d sessions=%" PRIu64 " tx=%" PRIu64 " reflected=%" PRIu64
           " generated=%" PRIu64 " dropped=%" PRIu64 " rx_too_small=%" PRIu64
           " tx_bad=%" PRIu64 " nf_ok=%" PRIu64 " nf_gaps=%" PRIu64 " nf_dups=%" PRIu64
           " nf_corrupt=%" PRIu64 " nf_other=%" PRIu64 " nf_streams=%" PRIu64
           " nf_before_first=%" PRIu64 " rarp=%" PRIu64
           " rejected=%" PRIu64 " dirty_log_writes=%" PRIu64 " faults=%" PRIu64
           " fault_p50_us=%.1f fault_p99_us=%.1f fault_max_us=%.1f\n",
           what, vs.connected, vs.sessions, get(&c->tx_frames), get(&c->reflected),
           get(&c->generated), get(&c->dropped), get(&c->rx_too_small), get(&c->tx_bad),
           get(&fc->ok), get(&fc->gaps), get(&fc->dups), get(&fc->corrupt), get(&fc->other),
           get(&fc->streams), get(&fc->before_first), get(&c->rarp), vs.rejected,
           vs.dirty_log_writes, vs.faults,
           vs.fault_ns_p50 / 1e3, vs.fault_ns_p99 / 1e3, vs.fault_ns_max / 1e3);
    fflush(stdout);
    if (!stats_file) {
        return;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", stats_file);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "{\"connected\": %s, \"sessions\": %" PRIu64 ", \"tx\": %" PRIu64
            ", \"tx_bytes\": %" PRIu64 ", \"reflected\": %" PRIu64 ", \"generated\": %" PRIu64
            ", \"dropped\": %" PRIu64 ", \"rx_too_small\": %" PRIu64 ", \"tx_bad\": %" PRIu64
            ", \"nf_ok\": %" PRIu64 ", \"nf_gaps\": %" PRIu64 ", \"nf_dups\": %" PRIu64
            ", \"nf_corrupt\": %" PRIu64 ", \"nf_other\": %" PRIu64 ", \"nf_streams\": %" PRIu64
            ", \"nf_before_first\": %" PRIu64
            ", \"rarp\": %" PRIu64 ", \"messages\": %" PRIu64 ", \"rejected\": %" PRIu64
            ", \"dirty_log_writes\": %" PRIu64 ", \"postcopy_listening\": %s"
            ", \"faults\": %" PRIu64 ", \"fault_ns_total\": %" PRIu64
            ", \"fault_ns_p50\": %" PRIu64 ", \"fault_ns_p99\": %" PRIu64
            ", \"fault_ns_max\": %" PRIu64 ", \"final\": %s}\n",
            vs.connected ? "true" : "false", vs.sessions, get(&c->tx_frames),
            get(&c->tx_bytes), get(&c->reflected), get(&c->generated), get(&c->dropped),
            get(&c->rx_too_small), get(&c->tx_bad), get(&fc->ok), get(&fc->gaps),
            get(&fc->dups), get(&fc->corrupt), get(&fc->other), get(&fc->streams),
            get(&fc->before_first), get(&c->rarp), vs.messages, vs.rejected, vs.dirty_log_writes,
            vs.postcopy_listening ? "true" : "false", vs.faults, vs.fault_ns_total,
            vs.fault_ns_p50, vs.fault_ns_p99, vs.fault_ns_max,
            strcmp(what, "final") ? "false" : "true");
    if (fclose(f) != 0 || rename(tmp, stats_file) != 0) {
        fprintf(stderr, PROG ": cannot write '%s': %s\n", stats_file, strerror(errno));
    }
}

int main(int argc, char **argv)
{
    static NetBackend nb;       /* large (frame and element buffers): not on the stack */
    Options o;
    VubError err = { "" };
    sigset_t sigs;

    setvbuf(stdout, NULL, _IOLBF, 0);
    parse_args(argc, argv, &o);

    /* Threads the library starts inherit the blocked set: signals reach only signalfd. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigaddset(&sigs, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    int sfd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sfd < 0) {
        fprintf(stderr, PROG ": cannot create a signalfd: %s\n", strerror(errno));
        return 1;
    }

    if (!net_backend_init(&nb, &o.net, &err)) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    const VubOps ops = {
        .log = log_line,
        .queue_kick = net_backend_kick,
        .queue_state = net_backend_queue_state,
        .send_rarp = net_backend_rarp,
    };
    VubConfig cfg = {
        .num_queues = 2,
        .features = net_backend_features(),
        .postcopy = o.postcopy,
        .reconnect = o.reconnect,
        .connect_timeout_ms = o.connect_timeout_ms,
        .log_level = o.log_level,
        .ops = &ops,
        .opaque = &nb,
    };
    VubDev *dev = vub_new(&cfg, &err);
    bool ok = dev && net_backend_attach(&nb, dev, &err);
    if (ok) {
        ok = o.client ? vub_set_client(dev, o.socket_path, &err)
                      : vub_listen(dev, o.socket_path, &err);
    }
    if (ok) {
        ok = vub_start(dev, &err);
    }
    if (!ok) {
        fprintf(stderr, PROG ": %s\n", err.msg);
        return 1;
    }
    printf(PROG ": ready, %s %s (mode %s, postcopy %s)\n",
           o.client ? "connecting to" : "listening on", o.socket_path,
           o.net.mode == NET_MODE_REFLECT ? "reflect" : "generate",
           o.postcopy ? "offered" : "not offered");

    int tfd = -1;
    if (o.interval > 0) {
        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        struct timespec period = {
            .tv_sec = (time_t)o.interval,
            .tv_nsec = (long)((o.interval - (double)(time_t)o.interval) * 1e9),
        };
        struct itimerspec its = { .it_interval = period, .it_value = period };
        if (tfd >= 0) {
            timerfd_settime(tfd, 0, &its, NULL);
        }
    }
    struct pollfd p[3] = {
        { .fd = sfd, .events = POLLIN },
        { .fd = vub_finished_fd(dev), .events = POLLIN },
        { .fd = tfd, .events = POLLIN },
    };
    const char *why = NULL;
    while (!why) {
        if (poll(p, tfd >= 0 ? 3 : 2, -1) < 0) {
            if (errno == EINTR) {
                continue;
            }
            why = "poll failed";
            break;
        }
        if (p[0].revents) {
            struct signalfd_siginfo si;
            if (read(sfd, &si, sizeof(si)) != sizeof(si)) {
                continue;
            }
            if (si.ssi_signo == SIGUSR1) {
                bool on = net_backend_toggle(&nb);
                fprintf(stderr, PROG ": generating %s\n", on ? "resumed" : "paused");
                continue;
            }
            why = strsignal((int)si.ssi_signo);
        }
        if (p[1].revents) {
            why = "the front-end disconnected";
        }
        if (p[2].revents) {
            uint64_t n;
            if (read(tfd, &n, sizeof(n)) == sizeof(n)) {
                report(dev, &nb, "stats", o.stats_file);
            }
        }
    }
    bool clean = vub_stop(dev);
    fprintf(stderr, PROG ": stopping: %s\n", why);
    report(dev, &nb, "final", o.stats_file);
    if (!clean) {
        /* A thread still sleeps in a page fault: the process exit ends it. */
        _exit(0);
    }
    vub_free(dev);
    net_backend_cleanup(&nb);
    if (tfd >= 0) {
        close(tfd);
    }
    close(sfd);
    return 0;
}
