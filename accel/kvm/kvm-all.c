/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The KVM VM: creation, memory slots, dirty-log ioctls, in-kernel irqchip and
 * PIT, and the CPUID handed to vCPUs.
 */
#include "qemu/osdep.h"
#include "sysemu/kvm.h"
#include <fcntl.h>
#include <sys/ioctl.h>

/* Below the 4 GiB hole, as PC firmware does (kept out of the e820 RAM map). */
#define KVM_IDENTITY_MAP_ADDR 0xFEFFC000ULL
#define KVM_TSS_ADDR          0xFEFFD000ULL

static bool manual_dirty_protect;
static struct kvm_cpuid2 *supported_cpuid;

static bool kvm_check_ext(int fd, long ext)
{
    return ioctl(fd, KVM_CHECK_EXTENSION, ext) > 0;
}

bool kvm_manual_dirty_protect(void)
{
    return manual_dirty_protect;
}

static struct kvm_cpuid2 *kvm_fetch_supported_cpuid(int kvm_fd, GError **errp)
{
    for (int n = 64; n <= 4096; n *= 2) {
        struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + n * sizeof(c->entries[0]));
        c->nent = n;
        if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0) {
            return c;
        }
        g_free(c);
        if (errno != E2BIG) {
            error_setg_errno(errp, errno, "KVM_GET_SUPPORTED_CPUID failed");
            return NULL;
        }
    }
    error_setg(errp, "KVM_GET_SUPPORTED_CPUID: too many entries");
    return NULL;
}

/*
 * GSI routing as on a PC (and as our MADT describes it): ISA IRQ n drives
 * PIC pin n and IOAPIC pin n, except IRQ0 (the in-kernel PIT signals GSI 0),
 * which goes to IOAPIC pin 2 (MADT interrupt source override IRQ0 -> GSI2);
 * pin 2 of the master PIC is the cascade. GSIs 16..23 reach only the IOAPIC.
 * KVM's default table maps GSI 0 to IOAPIC pin 0, which a guest following
 * the override would never see. Not migrated: both ends set it up here.
 */
static bool kvm_setup_pc_irq_routing(Machine *ms, GError **errp)
{
    g_autofree struct kvm_irq_routing *r =
        g_malloc0(sizeof(*r) + 40 * sizeof(struct kvm_irq_routing_entry));
    uint32_t n = 0;

    for (uint32_t gsi = 0; gsi < 24; gsi++) {
        if (gsi < 16 && gsi != 2) {
            r->entries[n++] = (struct kvm_irq_routing_entry) {
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER
                                                  : KVM_IRQCHIP_PIC_SLAVE,
                               .pin = gsi % 8 },
            };
        }
        if (gsi != 2) {
            r->entries[n++] = (struct kvm_irq_routing_entry) {
                .gsi = gsi, .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC,
                               .pin = gsi == 0 ? 2 : gsi },
            };
        }
    }
    r->nr = n;
    if (ioctl(ms->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_GSI_ROUTING failed");
        return false;
    }
    return true;
}

