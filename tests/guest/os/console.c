/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos console: COM1 16550. Ring 0 prints polled (boot, fatal errors);
 * ring 3 prints through a ring buffer sent in 16-byte bursts ("rep outsb",
 * one VM exit each) paced by the THR-empty interrupt; receive by interrupt.
 * Writers never wait for the UART: a full ring drops bytes and counts them.
 * Also a small printf and the freestanding string helpers.
 */
#include "gwos.h"

#define COM1        0x3f8
#define UART_RBR    0
#define UART_THR    0
#define UART_IER    1
#define UART_IIR    2
#define UART_FCR    2
#define UART_LCR    3
#define UART_MCR    4
#define UART_LSR    5
#define LSR_DR      0x01
#define LSR_THRE    0x20
#define TX_BURST    16              /* the 16550's FIFO */
#define RING_SIZE   65536u          /* power of two */
#define TX_STALL_NS 50000000ull     /* retry a silent transmitter after 50 ms */

#define UART_IER_RDI  0x01
#define UART_IER_THRI 0x02

static char ring[RING_SIZE];
static uint32_t ring_head, ring_tail;   /* free-running; tail = next to send */
static Spinlock console_lock;
static bool tx_busy;                    /* THRI is on: waiting for the UART */
static uint64_t tx_stamp_ns;
static uint32_t tx_kick;                /* set by the IRQ4 handler */

/* ---- helpers the compiler may call ---- */
void *memset(void *d, int c, size_t n)
{
    uint8_t *p = d;
    while (n--) {
        *p++ = (uint8_t)c;
    }
    return d;
}

void *memcpy(void *d, const void *s, size_t n)
{
    uint8_t *p = d;
    const uint8_t *q = s;
    while (n--) {
        *p++ = *q++;
    }
    return d;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

void spin_lock(Spinlock *l)
{
    while (__atomic_exchange_n(&l->v, 1, __ATOMIC_ACQUIRE)) {
        while (READ_ONCE(l->v)) {
            cpu_relax();
        }
    }
}

void spin_unlock(Spinlock *l)
{
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE);
}

static uint32_t ring_used(void)
{
    return ring_head - ring_tail;
}

/* ---- UART ---- */
void console_init(void)
{
    outb(COM1 + UART_IER, 0);
    outb(COM1 + UART_LCR, 0x80);        /* DLAB: 115200 baud */
    outb(COM1 + UART_THR, 1);
    outb(COM1 + UART_IER, 0);
    outb(COM1 + UART_LCR, 0x03);        /* 8N1 */
    outb(COM1 + UART_FCR, 0x07);        /* FIFO on, both cleared */
    outb(COM1 + UART_MCR, 0x0b);        /* DTR, RTS, OUT2 (IRQ gate on PCs) */
}

/*
 * Ring 0 output: polled, straight to the UART, no ring buffer. Used while
 * booting and for fatal exceptions (which may interleave with a line in
 * progress; they are the last thing printed anyway).
 */
void console_write(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int spin = 0;
        while (!(inb(COM1 + UART_LSR) & LSR_THRE) && ++spin < 100000) {
            cpu_relax();
        }
        outb(COM1 + UART_THR, (uint8_t)s[i]);
    }
    results->serial_tx += n;
}

/*
 * From here on: ring 3 output. All vCPUs share the ring buffer under a
 * spinlock (ring 3 only: interrupt handlers never take it). A writer that
 * finds the transmitter idle sends one FIFO's worth at once through the
 * I/O gate; if more is left it enables the THR-empty interrupt. The IRQ4
 * handler (ring 0, BSP) only masks THRI again and sets tx_kick; the next
 * workload iteration on any vCPU that sees tx_kick sends the next burst.
 * A short line (the 1 kHz marker) thus costs one gated "rep outsb" and no
 * interrupt at all.
 */
static void tx_burst_locked(Cpu *c)
{
    uint32_t n = ring_used();
    uint32_t off = ring_tail & (RING_SIZE - 1);

    if (n > TX_BURST) {
        n = TX_BURST;
    }
    if (n > RING_SIZE - off) {
        n = RING_SIZE - off;            /* contiguous part; the rest next time */
    }
    if (n) {
        uio_outsb(COM1, &ring[off], n);
        ring_tail += n;
        results->serial_tx += n;
    }
    if (ring_used()) {
        tx_busy = true;
        tx_stamp_ns = clock_ns(c);
        uio_outb(COM1 + UART_IER, UART_IER_RDI | UART_IER_THRI);
    } else {
        tx_busy = false;
    }
}

void uconsole_write(Cpu *c, const char *s, size_t n)
{
    spin_lock(&console_lock);
    for (size_t i = 0; i < n; i++) {
        if (ring_used() >= RING_SIZE) {
            results->serial_dropped += n - i;
            break;
        }
        ring[ring_head & (RING_SIZE - 1)] = s[i];
        ring_head++;
    }
    if (!tx_busy) {
        tx_burst_locked(c);
    }
    spin_unlock(&console_lock);
}

