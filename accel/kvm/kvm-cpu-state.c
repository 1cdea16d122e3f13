/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU and VM-wide KVM state: creation, power-on reset, the Multiboot entry
 * state, migration records and the register dump.
 *
 * A "cpu" record (one per vCPU) is a list of tagged blocks (u32 tag, u32
 * length, the raw KVM structure): the loader bounds-checks each block and
 * requires the exact size of the structure it knows. Both ends are x86-64
 * Linux, so the structures are taken in host byte order (little-endian).
 */
#include "qemu/osdep.h"
#include "qemu/bql.h"
#include "hw/machine.h"
#include "migration/register.h"
#include "accel/kvm/kvm-records.h"
#include "sysemu/kvm.h"
#include "sysemu/kvm-cpu.h"
#include "sysemu/runstate.h"
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>

#define CPU_RECORD_VERSION 1

enum {
    CPU_TAG_EVENTS = 1,
    CPU_TAG_MP_STATE,
    CPU_TAG_REGS,
    CPU_TAG_FPU,
    CPU_TAG_XSAVE,
    CPU_TAG_XCRS,
    CPU_TAG_SREGS,
    CPU_TAG_MSRS,
    CPU_TAG_LAPIC,
    CPU_TAG_DEBUGREGS,
};

/* MSRs that carry guest state; filtered by what KVM reports it can save. */
#define MSR_IA32_TSC            0x10
#define MSR_IA32_TSC_ADJUST     0x3b
#define MSR_IA32_SPEC_CTRL      0x48
#define MSR_IA32_SYSENTER_CS    0x174
#define MSR_IA32_SYSENTER_ESP   0x175
#define MSR_IA32_SYSENTER_EIP   0x176
#define MSR_IA32_MISC_ENABLE    0x1a0
#define MSR_IA32_CR_PAT         0x277
#define MSR_IA32_TSC_DEADLINE   0x6e0
#define MSR_STAR                0xc0000081
#define MSR_LSTAR               0xc0000082
#define MSR_CSTAR               0xc0000083
#define MSR_SYSCALL_MASK        0xc0000084
#define MSR_KERNEL_GS_BASE      0xc0000102
#define MSR_TSC_AUX             0xc0000103
#define MSR_KVM_WALL_CLOCK      0x11
#define MSR_KVM_SYSTEM_TIME     0x12
#define MSR_KVM_WALL_CLOCK_NEW  0x4b564d00
#define MSR_KVM_SYSTEM_TIME_NEW 0x4b564d01
#define MSR_KVM_ASYNC_PF_EN     0x4b564d02
#define MSR_KVM_STEAL_TIME      0x4b564d03
#define MSR_KVM_PV_EOI_EN       0x4b564d04
#define MSR_KVM_POLL_CONTROL    0x4b564d05
#define MSR_KVM_ASYNC_PF_INT    0x4b564d06

static const uint32_t wanted_msrs[] = {
    MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
    MSR_IA32_CR_PAT, MSR_STAR, MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK,
    MSR_KERNEL_GS_BASE, MSR_TSC_AUX, MSR_IA32_TSC_ADJUST, MSR_IA32_MISC_ENABLE,
    MSR_IA32_SPEC_CTRL, MSR_IA32_TSC,
    MSR_KVM_WALL_CLOCK, MSR_KVM_SYSTEM_TIME, MSR_KVM_WALL_CLOCK_NEW,
    MSR_KVM_SYSTEM_TIME_NEW, MSR_KVM_ASYNC_PF_EN, MSR_KVM_ASYNC_PF_INT,
    MSR_KVM_STEAL_TIME, MSR_KVM_PV_EOI_EN, MSR_KVM_POLL_CONTROL,
    /* Last: only meaningful once the LAPIC is in TSC-deadline mode. */
    MSR_IA32_TSC_DEADLINE,
};

static uint32_t *saved_msr_list;
static uint32_t nr_saved_msrs;
static bool have_xsave, have_xcrs, have_debugregs;

/* State captured right after creation, for system_reset. */
typedef struct CPUPristine {
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_fpu fpu;
    struct kvm_lapic_state lapic;
    struct kvm_mp_state mp;
} CPUPristine;

static CPUPristine *pristine;    /* indexed by vCPU */
static Machine *state_machine;

