/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * 16550A UART. Transmission is instantaneous (bytes go straight to the
 * chardev), so the transmitter always reads as empty; receive has a FIFO fed
 * by chardev input. The IRQ is a level on an in-kernel irqchip pin.
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/ioport.h"
#include "hw/serial.h"
#include "migration/record.h"
#include "migration/register.h"
#include "sysemu/kvm.h"

#define UART_RX_FIFO   256

#define UART_IER_RDI   0x01   /* receive data interrupt */
#define UART_IER_THRI  0x02   /* transmitter holding register empty */
#define UART_IER_RLSI  0x04   /* receiver line status */
#define UART_IER_MSI   0x08   /* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI   0x00
#define UART_IIR_THRI  0x02
#define UART_IIR_RDI   0x04
#define UART_IIR_RLSI  0x06
#define UART_IIR_FIFO  0xC0

#define UART_LCR_DLAB  0x80
#define UART_LSR_DR    0x01
#define UART_LSR_OE    0x02
#define UART_LSR_THRE  0x20
#define UART_LSR_TEMT  0x40
#define UART_FCR_FE    0x01
#define UART_FCR_RFR   0x02
#define UART_MCR_LOOP  0x10
#define UART_MSR_DCD   0x80
#define UART_MSR_DSR   0x20
#define UART_MSR_CTS   0x10

/*
 * Version 2: the FIFO's byte count is a be16 (version 1 had a u8 and so
 * held at most 255 of the 256 bytes). Version 1 records still load.
 */
#define SERIAL_RECORD_VERSION 2

/* Migrated field by field, in this order (serial_record_fields). */
typedef struct SerialRegs {
    uint8_t ier, iir, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t dll, dlm;
    uint8_t thr_ipending;     /* THRE interrupt armed until IIR is read */
    uint8_t irq_level;
} SerialRegs;

struct SerialState {
    Machine *ms;
    Chardev *chr;
    uint16_t base;
    int irq;
    SerialRegs r;
    uint8_t rx[UART_RX_FIFO];
    uint32_t rx_head, rx_count;
};

static void serial_update_irq(SerialState *s)
{
    uint8_t iir = UART_IIR_NO_INT;

    if ((s->r.ier & UART_IER_RLSI) && (s->r.lsr & UART_LSR_OE)) {
        iir = UART_IIR_RLSI;
    } else if ((s->r.ier & UART_IER_RDI) && s->rx_count) {
        iir = UART_IIR_RDI;
    } else if ((s->r.ier & UART_IER_THRI) && s->r.thr_ipending) {
        iir = UART_IIR_THRI;
    }
    s->r.iir = iir | ((s->r.fcr & UART_FCR_FE) ? UART_IIR_FIFO : 0);
    uint8_t level = iir != UART_IIR_NO_INT;
    if (level != s->r.irq_level) {
        s->r.irq_level = level;
        kvm_set_irq(s->ms, s->irq, level);
    }
}

static void serial_rx_push(SerialState *s, uint8_t c)
{
    if (s->rx_count == UART_RX_FIFO) {
        s->r.lsr |= UART_LSR_OE;
        return;
    }
    s->rx[(s->rx_head + s->rx_count) % UART_RX_FIFO] = c;
    s->rx_count++;
    s->r.lsr |= UART_LSR_DR;
}

static uint32_t serial_read(void *opaque, uint16_t port, int size)
{
    SerialState *s = opaque;
    uint32_t v = 0;

    switch (port - s->base) {
    case 0:
        if (s->r.lcr & UART_LCR_DLAB) {
            return s->r.dll;
        }
        if (s->rx_count) {
            v = s->rx[s->rx_head];
            s->rx_head = (s->rx_head + 1) % UART_RX_FIFO;
            s->rx_count--;
        }
        if (!s->rx_count) {
            s->r.lsr &= ~UART_LSR_DR;
        }
        serial_update_irq(s);
        return v;
    case 1:
        return (s->r.lcr & UART_LCR_DLAB) ? s->r.dlm : s->r.ier;
    case 2:
        v = s->r.iir;
        /* Reading IIR acknowledges a THRE interrupt. */
        if ((v & 0x0F) == UART_IIR_THRI) {
            s->r.thr_ipending = 0;
            serial_update_irq(s);
        }
        return v;
    case 3:
        return s->r.lcr;
    case 4:
        return s->r.mcr;
    case 5:
        v = s->r.lsr;
        s->r.lsr &= ~UART_LSR_OE;
        serial_update_irq(s);
        return v;
    case 6:
        return s->r.msr;
    case 7:
        return s->r.scr;
    }
    return 0xff;
}