/* Ring 3, every workload iteration: continue after a THRE interrupt. */
void uconsole_poll(Cpu *c, uint64_t now)
{
    bool kick = READ_ONCE(tx_kick) && __atomic_exchange_n(&tx_kick, 0, __ATOMIC_ACQUIRE);

    /* A lost interrupt must not stop the console for good. */
    if (!kick && !(READ_ONCE(tx_busy) && now - READ_ONCE(tx_stamp_ns) > TX_STALL_NS)) {
        return;
    }
    spin_lock(&console_lock);
    tx_burst_locked(c);
    spin_unlock(&console_lock);
}

bool uconsole_drained(void)
{
    return ring_used() == 0;
}

void uprintf(Cpu *c, const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    int n = kvsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1) {
        n = (int)sizeof(buf) - 1;
    }
    uconsole_write(c, buf, (size_t)n);
}

/* Switch on the UART interrupts before the vCPUs go to ring 3. */
void console_irq_mode(void)
{
    outb(COM1 + UART_IER, UART_IER_RDI);
}

/* IRQ4, ring 0: keep it short (see tx_burst_locked). */
void console_irq(void)
{
    results->serial_irqs++;
    for (int i = 0; i < 8; i++) {
        uint8_t iir = inb(COM1 + UART_IIR);
        if (iir & 1) {
            break;
        }
        switch (iir & 0x0e) {
        case 0x02:                      /* THR empty */
            outb(COM1 + UART_IER, UART_IER_RDI);
            WRITE_ONCE(tx_kick, 1);
            break;
        case 0x04:                      /* RX data */
        case 0x0c:                      /* RX timeout */
            while (inb(COM1 + UART_LSR) & LSR_DR) {
                (void)inb(COM1 + UART_RBR);
                results->serial_rx++;
            }
            break;
        case 0x06:
            (void)inb(COM1 + UART_LSR);
            break;
        default:
            (void)inb(COM1 + 6);        /* modem status */
            break;
        }
    }
}

/* ---- formatting ---- */
typedef struct Out {
    char *buf;
    size_t size, len;
} Out;

static void out_c(Out *o, char c)
{
    if (o->len + 1 < o->size) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void out_num(Out *o, uint64_t v, unsigned base, int width, char pad, bool neg)
{
    char tmp[24];
    int n = 0;

    do {
        tmp[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (neg) {
        tmp[n++] = '-';
    }
    while (n < width--) {
        out_c(o, pad);
    }
    while (n) {
        out_c(o, tmp[--n]);
    }
}

int kvsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    Out o = { buf, size, 0 };

    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            out_c(&o, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, lng = 0;
        if (*fmt == '0') {
            pad = '0';
            fmt++;
        }
        while (*fmt >= '0' && *fmt <= '9') {
            width = width * 10 + (*fmt++ - '0');
        }
        while (*fmt == 'l') {
            lng++;
            fmt++;
        }
        switch (*fmt) {
        case 'd': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            out_num(&o, v < 0 ? (uint64_t)-v : (uint64_t)v, 10, width, pad, v < 0);
            break;
        }
        case 'u':
            out_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 10, width,
                    pad, false);
            break;
        case 'x':
            out_num(&o, lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned), 16, width,
                    pad, false);
            break;
        case 's': {
            const char *s = va_arg(ap, const char *);
            size_t n = strlen(s ? s : "(null)");
            for (int i = (int)n; i < width; i++) {
                out_c(&o, ' ');
            }
            for (const char *p = s ? s : "(null)"; *p; p++) {
                out_c(&o, *p);
            }
            break;
        }
        case 'c':
            out_c(&o, (char)va_arg(ap, int));
            break;
        case '%':
            out_c(&o, '%');
            break;
        default:
            out_c(&o, '?');
            break;
        }
    }
    if (o.size) {
        o.buf[o.len < o.size ? o.len : o.size - 1] = 0;
    }
    return (int)o.len;
}

int ksnprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = kvsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return n;
}

void kprintf(const char *fmt, ...)
{
    char buf[320];
    va_list ap;

    va_start(ap, fmt);
    int n = kvsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(buf) - 1) {
        n = sizeof(buf) - 1;
    }
    console_write(buf, (size_t)n);
}

/* "@" + 8 hex digits of the sequence number + "\n": 10 bytes. Ring 3. */
void marker_emit(Cpu *c, uint64_t seq)
{
    char m[10];

    m[0] = '@';
    for (int i = 0; i < 8; i++) {
        m[8 - i] = "0123456789abcdef"[(seq >> (4 * i)) & 0xf];
    }
    m[9] = '\n';
    uconsole_write(c, m, sizeof(m));
}

void panic(const char *fmt, ...)
{
    char buf[256];
    va_list ap;

    va_start(ap, fmt);
    kvsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    __asm__ volatile("cli");
    results->state = GWOS_STATE_FAILED;
    kprintf("gwos: panic: %s\n", buf);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