bool kvm_init(Machine *ms, GError **errp)
{
    int ver;

    ms->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (ms->kvm_fd < 0) {
        error_set(errp, ERROR_CLASS_KVM_MISSING_CAP,
                  "Could not access KVM kernel module: %s (is /dev/kvm present and accessible?)",
                  g_strerror(errno));
        return false;
    }
    ver = ioctl(ms->kvm_fd, KVM_GET_API_VERSION, 0);
    if (ver != KVM_API_VERSION) {
        error_setg(errp, "KVM API version %d is not supported (need %d)", ver,
                   KVM_API_VERSION);
        return false;
    }
    static const struct { long cap; const char *name; } required[] = {
        { KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
        { KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
        { KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
        { KVM_CAP_PIT2, "KVM_CAP_PIT2" },
        { KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
        { KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS" },
        { KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
        { KVM_CAP_ADJUST_CLOCK, "KVM_CAP_ADJUST_CLOCK" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        if (!kvm_check_ext(ms->kvm_fd, required[i].cap)) {
            error_set(errp, ERROR_CLASS_KVM_MISSING_CAP,
                      "KVM lacks %s, which godwit needs", required[i].name);
            return false;
        }
    }
    ms->vcpu_mmap_size = ioctl(ms->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (ms->vcpu_mmap_size < (int)sizeof(struct kvm_run)) {
        error_setg_errno(errp, errno, "KVM_GET_VCPU_MMAP_SIZE failed");
        return false;
    }
    do {
        ms->vm_fd = ioctl(ms->kvm_fd, KVM_CREATE_VM, 0);
    } while (ms->vm_fd < 0 && errno == EINTR);
    if (ms->vm_fd < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_VM failed");
        return false;
    }
    fcntl(ms->vm_fd, F_SETFD, FD_CLOEXEC);

    /*
     * Manual dirty-log protection with INITIALLY_SET: turning logging on then
     * costs nothing, and write protection is re-armed per chunk just before
     * the chunk is sent, instead of for all of RAM at every pass.
     */
    int mp = ioctl(ms->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2);
    if (mp > 0) {
        struct kvm_enable_cap cap = {
            .cap = KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2,
            .args[0] = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE |
                       (mp & KVM_DIRTY_LOG_INITIALLY_SET),
        };
        manual_dirty_protect = ioctl(ms->vm_fd, KVM_ENABLE_CAP, &cap) == 0;
    }

    uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
    if (ioctl(ms->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_IDENTITY_MAP_ADDR failed");
        return false;
    }
    if (ioctl(ms->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_TSS_ADDR failed");
        return false;
    }
    if (ioctl(ms->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_IRQCHIP failed");
        return false;
    }
    if (!kvm_setup_pc_irq_routing(ms, errp)) {
        return false;
    }
    struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
    if (ioctl(ms->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        error_setg_errno(errp, errno, "KVM_CREATE_PIT2 failed");
        return false;
    }
    supported_cpuid = kvm_fetch_supported_cpuid(ms->kvm_fd, errp);
    return supported_cpuid != NULL;
}

bool kvm_set_user_memory(Machine *ms, MemSlot *slot, GError **errp)
{
    struct kvm_userspace_memory_region r = {
        .slot = slot->slot,
        .flags = slot->flags,
        .guest_phys_addr = slot->gpa,
        .memory_size = slot->size,
        .userspace_addr = (uintptr_t)(ms->ram->host + slot->block_offset),
    };

    if (ioctl(ms->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        error_setg_errno(errp, errno, "KVM_SET_USER_MEMORY_REGION (slot %u) failed",
                         slot->slot);
        return false;
    }
    return true;
}

bool kvm_set_dirty_logging(Machine *ms, bool enable, GError **errp)
{
    for (int i = 0; i < ms->nr_slots; i++) {
        MemSlot *s = &ms->slots[i];
        uint32_t old = s->flags;

        s->flags = enable ? (old | KVM_MEM_LOG_DIRTY_PAGES)
                          : (old & ~(uint32_t)KVM_MEM_LOG_DIRTY_PAGES);
        if (s->flags != old && !kvm_set_user_memory(ms, s, errp)) {
            s->flags = old;
            return false;
        }
    }
    return true;
}

bool kvm_slot_get_dirty_log(Machine *ms, MemSlot *slot, unsigned long *bitmap,
                            GError **errp)
{
    struct kvm_dirty_log d = { .slot = slot->slot, .dirty_bitmap = bitmap };

    if (ioctl(ms->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0) {
        error_setg_errno(errp, errno, "KVM_GET_DIRTY_LOG (slot %u) failed", slot->slot);
        return false;
    }
    return true;
}

bool kvm_slot_clear_dirty_log(Machine *ms, MemSlot *slot, uint64_t first_page,
                              uint64_t num_pages, unsigned long *bitmap,
                              GError **errp)
{
    struct kvm_clear_dirty_log c = {
        .slot = slot->slot,
        .num_pages = (uint32_t)num_pages,
        .first_page = first_page,
        .dirty_bitmap = bitmap,
    };

    if (!manual_dirty_protect) {
        return true;
    }
    if (ioctl(ms->vm_fd, KVM_CLEAR_DIRTY_LOG, &c) < 0) {
        error_setg_errno(errp, errno, "KVM_CLEAR_DIRTY_LOG (slot %u) failed", slot->slot);
        return false;
    }
    return true;
}

void kvm_set_irq(Machine *ms, int irq, int level)
{
    struct kvm_irq_level l = { .irq = (uint32_t)irq, .level = (uint32_t)level };

    /* Cannot fail for a valid ISA line on an in-kernel irqchip. */
    if (ioctl(ms->vm_fd, KVM_IRQ_LINE, &l) < 0) {
        g_warning("KVM_IRQ_LINE %d failed: %s", irq, g_strerror(errno));
    }
}

bool kvm_set_ioeventfd_mmio(Machine *ms, int fd, uint64_t addr, bool assign, GError **errp)
{
    /* Length 0: a write of any size at @addr signals (KVM_CAP_IOEVENTFD_ANY_LENGTH). */
    struct kvm_ioeventfd e = {
        .addr = addr,
        .len = 0,
        .fd = fd,
        .flags = assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN,
    };

    if (!kvm_check_ext(ms->vm_fd, KVM_CAP_IOEVENTFD) ||
        !kvm_check_ext(ms->vm_fd, KVM_CAP_IOEVENTFD_ANY_LENGTH)) {
        error_setg(errp, "KVM lacks KVM_CAP_IOEVENTFD_ANY_LENGTH");
        return false;
    }
    if (ioctl(ms->vm_fd, KVM_IOEVENTFD, &e) < 0) {
        error_setg_errno(errp, errno, "KVM_IOEVENTFD (%s 0x%" PRIx64 ") failed",
                         assign ? "assign" : "deassign", addr);
        return false;
    }
    return true;
}

#define KVM_CPUID_SIGNATURE_LEAF  0x40000000u
#define KVM_CPUID_FEATURES_LEAF   0x40000001u
/* kvmclock (old and new MSRs) and "the TSC is stable across vCPUs". */
#define KVM_PV_CLOCK_FEATURES     ((1u << 0) | (1u << 3) | (1u << 24))

/*
 * Guests look for "KVMKVMKVM\0\0\0" at 0x40000000 and the kvmclock bits at
 * 0x40000001 before using kvmclock. KVM_GET_SUPPORTED_CPUID normally has
 * both; should a KVM leave them out, add them (kvmclock itself is always
 * there with KVM_CAP_ADJUST_CLOCK, which kvm_init requires).
 */
static struct kvm_cpuid2 *kvm_cpuid_add_pv_leaves(struct kvm_cpuid2 *c)
{
    for (uint32_t i = 0; i < c->nent; i++) {
        if (c->entries[i].function == KVM_CPUID_SIGNATURE_LEAF) {
            return c;
        }
    }
    c = g_realloc(c, sizeof(*c) + (c->nent + 2) * sizeof(c->entries[0]));
    c->entries[c->nent++] = (struct kvm_cpuid_entry2) {
        .function = KVM_CPUID_SIGNATURE_LEAF, .eax = KVM_CPUID_FEATURES_LEAF,
        .ebx = 0x4b4d564b, .ecx = 0x564b4d56, .edx = 0x4d,    /* "KVMKVMKVM\0\0\0" */
    };
    c->entries[c->nent++] = (struct kvm_cpuid_entry2) {
        .function = KVM_CPUID_FEATURES_LEAF, .eax = KVM_PV_CLOCK_FEATURES,
    };
    return c;
}

struct kvm_cpuid2 *kvm_vcpu_cpuid(Machine *ms, int index)
{
    size_t sz = sizeof(*supported_cpuid) +
                supported_cpuid->nent * sizeof(supported_cpuid->entries[0]);
    struct kvm_cpuid2 *c = g_memdup2(supported_cpuid, sz);

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        switch (e->function) {
        case 1:
            /* Initial APIC id, logical processor count, and "running under a hypervisor". */
            e->ebx = (e->ebx & 0x0000FFFFu) | ((uint32_t)index << 24) |
                     ((uint32_t)MAX(ms->smp_cpus, 1) << 16);
            e->ecx |= 1u << 31;
            if (ms->smp_cpus > 1) {
                e->edx |= 1u << 28;   /* HTT: the count above is valid */
            }
            break;
        case 0xB:
        case 0x1F:
            e->edx = (uint32_t)index;   /* x2APIC id */
            break;
        default:
            break;
        }
    }
    return kvm_cpuid_add_pv_leaves(c);
}

char *kvm_cpuid_digest(Machine *ms)
{
    g_autoptr(GChecksum) ck = g_checksum_new(G_CHECKSUM_SHA256);
    g_autofree struct kvm_cpuid2 *c = kvm_vcpu_cpuid(ms, 0);

    for (uint32_t i = 0; i < c->nent; i++) {
        struct kvm_cpuid_entry2 *e = &c->entries[i];
        uint32_t w[6] = { e->function, e->index, e->eax, e->ebx, e->ecx, e->edx };
        g_checksum_update(ck, (const guchar *)w, sizeof(w));
    }
    return g_strdup(g_checksum_get_string(ck));
}