static void serial_write(void *opaque, uint16_t port, uint32_t val, int size)
{
    SerialState *s = opaque;
    uint8_t b = (uint8_t)val;

    switch (port - s->base) {
    case 0:
        if (s->r.lcr & UART_LCR_DLAB) {
            s->r.dll = b;
            return;
        }
        if (s->r.mcr & UART_MCR_LOOP) {
            serial_rx_push(s, b);
        } else if (s->chr) {
            chardev_write(s->chr, &b, 1);
        }
        /* Sent at once: the holding register is empty again. */
        s->r.thr_ipending = 1;
        serial_update_irq(s);
        return;
    case 1:
        if (s->r.lcr & UART_LCR_DLAB) {
            s->r.dlm = b;
            return;
        }
        /* Enabling THRE while the transmitter is empty raises it at once. */
        if (!(s->r.ier & UART_IER_THRI) && (b & UART_IER_THRI)) {
            s->r.thr_ipending = 1;
        }
        s->r.ier = b & 0x0F;
        serial_update_irq(s);
        return;
    case 2:
        s->r.fcr = b & 0xC9;
        if (b & UART_FCR_RFR) {
            s->rx_head = s->rx_count = 0;
            s->r.lsr &= ~UART_LSR_DR;
        }
        serial_update_irq(s);
        return;
    case 3:
        s->r.lcr = b;
        return;
    case 4:
        s->r.mcr = b & 0x1F;
        return;
    case 7:
        s->r.scr = b;
        return;
    }
}

static void serial_chr_read(void *opaque, const uint8_t *buf, size_t len)
{
    SerialState *s = opaque;

    for (size_t i = 0; i < len; i++) {
        serial_rx_push(s, buf[i]);
    }
    serial_update_irq(s);
}

/* The record: the registers, then the receive FIFO from its head. */
typedef struct SerialRecord {
    SerialRegs r;
    uint8_t rx[UART_RX_FIFO];
    uint32_t rx_count;
} SerialRecord;

static const RecordField serial_record_fields[] = {
    RECORD_FIELD(SerialRecord, r.ier, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.iir, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.lcr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.mcr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.lsr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.msr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.scr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.fcr, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.dll, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.dlm, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.thr_ipending, RECORD_U8),
    RECORD_FIELD(SerialRecord, r.irq_level, RECORD_U8),
    RECORD_BUF_FIELD(SerialRecord, rx, rx_count, RECORD_BUF8, 1, 1),
    RECORD_BUF_FIELD(SerialRecord, rx, rx_count, RECORD_BUF16, 2, 0),
};

static const RecordDesc serial_record_desc = {
    .name = "serial", .size = sizeof(SerialRecord),
    .fields = serial_record_fields, .n_fields = G_N_ELEMENTS(serial_record_fields),
    .version_min = 1, .version_max = SERIAL_RECORD_VERSION,
};

static bool serial_save(void *opaque, GByteArray *out, GError **errp)
{
    SerialState *s = opaque;
    SerialRecord rec = { .r = s->r, .rx_count = s->rx_count };

    for (uint32_t i = 0; i < s->rx_count; i++) {
        rec.rx[i] = s->rx[(s->rx_head + i) % UART_RX_FIFO];
    }
    record_save(&serial_record_desc, SERIAL_RECORD_VERSION, &rec, out);
    return true;
}

static bool serial_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                        GError **errp)
{
    SerialState *s = opaque;
    SerialRecord rec = { 0 };

    if (!record_load(&serial_record_desc, version, &rec, buf, len, errp)) {
        return false;
    }
    s->r = rec.r;
    s->rx_head = 0;
    s->rx_count = rec.rx_count;
    memcpy(s->rx, rec.rx, rec.rx_count);
    return true;
}

static void serial_post_load(void *opaque)
{
    SerialState *s = opaque;

    /* The irqchip snapshot does not hold our line's level: drive it again. */
    kvm_set_irq(s->ms, s->irq, s->r.irq_level);
}

SerialState *serial_init(Machine *ms, uint16_t base, int irq, Chardev *chr)
{
    SerialState *s = g_new0(SerialState, 1);

    s->ms = ms;
    s->chr = chr;
    s->base = base;
    s->irq = irq;
    s->r.iir = UART_IIR_NO_INT;
    s->r.lsr = UART_LSR_THRE | UART_LSR_TEMT;
    s->r.msr = UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
    s->r.dll = 0x0C;      /* 9600 baud */
    ioport_register(base, 8, serial_read, serial_write, s);
    if (chr) {
        chardev_set_handlers(chr, serial_chr_read, NULL, s);
    }
    SaveStateHandler h = {
        .idstr = "serial", .instance_id = 0, .version = SERIAL_RECORD_VERSION,
        .priority = SAVESTATE_PRIO_DEVICE, .save = serial_save, .load = serial_load,
        .post_load_all = serial_post_load, .opaque = s,
    };
    register_savestate(&h);
    return s;
}
