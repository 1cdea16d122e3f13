/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the UART's migration record (hw/serial.c): its receive
 * FIFO saved and loaded through the stream layer, read back through the
 * port handlers a guest would use. The machine around the device (port
 * registration, the chardev, the IRQ line) is stood in for here.
 */
#include "qemu/osdep.h"

#include "chardev/char.h"
#include "hw/ioport.h"
#include "hw/serial.h"
#include "migration/savevm.h"
#include "sysemu/kvm.h"

#define COM1 0x3f8
#define UART_LSR_DR 0x01

static IOPortReadFn port_read;
static IOPortWriteFn port_write;
static void *port_opaque;
static ChardevReadFn chr_read;
static void *chr_opaque;
static int irq_level;

void ioport_register(uint16_t base, uint16_t len, IOPortReadFn read, IOPortWriteFn write,
                     void *opaque)
{
    port_read = read;
    port_write = write;
    port_opaque = opaque;
}

void chardev_set_handlers(Chardev *chr, ChardevReadFn read, ChardevEventFn event,
                          void *opaque)
{
    chr_read = read;
    chr_opaque = opaque;
}

void chardev_write(Chardev *chr, const void *buf, size_t len)
{
}

void kvm_set_irq(Machine *ms, int irq, int level)
{
    irq_level = level;
}

/* One UART for the whole process: a second would register a second record. */
static void serial_once(void)
{
    static Machine m;

    if (!port_read) {
        serial_init(&m, COM1, 4, (Chardev *)&m);
    }
}

/* Drain the receive FIFO as a guest would: RBR while LSR says data ready. */
static GByteArray *drain(void)
{
    GByteArray *b = g_byte_array_new();

    while (port_read(port_opaque, COM1 + 5, 1) & UART_LSR_DR) {
        guint8 c = (guint8)port_read(port_opaque, COM1, 1);
        g_byte_array_append(b, &c, 1);
        g_assert_cmpuint(b->len, <=, 1024);
    }
    return b;
}

static GBytes *save_all(void)
{
    GError *err = NULL;
    MigStream *w = stream_new_mem_writer();
    size_t len;

    g_assert_true(savevm_save_devices(w, &err));
    g_assert_no_error(err);
    savevm_put_eof(w);
    const uint8_t *d = stream_mem_data(w, &len);
    GBytes *b = g_bytes_new(d, len);
    stream_free(w);
    return b;
}

static void load_all(GBytes *b)
{
    GError *err = NULL;
    gsize len;
    const uint8_t *d = g_bytes_get_data(b, &len);
    MigStream *s = stream_new_mem_reader(d, len, false);
    LoadVMState *st = loadvm_state_new(NULL, NULL, NULL);

    g_assert_cmpint(loadvm_main(st, s, &err), ==, LOADVM_EOF);
    g_assert_no_error(err);
    loadvm_post_load_all(st);
    loadvm_state_free(st);
    stream_free(s);
}

/*
 * Every FIFO fill level, the full one (256 bytes, input stopped there)
 * included, comes back byte for byte and in order after a save and a load,
 * and the level of the IRQ line is restored with it.
 */
static void test_fifo(void)
{
    static const size_t fills[] = { 0, 1, 100, 255, 256 };

    serial_once();
    g_assert_nonnull(chr_read);
    port_write(port_opaque, COM1 + 1, 0x01, 1);       /* IER: receive data interrupt */
    for (size_t i = 0; i < G_N_ELEMENTS(fills); i++) {
        g_autofree guint8 *in = g_malloc(fills[i] + 1);
        for (size_t k = 0; k < fills[i]; k++) {
            in[k] = (guint8)(k * 7 + i);
        }
        /* Offset the ring so the saved FIFO wraps around its end. */
        chr_read(chr_opaque, (const uint8_t *)"xyz", 3);
        g_byte_array_unref(drain());
        chr_read(chr_opaque, in, fills[i]);
        g_autoptr(GBytes) saved = save_all();
        g_autoptr(GByteArray) before = drain();
        g_assert_cmpmem(before->data, before->len, in, fills[i]);
        g_assert_cmpint(irq_level, ==, 0);
        load_all(saved);
        g_assert_cmpint(irq_level, ==, fills[i] ? 1 : 0);
        g_autoptr(GByteArray) after = drain();
        g_assert_cmpmem(after->data, after->len, in, fills[i]);
    }
}

static void hexdump(const char *what, const guint8 *p, size_t len)
{
    g_printerr("%s (%zu bytes):", what, len);
    for (size_t i = 0; i < len; i++) {
        g_printerr("%s%02x", i % 16 ? " " : "\n  ", p[i]);
    }
    g_printerr("\n");
}

/*
 * The record's bytes do not change across builds: a UART in a known state
 * saves to exactly these bytes (framing, CRC and footer included), taken
 * from the hand-written encoder the field table replaced, and they load
 * back into the same state. Registers first, in SerialRegs order (IER IIR
 * LCR MCR LSR MSR SCR FCR DLL DLM, THRE pending, IRQ level), then the
 * FIFO: be16 count and its bytes from the head.
 */
