/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests of the field-table record saver and loader (migration/record.c)
 * and golden bytes of the irqchip, PIT and clock records
 * (accel/kvm/kvm-records.c): exact bytes out, the same values back, and
 * every truncated, oversized, malformed or wrong-version payload refused.
 */
#include "qemu/osdep.h"

#include "accel/kvm/kvm-records.h"
#include "migration/record.h"

/* ---- the engine, on a struct using every field type ---- */

typedef struct Pair {
    uint16_t a;
    uint8_t b;
} Pair;

typedef struct Sample {
    uint8_t u8[2];
    uint16_t be16;
    uint32_t be32;
    uint64_t be64;
    uint16_t le16;
    uint32_t le32[2];
    uint64_t le64;
    Pair pairs[2];
    char name[8];
    uint8_t small[4];
    uint32_t small_len;
    uint8_t big[300];
    uint32_t big_len;
    uint32_t added;             /* version 2 on */
} Sample;

static const RecordField pair_fields[] = {
    RECORD_FIELD(Pair, a, RECORD_BE16),
    RECORD_FIELD(Pair, b, RECORD_U8),
};

static const RecordDesc pair_desc = {
    .name = "pair", .size = sizeof(Pair),
    .fields = pair_fields, .n_fields = G_N_ELEMENTS(pair_fields),
};

static const RecordField sample_fields[] = {
    RECORD_FIELD(Sample, u8, RECORD_U8),
    RECORD_FIELD(Sample, be16, RECORD_BE16),
    RECORD_FIELD(Sample, be32, RECORD_BE32),
    RECORD_FIELD(Sample, be64, RECORD_BE64),
    RECORD_FIELD(Sample, le16, RECORD_LE16),
    RECORD_FIELD(Sample, le32, RECORD_LE32),
    RECORD_FIELD(Sample, le64, RECORD_LE64),
    RECORD_STRUCT_FIELD(Sample, pairs, &pair_desc),
    RECORD_FIELD(Sample, name, RECORD_STR8),
    RECORD_BUF_FIELD(Sample, small, small_len, RECORD_BUF8, 0, 0),
    RECORD_BUF_FIELD(Sample, big, big_len, RECORD_BUF16, 0, 0),
    RECORD_FIELD_SINCE(Sample, added, RECORD_BE32, 2),
};

static const RecordDesc sample_desc = {
    .name = "sample", .size = sizeof(Sample),
    .fields = sample_fields, .n_fields = G_N_ELEMENTS(sample_fields),
    .version_min = 1, .version_max = 2,
};

static const guint8 sample_v2[] = {
    0xa1, 0xa2,                                     /* u8[2] */
    0xb1, 0xb2,                                     /* be16 */
    0xc1, 0xc2, 0xc3, 0xc4,                         /* be32 */
    0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, /* be64 */
    0xe2, 0xe1,                                     /* le16 */
    0xf4, 0xf3, 0xf2, 0xf1, 0x04, 0x03, 0x02, 0x01, /* le32[2] */
    0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* le64 */
    0x21, 0x22, 0x23, 0x31, 0x32, 0x33,             /* pairs[2]: be16 a, u8 b */
    0x03, 'a', 'b', 'c',                            /* name */
    0x02, 0x41, 0x42,                               /* small: u8 length */
    0x00, 0x01, 0x51,                               /* big: be16 length */
    0x61, 0x62, 0x63, 0x64,                         /* added (version 2) */
};

static void sample_fill(Sample *s)
{
    memset(s, 0, sizeof(*s));
    s->u8[0] = 0xa1;
    s->u8[1] = 0xa2;
    s->be16 = 0xb1b2;
    s->be32 = 0xc1c2c3c4;
    s->be64 = 0xd1d2d3d4d5d6d7d8ULL;
    s->le16 = 0xe1e2;
    s->le32[0] = 0xf1f2f3f4;
    s->le32[1] = 0x01020304;
    s->le64 = 0x1112131415161718ULL;
    s->pairs[0] = (Pair) { 0x2122, 0x23 };
    s->pairs[1] = (Pair) { 0x3132, 0x33 };
    strcpy(s->name, "abc");
    s->small[0] = 0x41;
    s->small[1] = 0x42;
    s->small_len = 2;
    s->big[0] = 0x51;
    s->big_len = 1;
    s->added = 0x61626364;
}

