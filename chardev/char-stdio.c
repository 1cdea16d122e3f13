/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * stdio back-end: one per process, always behind a mux so that the serial
 * and the monitor can share it. A terminal on stdin is put in raw mode
 * (keeping output post-processing, and Ctrl-C unless signal=off), and put
 * back at exit, by chardev_cleanup_all() and on fatal signals.
 */
#include "qemu/osdep.h"

#include <signal.h>
#include <termios.h>
#include <glib-unix.h>

#include "chardev/char.h"
#include "chardev/char-internal.h"

typedef struct StdioState {
    CharOut *out;
    guint watch;                /* stdin readable; 0 once at EOF */
    bool started;               /* reading was started (first front-end) */
    bool signals;
} StdioState;

static Chardev *stdio_chr;

/* Read by signal handlers: set once before raw mode is entered. */
static struct termios stdio_saved_tty;
static volatile sig_atomic_t stdio_tty_saved;

static void stdio_restore_tty(void)
{
    if (stdio_tty_saved) {
        tcsetattr(STDIN_FILENO, TCSANOW, &stdio_saved_tty);
    }
}

static void stdio_fatal_signal(int sig)
{
    /* Only async-signal-safe calls here; then die of the same signal. */
    stdio_restore_tty();
    signal(sig, SIG_DFL);
    raise(sig);
}

static void stdio_install_signal_restore(void)
{
    static const int fatal[] = { SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL };
    static const int polite[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT };
    struct sigaction sa = { 0 };

    sa.sa_handler = stdio_fatal_signal;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < G_N_ELEMENTS(fatal); i++) {
        sigaction(fatal[i], &sa, NULL);
    }
    /*
     * Termination signals: only where nobody installed a handler. main's
     * own handlers request a clean shutdown, which ends in cleanup_all().
     */
    for (size_t i = 0; i < G_N_ELEMENTS(polite); i++) {
        struct sigaction old;

        if (sigaction(polite[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
            sigaction(polite[i], &sa, NULL);
        }
    }
}

static void stdio_enter_raw(bool signals)
{
    struct termios tty;

    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &stdio_saved_tty) < 0) {
        return;
    }
    stdio_tty_saved = 1;
    atexit(stdio_restore_tty);
    stdio_install_signal_restore();

    tty = stdio_saved_tty;
    /* Bytes through unchanged: no CR/NL mapping, no flow control, no echo. */
    tty.c_iflag &= ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
    tty.c_lflag &= ~(ECHO | ECHONL | ICANON | IEXTEN);
    if (!signals) {
        tty.c_lflag &= ~ISIG;
    }
    /* Keep NL -> CR NL on output, so printf-style guest output stays readable. */
    tty.c_oflag |= OPOST;
    tty.c_cflag &= ~(CSIZE | PARENB);
    tty.c_cflag |= CS8;
    tty.c_cc[VMIN] = 1;
    tty.c_cc[VTIME] = 0;
    tcsetattr(STDIN_FILENO, TCSANOW, &tty);
}

static gboolean stdio_readable(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    StdioState *s = chr->be_opaque;
    uint8_t buf[1024];
    ssize_t n = read(fd, buf, sizeof(buf));

    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /* EOF (stdin redirected from a file or /dev/null): stop reading. */
        s->watch = 0;
        return G_SOURCE_REMOVE;
    }
    chardev_be_deliver(chr, buf, n);
    return G_SOURCE_CONTINUE;
}

static void stdio_attached(Chardev *chr)
{
    StdioState *s = chr->be_opaque;

    /* Read only once somebody listens, so no early keystroke is lost. */
    if (!s->started) {
        s->started = true;
        s->watch = g_unix_fd_add(STDIN_FILENO, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                 stdio_readable, chr);
    }
}

static void stdio_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    StdioState *s = chr->be_opaque;

    char_out_write(s->out, buf, len);
}

static bool stdio_drain(Chardev *chr, int timeout_ms)
{
    StdioState *s = chr->be_opaque;

    return char_out_drain(s->out, timeout_ms);
}

static void stdio_close(Chardev *chr)
{
    StdioState *s = chr->be_opaque;

    if (s->watch) {
        g_source_remove(s->watch);
    }
    char_out_free(s->out);
    stdio_restore_tty();
    g_free(s);
    stdio_chr = NULL;
}

static const ChardevOps stdio_ops = {
    .name = "stdio",
    .write = stdio_write,
    .drain = stdio_drain,
    .attached = stdio_attached,
    .close = stdio_close,
};

Chardev *chardev_stdio_get(bool force_mux, bool signals, GError **errp)
{
    StdioState *s;

    if (stdio_chr) {
        if (force_mux) {
            char_mux_attach(stdio_chr, true);
        }
        return stdio_chr;
    }
    s = g_new0(StdioState, 1);
    s->signals = signals;
    s->out = char_out_new(STDOUT_FILENO, false, 0);
    stdio_chr = chardev_alloc(&stdio_ops, NULL, "stdio");
    stdio_chr->be_opaque = s;
    char_mux_attach(stdio_chr, force_mux);
    stdio_enter_raw(signals);
    return stdio_chr;
}
