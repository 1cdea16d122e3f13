/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos console: COM1 16550 output through a ring buffer drained by the THRE
 * interrupt (16 bytes per "rep outsb", one VM exit per burst), receive by
 * interrupt, a small printf, and the freestanding string helpers. Writers
 * never wait for the UART: a full ring drops bytes and counts them.
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
#define TX_STALL_NS 20000000ull     /* restart the transmitter after 20 ms */

static char ring[RING_SIZE];
static uint32_t ring_head, ring_tail;   /* free-running; head = next to send */
static Spinlock console_lock;
static bool irq_mode;
static bool tx_busy;                    /* a THRE interrupt is expected */
static uint64_t tx_stamp_ns;

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

static uint32_t ring_used(void)
{
    return ring_head - ring_tail;
}

/* Send up to one FIFO's worth; caller holds the lock. */
static void tx_push(void)
{
    uint32_t n = ring_used();
    uint32_t off = ring_tail & (RING_SIZE - 1);

    if (n > TX_BURST) {
        n = TX_BURST;
    }
    if (n > RING_SIZE - off) {
        n = RING_SIZE - off;            /* contiguous part; the rest next time */
    }
    if (!n) {
        tx_busy = false;
        return;
    }
    const char *p = &ring[off];
    uint64_t cnt = n;
    __asm__ volatile("rep outsb" : "+S"(p), "+c"(cnt) : "d"((uint16_t)COM1) : "memory");
    ring_tail += n;
    results->serial_tx += n;
    tx_busy = true;
    tx_stamp_ns = clock_ns(this_cpu());
}

static void flush_polled_locked(void)
{
    while (ring_used()) {
        int spin = 0;
        while (!(inb(COM1 + UART_LSR) & LSR_THRE) && ++spin < 100000) {
            cpu_relax();
        }
        outb(COM1 + UART_THR, (uint8_t)ring[ring_tail & (RING_SIZE - 1)]);
        ring_tail++;
        results->serial_tx++;
    }
}

void console_flush_polled(void)
{
    uint64_t f = irq_save();
    spin_lock(&console_lock);
    flush_polled_locked();
    spin_unlock(&console_lock);
    irq_restore(f);
}

void console_irq_mode(void)
{
    uint64_t f = irq_save();
    spin_lock(&console_lock);
    flush_polled_locked();
    irq_mode = true;
    tx_busy = false;
    outb(COM1 + UART_IER, 0x03);        /* RX data and THR empty */
    spin_unlock(&console_lock);
    irq_restore(f);
}

void console_write(const char *s, size_t n)
{
    uint64_t f = irq_save();
    spin_lock(&console_lock);
    for (size_t i = 0; i < n; i++) {
        if (ring_used() >= RING_SIZE) {
            results->serial_dropped += n - i;
            break;
        }
        ring[ring_head & (RING_SIZE - 1)] = s[i];
        ring_head++;
    }
    if (!irq_mode) {
        flush_polled_locked();
    } else if (!tx_busy) {
        tx_push();
    }
    spin_unlock(&console_lock);
    irq_restore(f);
}

void console_irq(void)
{
    spin_lock(&console_lock);
    results->serial_irqs++;
    for (int i = 0; i < 16; i++) {
        uint8_t iir = inb(COM1 + UART_IIR);
        if (iir & 1) {
            break;
        }
        switch (iir & 0x0e) {
        case 0x02:                      /* THR empty */
            tx_push();
            break;
        case 0x04:                      /* RX data */
        case 0x0c:                      /* RX timeout */
            while (inb(COM1 + UART_LSR) & LSR_DR) {
                (void)inb(COM1 + UART_RBR);
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
    spin_unlock(&console_lock);
}

/*
 * A lost THRE interrupt would stop output for good; the BSP's timer calls
 * this to look at the line status when nothing happened for a while.
 */
void console_poll_kick(void)
{
    if (!irq_mode || !READ_ONCE(tx_busy)) {
        return;
    }
    if (clock_ns(this_cpu()) - READ_ONCE(tx_stamp_ns) < TX_STALL_NS) {
        return;
    }
    spin_lock(&console_lock);
    if (tx_busy && (inb(COM1 + UART_LSR) & LSR_THRE)) {
        tx_push();
    }
    spin_unlock(&console_lock);
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

/* "@" + 8 hex digits of the sequence number + "\n": 10 bytes. */
void marker_emit(uint64_t seq)
{
    char m[10];

    m[0] = '@';
    for (int i = 0; i < 8; i++) {
        m[8 - i] = "0123456789abcdef"[(seq >> (4 * i)) & 0xf];
    }
    m[9] = '\n';
    console_write(m, sizeof(m));
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
    console_flush_polled();
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