static void assert_sample_equal(const Sample *a, const Sample *b, uint32_t version)
{
    g_assert_cmpmem(a->u8, 2, b->u8, 2);
    g_assert_cmphex(a->be16, ==, b->be16);
    g_assert_cmphex(a->be32, ==, b->be32);
    g_assert_cmphex(a->be64, ==, b->be64);
    g_assert_cmphex(a->le16, ==, b->le16);
    g_assert_cmphex(a->le32[0], ==, b->le32[0]);
    g_assert_cmphex(a->le32[1], ==, b->le32[1]);
    g_assert_cmphex(a->le64, ==, b->le64);
    for (int i = 0; i < 2; i++) {
        g_assert_cmphex(a->pairs[i].a, ==, b->pairs[i].a);
        g_assert_cmphex(a->pairs[i].b, ==, b->pairs[i].b);
    }
    g_assert_cmpstr(a->name, ==, b->name);
    g_assert_cmpmem(a->small, a->small_len, b->small, b->small_len);
    g_assert_cmpmem(a->big, a->big_len, b->big, b->big_len);
    if (version >= 2) {
        g_assert_cmphex(a->added, ==, b->added);
    }
}

static void test_engine_golden(void)
{
    Sample s, back;
    g_autoptr(GByteArray) out = g_byte_array_new();
    GError *err = NULL;

    sample_fill(&s);
    record_save(&sample_desc, 2, &s, out);
    g_assert_cmpmem(out->data, out->len, sample_v2, sizeof(sample_v2));

    memset(&back, 0x5a, sizeof(back));
    g_assert_true(record_load(&sample_desc, 2, &back, out->data, out->len, &err));
    g_assert_no_error(err);
    assert_sample_equal(&s, &back, 2);

    /* Version 1 has no "added": four bytes shorter, and it loads. */
    g_byte_array_set_size(out, 0);
    record_save(&sample_desc, 1, &s, out);
    g_assert_cmpmem(out->data, out->len, sample_v2, sizeof(sample_v2) - 4);
    memset(&back, 0x5a, sizeof(back));
    back.added = 7;
    g_assert_true(record_load(&sample_desc, 1, &back, out->data, out->len, &err));
    g_assert_no_error(err);
    assert_sample_equal(&s, &back, 1);
    g_assert_cmpuint(back.added, ==, 7);    /* a field the version lacks is left alone */
}

static void expect_refused(const RecordDesc *desc, uint32_t version, void *obj,
                           const guint8 *buf, size_t len, const char *msg)
{
    GError *err = NULL;

    g_assert_false(record_load(desc, version, obj, buf, len, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, msg)) {
        g_error("'%s' lacks '%s'", err->message, msg);
    }
    g_error_free(err);
}

static void test_engine_truncated(void)
{
    Sample s;

    for (size_t len = 0; len < sizeof(sample_v2); len++) {
        g_autofree guint8 *copy = g_memdup2(sample_v2, len);
        expect_refused(&sample_desc, 2, &s, copy, len, "ends inside its field");
    }
    expect_refused(&sample_desc, 2, &s, sample_v2, 0,
                   "sample state (version 2, 0 bytes) ends inside its field 'u8'");
    expect_refused(&sample_desc, 2, &s, sample_v2, sizeof(sample_v2) - 1,
                   "ends inside its field 'added'");
}

static void test_engine_oversized(void)
{
    Sample s;
    guint8 longer[sizeof(sample_v2) + 3];

    memcpy(longer, sample_v2, sizeof(sample_v2));
    memset(longer + sizeof(sample_v2), 0, 3);
    expect_refused(&sample_desc, 2, &s, longer, sizeof(longer),
                   "sample state (version 2, 57 bytes) is 3 bytes too long");
    /* A version 2 payload read as version 1 has "added" left over. */
    expect_refused(&sample_desc, 1, &s, sample_v2, sizeof(sample_v2),
                   "(version 1, 54 bytes) is 4 bytes too long");
}