static void init_msr_list(Machine *ms)
{
    struct kvm_msr_list probe = { .nmsrs = 0 };
    g_autofree struct kvm_msr_list *list = NULL;

    if (saved_msr_list) {
        return;
    }
    ioctl(ms->kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe);   /* E2BIG, fills nmsrs */
    list = g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(uint32_t));
    list->nmsrs = probe.nmsrs;
    if (ioctl(ms->kvm_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        list->nmsrs = 0;
    }
    saved_msr_list = g_new0(uint32_t, G_N_ELEMENTS(wanted_msrs));
    for (size_t i = 0; i < G_N_ELEMENTS(wanted_msrs); i++) {
        for (uint32_t j = 0; j < list->nmsrs; j++) {
            if (list->indices[j] == wanted_msrs[i]) {
                saved_msr_list[nr_saved_msrs++] = wanted_msrs[i];
                break;
            }
        }
    }
    have_xsave = ioctl(ms->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
    have_xcrs = ioctl(ms->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XCRS) > 0;
    have_debugregs = ioctl(ms->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_DEBUGREGS) > 0;
}

static bool vcpu_ioctl(CPUState *cpu, unsigned long req, void *arg, const char *what,
                       GError **errp)
{
    if (ioctl(cpu->fd, req, arg) < 0) {
        error_setg_errno(errp, errno, "vCPU %d: %s failed", cpu->index, what);
        return false;
    }
    return true;
}

CPUState *kvm_cpu_create(Machine *ms, int index, GError **errp)
{
    CPUState *cpu = g_new0(CPUState, 1);

    init_msr_list(ms);
    state_machine = ms;
    if (!pristine) {
        pristine = g_new0(CPUPristine, ms->smp_cpus);
    }
    cpu->index = index;
    cpu->fd = ioctl(ms->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
    if (cpu->fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VCPU %d failed", index);
        g_free(cpu);
        return NULL;
    }
    cpu->run = mmap(NULL, (size_t)ms->vcpu_mmap_size, PROT_READ | PROT_WRITE,
                    MAP_SHARED, cpu->fd, 0);
    if (cpu->run == MAP_FAILED) {
        error_setg_errno(errp, errno, "cannot map kvm_run of vCPU %d", index);
        g_free(cpu);
        return NULL;
    }
    g_autofree struct kvm_cpuid2 *cpuid = kvm_vcpu_cpuid(ms, index);
    if (!vcpu_ioctl(cpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2", errp)) {
        return NULL;
    }
    CPUPristine *p = &pristine[index];
    if (!vcpu_ioctl(cpu, KVM_GET_REGS, &p->regs, "KVM_GET_REGS", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_SREGS, &p->sregs, "KVM_GET_SREGS", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_FPU, &p->fpu, "KVM_GET_FPU", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_LAPIC, &p->lapic, "KVM_GET_LAPIC", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_MP_STATE, &p->mp, "KVM_GET_MP_STATE", errp)) {
        return NULL;
    }
    return cpu;
}

bool kvm_cpu_reset(CPUState *cpu, GError **errp)
{
    CPUPristine *p = &pristine[cpu->index];
    struct kvm_vcpu_events ev = { 0 };
    struct kvm_regs regs = p->regs;
    struct kvm_sregs sregs = p->sregs;
    struct kvm_fpu fpu = p->fpu;
    struct kvm_lapic_state lapic = p->lapic;
    struct kvm_mp_state mp = p->mp;

    return vcpu_ioctl(cpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", errp) &&
           vcpu_ioctl(cpu, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp) &&
           vcpu_ioctl(cpu, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp) &&
           vcpu_ioctl(cpu, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", errp) &&
           vcpu_ioctl(cpu, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp) &&
           vcpu_ioctl(cpu, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp);
}

static void set_flat_segment(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
    *s = (struct kvm_segment) {
        .base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
        .present = 1, .dpl = 0, .db = 1, .s = 1, .l = 0, .g = 1,
    };
}

bool kvm_cpu_set_multiboot_entry(CPUState *cpu, uint32_t entry, uint32_t mbi,
                                 GError **errp)
{
    struct kvm_sregs sregs;
    struct kvm_regs regs = { 0 };

    if (!vcpu_ioctl(cpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", errp)) {
        return false;
    }
    /* Multiboot: 32-bit protected mode, flat segments, paging off. */
    set_flat_segment(&sregs.cs, 0x08, 0xb);
    set_flat_segment(&sregs.ds, 0x10, 0x3);
    sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
    sregs.cr0 = 0x11;      /* PE, ET */
    sregs.cr4 = 0;
    sregs.efer = 0;
    regs.rip = entry;
    regs.rax = 0x2BADB002;
    regs.rbx = mbi;
    regs.rflags = 0x2;
    return vcpu_ioctl(cpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", errp) &&
           vcpu_ioctl(cpu, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp);
}

/* ---- migration records ---- */

static void put_block(GByteArray *out, uint32_t tag, const void *data, uint32_t len)
{
    uint32_t hdr[2] = { tag, len };
    g_byte_array_append(out, (const guint8 *)hdr, sizeof(hdr));
    g_byte_array_append(out, data, len);
}

static bool cpu_save(void *opaque, GByteArray *out, GError **errp)
{
    CPUState *cpu = opaque;
    struct kvm_vcpu_events ev;
    struct kvm_mp_state mp;
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_lapic_state lapic;

    /* MP state before registers: reading it can process a pending INIT/SIPI. */
    if (!vcpu_ioctl(cpu, KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE", errp) ||
        !vcpu_ioctl(cpu, KVM_GET_REGS, &regs, "KVM_GET_REGS", errp)) {
        return false;
    }
    put_block(out, CPU_TAG_EVENTS, &ev, sizeof(ev));
    put_block(out, CPU_TAG_MP_STATE, &mp, sizeof(mp));
    put_block(out, CPU_TAG_REGS, &regs, sizeof(regs));
    if (have_xsave) {
        g_autofree struct kvm_xsave *xs = g_new0(struct kvm_xsave, 1);
        if (!vcpu_ioctl(cpu, KVM_GET_XSAVE, xs, "KVM_GET_XSAVE", errp)) {
            return false;
        }
        put_block(out, CPU_TAG_XSAVE, xs, sizeof(*xs));
    } else {
        struct kvm_fpu fpu;
        if (!vcpu_ioctl(cpu, KVM_GET_FPU, &fpu, "KVM_GET_FPU", errp)) {
            return false;
        }
        put_block(out, CPU_TAG_FPU, &fpu, sizeof(fpu));
    }
    if (have_xcrs) {
        struct kvm_xcrs xcrs;
        if (!vcpu_ioctl(cpu, KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS", errp)) {
            return false;
        }
        put_block(out, CPU_TAG_XCRS, &xcrs, sizeof(xcrs));
    }
    if (!vcpu_ioctl(cpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS", errp)) {
        return false;
    }
    put_block(out, CPU_TAG_SREGS, &sregs, sizeof(sregs));

    size_t msz = sizeof(struct kvm_msrs) + nr_saved_msrs * sizeof(struct kvm_msr_entry);
    g_autofree struct kvm_msrs *msrs = g_malloc0(msz);
    msrs->nmsrs = nr_saved_msrs;
    for (uint32_t i = 0; i < nr_saved_msrs; i++) {
        msrs->entries[i].index = saved_msr_list[i];
    }
    int n = ioctl(cpu->fd, KVM_GET_MSRS, msrs);
    if (n < 0 || (uint32_t)n != nr_saved_msrs) {
        error_setg(errp, "vCPU %d: KVM_GET_MSRS read %d of %u MSRs", cpu->index, n,
                   nr_saved_msrs);
        return false;
    }
    put_block(out, CPU_TAG_MSRS, msrs->entries, nr_saved_msrs * sizeof(struct kvm_msr_entry));

    if (!vcpu_ioctl(cpu, KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC", errp)) {
        return false;
    }
    put_block(out, CPU_TAG_LAPIC, &lapic, sizeof(lapic));
    if (have_debugregs) {
        struct kvm_debugregs dr;
        if (!vcpu_ioctl(cpu, KVM_GET_DEBUGREGS, &dr, "KVM_GET_DEBUGREGS", errp)) {
            return false;
        }
        put_block(out, CPU_TAG_DEBUGREGS, &dr, sizeof(dr));
    }
    return true;
}

typedef struct CPUBlocks {
    const void *ptr[CPU_TAG_DEBUGREGS + 1];
    uint32_t len[CPU_TAG_DEBUGREGS + 1];
} CPUBlocks;

static bool parse_blocks(int index, const uint8_t *buf, size_t len, CPUBlocks *b,
                         GError **errp)
{
    static const uint32_t fixed[CPU_TAG_DEBUGREGS + 1] = {
        [CPU_TAG_EVENTS] = sizeof(struct kvm_vcpu_events),
        [CPU_TAG_MP_STATE] = sizeof(struct kvm_mp_state),
        [CPU_TAG_REGS] = sizeof(struct kvm_regs),
        [CPU_TAG_FPU] = sizeof(struct kvm_fpu),
        [CPU_TAG_XSAVE] = sizeof(struct kvm_xsave),
        [CPU_TAG_XCRS] = sizeof(struct kvm_xcrs),
        [CPU_TAG_SREGS] = sizeof(struct kvm_sregs),
        [CPU_TAG_LAPIC] = sizeof(struct kvm_lapic_state),
        [CPU_TAG_DEBUGREGS] = sizeof(struct kvm_debugregs),
    };
    size_t off = 0;

    memset(b, 0, sizeof(*b));
    while (off < len) {
        uint32_t hdr[2];
        if (len - off < sizeof(hdr)) {
            error_setg(errp, "vCPU %d state is truncated", index);
            return false;
        }
        memcpy(hdr, buf + off, sizeof(hdr));
        off += sizeof(hdr);
        if (hdr[0] == 0 || hdr[0] > CPU_TAG_DEBUGREGS || b->ptr[hdr[0]]) {
            error_setg(errp, "vCPU %d state has an unknown or repeated block %u", index, hdr[0]);
            return false;
        }
        if (hdr[1] > len - off) {
            error_setg(errp, "vCPU %d state is truncated", index);
            return false;
        }
        if (hdr[0] == CPU_TAG_MSRS ? hdr[1] % sizeof(struct kvm_msr_entry) != 0
                                   : hdr[1] != fixed[hdr[0]]) {
            error_setg(errp, "vCPU %d state block %u has a bad length %u", index,
                       hdr[0], hdr[1]);
            return false;
        }
        b->ptr[hdr[0]] = buf + off;
        b->len[hdr[0]] = hdr[1];
        off += hdr[1];
    }
    static const int required[] = {
        CPU_TAG_EVENTS, CPU_TAG_MP_STATE, CPU_TAG_REGS, CPU_TAG_SREGS,
        CPU_TAG_MSRS, CPU_TAG_LAPIC,
    };
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        if (!b->ptr[required[i]]) {
            error_setg(errp, "vCPU %d state lacks block %d", index, required[i]);
            return false;
        }
    }
    if (!b->ptr[CPU_TAG_XSAVE] && !b->ptr[CPU_TAG_FPU]) {
        error_setg(errp, "vCPU %d state lacks FPU state", index);
        return false;
    }
    return true;
}

static bool cpu_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp)
{
    CPUState *cpu = opaque;
    CPUBlocks b;
    struct kvm_sregs sregs;
    struct kvm_regs regs;
    struct kvm_vcpu_events ev;
    struct kvm_mp_state mp;
    struct kvm_lapic_state lapic;

    if (version != CPU_RECORD_VERSION) {
        error_setg(errp, "vCPU state version %u is not supported (expected %d)",
                   version, CPU_RECORD_VERSION);
        return false;
    }
    if (!parse_blocks(cpu->index, buf, len, &b, errp)) {
        return false;
    }
    memcpy(&sregs, b.ptr[CPU_TAG_SREGS], sizeof(sregs));
    memcpy(&regs, b.ptr[CPU_TAG_REGS], sizeof(regs));
    memcpy(&ev, b.ptr[CPU_TAG_EVENTS], sizeof(ev));
    memcpy(&mp, b.ptr[CPU_TAG_MP_STATE], sizeof(mp));
    memcpy(&lapic, b.ptr[CPU_TAG_LAPIC], sizeof(lapic));

    /*
     * KVM's order: SREGS first (EFER, CRs and the APIC base), then the LAPIC
     * page, REGS, FPU, XCRS, MSRs (TSC deadline last, after the LAPIC mode is
     * known), events, MP state.
     */
    if (!vcpu_ioctl(cpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS", errp) ||
        !vcpu_ioctl(cpu, KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC", errp) ||
        !vcpu_ioctl(cpu, KVM_SET_REGS, &regs, "KVM_SET_REGS", errp)) {
        return false;
    }
    if (b.ptr[CPU_TAG_XSAVE]) {
        if (!have_xsave) {
            error_setg(errp, "vCPU %d state carries XSAVE state but this host's KVM has no XSAVE",
                       cpu->index);
            return false;
        }
        g_autofree struct kvm_xsave *xs = g_new0(struct kvm_xsave, 1);
        memcpy(xs, b.ptr[CPU_TAG_XSAVE], sizeof(*xs));
        if (!vcpu_ioctl(cpu, KVM_SET_XSAVE, xs, "KVM_SET_XSAVE", errp)) {
            return false;
        }
    } else {
        struct kvm_fpu fpu;
        memcpy(&fpu, b.ptr[CPU_TAG_FPU], sizeof(fpu));
        if (!vcpu_ioctl(cpu, KVM_SET_FPU, &fpu, "KVM_SET_FPU", errp)) {
            return false;
        }
    }
    if (b.ptr[CPU_TAG_XCRS] && have_xcrs) {
        struct kvm_xcrs xcrs;
        memcpy(&xcrs, b.ptr[CPU_TAG_XCRS], sizeof(xcrs));
        if (!vcpu_ioctl(cpu, KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS", errp)) {
            return false;
        }
    }
    uint32_t nmsrs = b.len[CPU_TAG_MSRS] / sizeof(struct kvm_msr_entry);
    g_autofree struct kvm_msrs *msrs =
        g_malloc0(sizeof(struct kvm_msrs) + nmsrs * sizeof(struct kvm_msr_entry));
    msrs->nmsrs = nmsrs;
    memcpy(msrs->entries, b.ptr[CPU_TAG_MSRS], b.len[CPU_TAG_MSRS]);
    int n = ioctl(cpu->fd, KVM_SET_MSRS, msrs);
    if (n < 0 || (uint32_t)n != nmsrs) {
        error_setg(errp, "vCPU %d: KVM_SET_MSRS accepted %d of %u MSRs (MSR 0x%x refused)",
                   cpu->index, n, nmsrs, n >= 0 && (uint32_t)n < nmsrs ?
                   msrs->entries[n].index : 0);
        return false;
    }
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
               KVM_VCPUEVENT_VALID_SHADOW;
    if (!vcpu_ioctl(cpu, KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS", errp) ||
        !vcpu_ioctl(cpu, KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE", errp)) {
        return false;
    }
    if (b.ptr[CPU_TAG_DEBUGREGS] && have_debugregs) {
        struct kvm_debugregs dr;
        memcpy(&dr, b.ptr[CPU_TAG_DEBUGREGS], sizeof(dr));
        if (!vcpu_ioctl(cpu, KVM_SET_DEBUGREGS, &dr, "KVM_SET_DEBUGREGS", errp)) {
            return false;
        }
    }
    return true;
}

/* ---- VM-wide: irqchip, PIT, clock ---- */

static bool irqchip_save(void *opaque, GByteArray *out, GError **errp)
{
    Machine *ms = opaque;
    IrqchipRecord rec = { 0 };

    for (uint32_t id = 0; id < G_N_ELEMENTS(rec.chip); id++) {
        rec.chip[id].chip_id = id;
        if (ioctl(ms->vm_fd, KVM_GET_IRQCHIP, &rec.chip[id]) < 0) {
            error_setg_errno(errp, errno, "KVM_GET_IRQCHIP %u failed", id);
            return false;
        }
    }
    record_save(&irqchip_record_desc, IRQCHIP_RECORD_VERSION, &rec, out);
    return true;
}

static bool irqchip_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                         GError **errp)
{
    Machine *ms = opaque;
    g_autofree IrqchipRecord *rec = g_new0(IrqchipRecord, 1);

    if (!record_load(&irqchip_record_desc, version, rec, buf, len, errp)) {
        return false;
    }
    for (uint32_t id = 0; id < G_N_ELEMENTS(rec->chip); id++) {
        if (rec->chip[id].chip_id != id) {
            error_setg(errp, "irqchip state has chip %u where %u belongs",
                       rec->chip[id].chip_id, id);
            return false;
        }
    }
    for (uint32_t id = 0; id < G_N_ELEMENTS(rec->chip); id++) {
        if (ioctl(ms->vm_fd, KVM_SET_IRQCHIP, &rec->chip[id]) < 0) {
            error_setg_errno(errp, errno, "KVM_SET_IRQCHIP %u failed", id);
            return false;
        }
    }
    return true;
}

static int64_t host_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* PIT state taken at vm_stop (or loaded by migration), applied at vm_start. */
static struct kvm_pit_state2 pit_at_stop;
static int64_t pit_stop_ns;
static bool pit_frozen;

static bool pit_save(void *opaque, GByteArray *out, GError **errp)
{
    Machine *ms = opaque;
    PitRecord rec;
    int64_t now = host_monotonic_ns();

    if (pit_frozen) {
        /* The VM is stopped: send the PIT as it was at the stop. */
        rec.pit = pit_at_stop;
        now = pit_stop_ns;
    } else if (ioctl(ms->vm_fd, KVM_GET_PIT2, &rec.pit) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_PIT2 failed");
        return false;
    }
    /* count_load_time is host CLOCK_MONOTONIC: send it relative to now. */
    for (int i = 0; i < 3; i++) {
        rec.pit.channels[i].count_load_time -= now;
    }
    record_save(&pit_record_desc, PIT_RECORD_VERSION, &rec, out);
    return true;
}

static bool pit_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                     GError **errp)
{
    Machine *ms = opaque;
    PitRecord rec = { 0 };
    struct kvm_pit_state2 pit;
    int64_t now = host_monotonic_ns();

    if (!record_load(&pit_record_desc, version, &rec, buf, len, errp)) {
        return false;
    }
    pit = rec.pit;
    for (int i = 0; i < 3; i++) {
        pit.channels[i].count_load_time += now;
    }
    if (ioctl(ms->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_PIT2 failed");
        return false;
    }
    /* Frozen from now until vm_start(), like a PIT stopped here. */
    pit_at_stop = pit;
    pit_stop_ns = now;
    pit_frozen = true;
    return true;
}

/*
 * The in-kernel PIT runs on host time (an hrtimer) even while the vCPUs are
 * stopped, and in its default reinject mode it then delivers every tick
 * missed during the pause in a burst after `cont` (a guest counting IRQ0 saw
 * 400 extra ticks after a 3 s stop). Like QEMU, take the PIT state at the
 * stop and put it back at the start shifted by the pause, which also
 * discards KVM's pending reinjection count: the PIT does not see the pause.
 */
static void pit_freeze(Machine *ms)
{
    if (ioctl(ms->vm_fd, KVM_GET_PIT2, &pit_at_stop) == 0) {
        pit_stop_ns = host_monotonic_ns();
        pit_frozen = true;
    }
}

static void pit_thaw(Machine *ms)
{
    struct kvm_pit_state2 pit = pit_at_stop;
    int64_t paused = host_monotonic_ns() - pit_stop_ns;

    if (!pit_frozen) {
        return;
    }
    for (int i = 0; i < 3; i++) {
        pit.channels[i].count_load_time += paused;
    }
    if (ioctl(ms->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        g_warning("KVM_SET_PIT2 failed: %s", g_strerror(errno));
    }
    pit_frozen = false;
}

/*
 * kvmclock: the value read when the VM stopped. Written back when it starts,
 * so neither a pause nor a migration shows up as a jump in guest time (the
 * choice QEMU 7.2 makes; see docs/devel/architecture.md).
 */
static uint64_t clock_at_stop;
static bool clock_valid;

void kvm_clock_on_stop(Machine *ms)
{
    struct kvm_clock_data d = { 0 };

    if (ioctl(ms->vm_fd, KVM_GET_CLOCK, &d) == 0) {
        clock_at_stop = d.clock;
        clock_valid = true;
    }
    pit_freeze(ms);
}

void kvm_clock_on_start(Machine *ms)
{
    struct kvm_clock_data d = { 0 };

    pit_thaw(ms);
    if (!clock_valid) {
        return;
    }
    d.clock = clock_at_stop;
    if (ioctl(ms->vm_fd, KVM_SET_CLOCK, &d) < 0) {
        g_warning("KVM_SET_CLOCK failed: %s", g_strerror(errno));
    }
    clock_valid = false;
}

static bool clock_save(void *opaque, GByteArray *out, GError **errp)
{
    Machine *ms = opaque;
    ClockRecord rec;

    if (!clock_valid) {
        kvm_clock_on_stop(ms);
    }
    rec.clock_ns = clock_at_stop;
    record_save(&clock_record_desc, CLOCK_RECORD_VERSION, &rec, out);
    return true;
}

static bool clock_load(void *opaque, const uint8_t *buf, size_t len, uint32_t version,
                       GError **errp)
{
    ClockRecord rec;

    if (!record_load(&clock_record_desc, version, &rec, buf, len, errp)) {
        return false;
    }
    clock_at_stop = rec.clock_ns;
    clock_valid = true;    /* applied by vm_start() -> kvm_clock_on_start() */
    return true;
}

void kvm_state_register(Machine *ms)
{
    SaveStateHandler h;

    h = (SaveStateHandler) {
        .idstr = "kvm-irqchip", .version = IRQCHIP_RECORD_VERSION,
        .priority = SAVESTATE_PRIO_IRQCHIP, .save = irqchip_save,
        .load = irqchip_load, .opaque = ms,
    };
    register_savestate(&h);
    h = (SaveStateHandler) {
        .idstr = "kvm-pit", .version = PIT_RECORD_VERSION,
        .priority = SAVESTATE_PRIO_PIT, .save = pit_save, .load = pit_load,
        .opaque = ms,
    };
    register_savestate(&h);
    for (int i = 0; i < ms->smp_cpus; i++) {
        h = (SaveStateHandler) {
            .idstr = "cpu", .instance_id = (uint32_t)i, .version = CPU_RECORD_VERSION,
            .priority = SAVESTATE_PRIO_CPU, .save = cpu_save, .load = cpu_load,
            .opaque = ms->cpus[i],
        };
        register_savestate(&h);
    }
    h = (SaveStateHandler) {
        .idstr = "kvm-clock", .version = CLOCK_RECORD_VERSION,
        .priority = SAVESTATE_PRIO_CLOCK, .save = clock_save, .load = clock_load,
        .opaque = ms,
    };
    register_savestate(&h);
}

/* ---- HMP info registers ---- */

static void dump_seg(GString *out, const char *name, const struct kvm_segment *s)
{
    g_string_append_printf(out, "%-3s=%04x %016" PRIx64 " %08x %02x%s%s%s%s\n", name,
                           s->selector, (uint64_t)s->base, s->limit, s->type,
                           s->present ? " P" : "", s->l ? " L" : "",
                           s->db ? " DB" : "", s->g ? " G" : "");
}

void cpu_dump_state(CPUState *cpu, GString *out)
{
    struct kvm_regs r;
    struct kvm_sregs s;

    if (ioctl(cpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(cpu->fd, KVM_GET_SREGS, &s) < 0) {
        g_string_append_printf(out, "CPU#%d: registers unavailable: %s\n", cpu->index,
                               g_strerror(errno));
        return;
    }
    g_string_append_printf(out, "CPU#%d\n", cpu->index);
    g_string_append_printf(out,
        "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n"
        "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n"
        "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n"
        "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n"
        "RIP=%016llx RFL=%08llx\n",
        r.rax, r.rbx, r.rcx, r.rdx, r.rsi, r.rdi, r.rbp, r.rsp,
        r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rip, r.rflags);
    dump_seg(out, "ES", &s.es);
    dump_seg(out, "CS", &s.cs);
    dump_seg(out, "SS", &s.ss);
    dump_seg(out, "DS", &s.ds);
    dump_seg(out, "FS", &s.fs);
    dump_seg(out, "GS", &s.gs);
    dump_seg(out, "LDT", &s.ldt);
    dump_seg(out, "TR", &s.tr);
    g_string_append_printf(out, "GDT=     %016llx %08x\nIDT=     %016llx %08x\n",
                           s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit);
    g_string_append_printf(out,
        "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx\nEFER=%016llx APIC_BASE=%016llx\n",
        s.cr0, s.cr2, s.cr3, s.cr4, s.efer, s.apic_base);
}
