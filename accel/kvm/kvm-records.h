/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The layouts of the VM-wide KVM migration records (irqchip, PIT, kvmclock)
 * as field tables (migration/record.h), apart from the ioctls that fill
 * them so that unit tests check their bytes without a KVM.
 */
#ifndef GODWIT_KVM_RECORDS_H
#define GODWIT_KVM_RECORDS_H

#include "qemu/osdep.h"

#include <linux/kvm.h>

#include "migration/record.h"

#define IRQCHIP_RECORD_VERSION 1
#define PIT_RECORD_VERSION 1
#define CLOCK_RECORD_VERSION 1

/* The two PICs and the IOAPIC, in chip_id order (0, 1, 2). */
typedef struct IrqchipRecord {
    struct kvm_irqchip chip[3];
} IrqchipRecord;

/* count_load_time of each channel is relative to the save (see pit_save). */
typedef struct PitRecord {
    struct kvm_pit_state2 pit;
} PitRecord;

typedef struct ClockRecord {
    uint64_t clock_ns;            /* kvmclock when the VM stopped */
} ClockRecord;

extern const RecordDesc irqchip_record_desc;
extern const RecordDesc pit_record_desc;
extern const RecordDesc clock_record_desc;

#endif