static void test_engine_bad_version(void)
{
    Sample s;

    expect_refused(&sample_desc, 0, &s, sample_v2, sizeof(sample_v2),
                   "sample state version 0 is not supported (this build loads 1 to 2)");
    expect_refused(&sample_desc, 3, &s, sample_v2, sizeof(sample_v2),
                   "sample state version 3 is not supported (this build loads 1 to 2)");
}

static void test_engine_bad_lengths(void)
{
    Sample s;
    guint8 bad[sizeof(sample_v2)];
    const size_t name_at = 40, small_at = 44, big_at = 47;

    g_assert_cmphex(sample_v2[name_at], ==, 3);
    g_assert_cmphex(sample_v2[small_at], ==, 2);
    g_assert_cmphex(sample_v2[big_at + 1], ==, 1);

    /* A string that leaves no room for its NUL. */
    memcpy(bad, sample_v2, sizeof(bad));
    bad[name_at] = 8;
    expect_refused(&sample_desc, 2, &s, bad, sizeof(bad),
                   "sample state has a 8-byte field 'name' where at most 7 fit");
    /* Counted buffers longer than their arrays. */
    memcpy(bad, sample_v2, sizeof(bad));
    bad[small_at] = 5;
    expect_refused(&sample_desc, 2, &s, bad, sizeof(bad),
                   "sample state has 5 bytes in its field 'small' where at most 4 fit");
    memcpy(bad, sample_v2, sizeof(bad));
    bad[big_at] = 0xff;
    bad[big_at + 1] = 0xff;
    expect_refused(&sample_desc, 2, &s, bad, sizeof(bad),
                   "sample state has 65535 bytes in its field 'big' where at most 300 fit");
    /* A count that fits the array but not the payload. */
    memcpy(bad, sample_v2, sizeof(bad));
    bad[big_at + 1] = 200;
    expect_refused(&sample_desc, 2, &s, bad, sizeof(bad), "ends inside its field 'big'");
}

/* ---- golden bytes of the KVM VM-wide records ---- */

/* What the hand-written encoders did: append the kernel structure as it is. */
static void struct_image(GByteArray *out, const void *obj, size_t size)
{
    g_byte_array_append(out, obj, (guint)size);
}

static void fill_pattern(void *obj, size_t size, uint8_t seed)
{
    uint8_t *p = obj;

    for (size_t i = 0; i < size; i++) {
        p[i] = (uint8_t)(i * 7 + seed);
    }
}

static void test_clock(void)
{
    static const guint8 golden[] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef };
    ClockRecord c = { .clock_ns = 0x0123456789abcdefULL }, back = { 0 };
    g_autoptr(GByteArray) out = g_byte_array_new();
    GError *err = NULL;

    record_save(&clock_record_desc, CLOCK_RECORD_VERSION, &c, out);
    g_assert_cmpmem(out->data, out->len, golden, sizeof(golden));
    g_assert_true(record_load(&clock_record_desc, CLOCK_RECORD_VERSION, &back,
                              golden, sizeof(golden), &err));
    g_assert_no_error(err);
    g_assert_cmphex(back.clock_ns, ==, c.clock_ns);

    expect_refused(&clock_record_desc, 1, &back, golden, 7,
                   "clock state (version 1, 7 bytes) ends inside its field 'clock_ns'");
    guint8 nine[9] = { 0 };
    expect_refused(&clock_record_desc, 1, &back, nine, 9,
                   "clock state (version 1, 9 bytes) is 1 byte too long");
    expect_refused(&clock_record_desc, 2, &back, golden, 8,
                   "clock state version 2 is not supported (this build loads 1 to 1)");
}

