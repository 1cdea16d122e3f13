/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Field tables of the irqchip, PIT and kvmclock records. The kernel's
 * structures travel in their x86-64 (little-endian) layout, field by field,
 * so the bytes are those of the structure and a big-endian host would still
 * write them the same way; our own values are big-endian like the stream.
 */
#include "qemu/osdep.h"

#include "accel/kvm/kvm-records.h"

static const RecordField kvm_irqchip_fields[] = {
    RECORD_FIELD(struct kvm_irqchip, chip_id, RECORD_LE32),
    RECORD_FIELD(struct kvm_irqchip, pad, RECORD_LE32),
    /* PIC or IOAPIC state by chip_id, in the union's 512 bytes. */
    RECORD_FIELD(struct kvm_irqchip, chip, RECORD_U8),
};

static const RecordDesc kvm_irqchip_desc = {
    .name = "irqchip", .size = sizeof(struct kvm_irqchip),
    .fields = kvm_irqchip_fields, .n_fields = G_N_ELEMENTS(kvm_irqchip_fields),
};

static const RecordField irqchip_record_fields[] = {
    RECORD_STRUCT_FIELD(IrqchipRecord, chip, &kvm_irqchip_desc),
};

const RecordDesc irqchip_record_desc = {
    .name = "irqchip", .size = sizeof(IrqchipRecord),
    .fields = irqchip_record_fields, .n_fields = G_N_ELEMENTS(irqchip_record_fields),
    .version_min = IRQCHIP_RECORD_VERSION, .version_max = IRQCHIP_RECORD_VERSION,
};

static const RecordField pit_channel_fields[] = {
    RECORD_FIELD(struct kvm_pit_channel_state, count, RECORD_LE32),
    RECORD_FIELD(struct kvm_pit_channel_state, latched_count, RECORD_LE16),
    RECORD_FIELD(struct kvm_pit_channel_state, count_latched, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, status_latched, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, status, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, read_state, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, write_state, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, write_latch, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, rw_mode, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, mode, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, bcd, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, gate, RECORD_U8),
    RECORD_FIELD(struct kvm_pit_channel_state, count_load_time, RECORD_LE64),
};

static const RecordDesc pit_channel_desc = {
    .name = "PIT", .size = sizeof(struct kvm_pit_channel_state),
    .fields = pit_channel_fields, .n_fields = G_N_ELEMENTS(pit_channel_fields),
};

static const RecordField pit_record_fields[] = {
    RECORD_STRUCT_FIELD(PitRecord, pit.channels, &pit_channel_desc),
    RECORD_FIELD(PitRecord, pit.flags, RECORD_LE32),
    RECORD_FIELD(PitRecord, pit.reserved, RECORD_LE32),
};

const RecordDesc pit_record_desc = {
    .name = "PIT", .size = sizeof(PitRecord),
    .fields = pit_record_fields, .n_fields = G_N_ELEMENTS(pit_record_fields),
    .version_min = PIT_RECORD_VERSION, .version_max = PIT_RECORD_VERSION,
};

static const RecordField clock_record_fields[] = {
    RECORD_FIELD(ClockRecord, clock_ns, RECORD_BE64),
};

const RecordDesc clock_record_desc = {
    .name = "clock", .size = sizeof(ClockRecord),
    .fields = clock_record_fields, .n_fields = G_N_ELEMENTS(clock_record_fields),
    .version_min = CLOCK_RECORD_VERSION, .version_max = CLOCK_RECORD_VERSION,
};