static void test_golden(void)
{
    static const guint8 golden[] = {
        0x04, 0x00, 0x00, 0x00, 0x01, 0x06, 's', 'e', 'r', 'i', 'a', 'l',
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x11,
        /* payload: registers */
        0x01, 0xc4, 0x03, 0x0b, 0x61, 0xb0, 0x5a, 0x01, 0x01, 0x00, 0x00, 0x01,
        /* payload: FIFO */
        0x00, 0x03, 'h', 'i', '!',
        /* CRC-32, footer, EOF */
        0x14, 0xe6, 0xba, 0x62, 0x7e, 0x00, 0x00, 0x00, 0x01, 0x00,
    };

    serial_once();
    g_byte_array_unref(drain());
    port_write(port_opaque, COM1 + 3, 0x80, 1);      /* LCR: DLAB */
    port_write(port_opaque, COM1 + 0, 0x01, 1);      /* DLL: 115200 baud */
    port_write(port_opaque, COM1 + 1, 0x00, 1);      /* DLM */
    port_write(port_opaque, COM1 + 3, 0x03, 1);      /* LCR: 8N1 */
    port_write(port_opaque, COM1 + 2, 0x01, 1);      /* FCR: FIFO enabled */
    port_write(port_opaque, COM1 + 4, 0x0b, 1);      /* MCR: DTR RTS OUT2 */
    port_write(port_opaque, COM1 + 7, 0x5a, 1);      /* SCR */
    port_write(port_opaque, COM1 + 1, 0x01, 1);      /* IER: receive data */
    chr_read(chr_opaque, (const uint8_t *)"hi!", 3);

    g_autoptr(GBytes) saved = save_all();
    gsize len;
    const guint8 *d = g_bytes_get_data(saved, &len);
    if (len != sizeof(golden) || memcmp(d, golden, len)) {
        hexdump("saved", d, len);
        hexdump("expected", golden, sizeof(golden));
        g_error("the serial record's bytes changed");
    }
    g_autoptr(GByteArray) before = drain();
    g_assert_cmpmem(before->data, before->len, "hi!", 3);
    g_assert_cmpint(irq_level, ==, 0);
    load_all(saved);
    g_assert_cmpint(irq_level, ==, 1);
    g_assert_cmphex(port_read(port_opaque, COM1 + 7, 1), ==, 0x5a);
    g_assert_cmphex(port_read(port_opaque, COM1 + 4, 1), ==, 0x0b);
    g_autoptr(GByteArray) after = drain();
    g_assert_cmpmem(after->data, after->len, "hi!", 3);
}

/* A stream holding one serial record of @version with @payload. */
static LoadVMResult load_record(uint32_t version, const guint8 *payload, size_t len,
                                GError **errp)
{
    MigStream *w = stream_new_mem_writer();
    size_t n;

    savevm_put_full(w, 1, "serial", 0, version, payload, len);
    savevm_put_eof(w);
    const uint8_t *d = stream_mem_data(w, &n);
    MigStream *s = stream_new_mem_reader(d, n, false);
    LoadVMState *st = loadvm_state_new(NULL, NULL, NULL);
    LoadVMResult r = loadvm_main(st, s, errp);
    loadvm_state_free(st);
    stream_free(s);
    stream_free(w);
    return r;
}

/*
 * Version 1 records (a u8 count) still load; hostile lengths and counts of
 * either version are refused with the device state untouched.
 */
static void test_records(void)
{
    static const guint8 regs[12] = { [4] = 0x61 };     /* LSR: THRE | TEMT | DR */
    g_autoptr(GByteArray) p = g_byte_array_new();
    GError *err = NULL;

    serial_once();
    g_byte_array_unref(drain());
    /* Version 1: "abc". */
    g_byte_array_append(p, regs, sizeof(regs));
    g_byte_array_append(p, (const guint8 *)"\x03" "abc", 4);
    g_assert_cmpint(load_record(1, p->data, p->len, &err), ==, LOADVM_EOF);
    g_assert_no_error(err);
    g_autoptr(GByteArray) got = drain();
    g_assert_cmpmem(got->data, got->len, "abc", 3);

    static const struct {
        uint32_t version;
        const char *count;          /* the count field, as on the wire */
        size_t count_len, data_len;
        const char *msg;
    } bad[] = {
        { 2, "\x01\x01", 2, 257, "has 257 bytes in its field 'rx' where at most 256 fit" },
        { 2, "\x00\x05", 2, 4, "(version 2, 18 bytes) ends inside its field 'rx'" },
        { 2, "\x00", 1, 0, "(version 2, 13 bytes) ends inside its field 'rx'" },
        { 1, "\x05", 1, 6, "serial state (version 1, 19 bytes) is 1 byte too long" },
        { 3, "\x00\x00", 2, 0, "Unsupported version 3 of migration record 'serial'" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_byte_array_set_size(p, 0);
        g_byte_array_append(p, regs, sizeof(regs));
        g_byte_array_append(p, (const guint8 *)bad[i].count, bad[i].count_len);
        for (size_t k = 0; k < bad[i].data_len; k++) {
            g_byte_array_append(p, (const guint8 *)"z", 1);
        }
        g_assert_cmpint(load_record(bad[i].version, p->data, p->len, &err), ==, LOADVM_ERROR);
        if (!strstr(err->message, bad[i].msg)) {
            g_error("case %zu: '%s' lacks '%s'", i, err->message, bad[i].msg);
        }
        g_clear_error(&err);
        g_autoptr(GByteArray) none = drain();
        g_assert_cmpuint(none->len, ==, 0);
    }
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    /* First: it expects the registers serial_init() sets. */
    g_test_add_func("/serial/migration/golden", test_golden);
    g_test_add_func("/serial/migration/fifo", test_fifo);
    g_test_add_func("/serial/migration/records", test_records);
    return g_test_run();
}