static void test_pit(void)
{
    /* Channel 0 as the kernel lays it out (little-endian), then the pattern. */
    static const guint8 channel0[24] = {
        0x00, 0x00, 0x01, 0x00,                         /* count 65536 */
        0x34, 0x12,                                     /* latched_count */
        0x01, 0x00, 0x36, 0x00, 0x01, 0x00, 0x03, 0x02, 0x00, 0x01,
        0xf0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* count_load_time -16 */
    };
    PitRecord p, back;
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GByteArray) old = g_byte_array_new();
    GError *err = NULL;

    g_assert_cmpuint(sizeof(p.pit), ==, 112);
    fill_pattern(&p, sizeof(p), 3);
    p.pit.channels[0] = (struct kvm_pit_channel_state) {
        .count = 65536, .latched_count = 0x1234, .count_latched = 1, .status_latched = 0,
        .status = 0x36, .read_state = 0, .write_state = 1, .write_latch = 0,
        .rw_mode = 3, .mode = 2, .bcd = 0, .gate = 1, .count_load_time = -16,
    };
    record_save(&pit_record_desc, PIT_RECORD_VERSION, &p, out);
    struct_image(old, &p.pit, sizeof(p.pit));
    g_assert_cmpmem(out->data, out->len, old->data, old->len);
    g_assert_cmpmem(out->data, sizeof(channel0), channel0, sizeof(channel0));

    memset(&back, 0, sizeof(back));
    g_assert_true(record_load(&pit_record_desc, PIT_RECORD_VERSION, &back,
                              out->data, out->len, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(&back.pit, sizeof(back.pit), &p.pit, sizeof(p.pit));

    expect_refused(&pit_record_desc, 1, &back, out->data, 111,
                   "PIT state (version 1, 111 bytes) ends inside its field 'pit.reserved'");
    g_byte_array_append(out, (const guint8 *)"x", 1);
    expect_refused(&pit_record_desc, 1, &back, out->data, out->len,
                   "PIT state (version 1, 113 bytes) is 1 byte too long");
    expect_refused(&pit_record_desc, 2, &back, old->data, old->len, "version 2 is not supported");
}

static void test_irqchip(void)
{
    g_autofree IrqchipRecord *r = g_new(IrqchipRecord, 1);
    g_autofree IrqchipRecord *back = g_new0(IrqchipRecord, 1);
    g_autoptr(GByteArray) out = g_byte_array_new();
    g_autoptr(GByteArray) old = g_byte_array_new();
    GError *err = NULL;

    g_assert_cmpuint(sizeof(r->chip[0]), ==, 520);
    fill_pattern(r, sizeof(*r), 11);
    for (uint32_t id = 0; id < 3; id++) {
        r->chip[id].chip_id = id;
        struct_image(old, &r->chip[id], sizeof(r->chip[id]));
    }
    record_save(&irqchip_record_desc, IRQCHIP_RECORD_VERSION, r, out);
    g_assert_cmpuint(out->len, ==, 3 * 520);
    g_assert_cmpmem(out->data, out->len, old->data, old->len);
    /* chip_id 1 of the second chip, little-endian, at 520. */
    g_assert_cmpmem(out->data + 520, 4, "\x01\x00\x00\x00", 4);

    g_assert_true(record_load(&irqchip_record_desc, IRQCHIP_RECORD_VERSION, back,
                              out->data, out->len, &err));
    g_assert_no_error(err);
    g_assert_cmpmem(back, sizeof(*back), r, sizeof(*r));

    expect_refused(&irqchip_record_desc, 1, back, out->data, 3 * 520 - 1,
                   "irqchip state (version 1, 1559 bytes) ends inside its field 'chip'");
    expect_refused(&irqchip_record_desc, 1, back, out->data, 520 + 2,
                   "ends inside its field 'chip_id'");
    expect_refused(&irqchip_record_desc, 0, back, out->data, out->len,
                   "version 0 is not supported");
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/record/engine/golden", test_engine_golden);
    g_test_add_func("/record/engine/truncated", test_engine_truncated);
    g_test_add_func("/record/engine/oversized", test_engine_oversized);
    g_test_add_func("/record/engine/bad-version", test_engine_bad_version);
    g_test_add_func("/record/engine/bad-lengths", test_engine_bad_lengths);
    g_test_add_func("/record/kvm/clock", test_clock);
    g_test_add_func("/record/kvm/pit", test_pit);
    g_test_add_func("/record/kvm/irqchip", test_irqchip);
    return g_test_run();
}
