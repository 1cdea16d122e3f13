/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos main: boot of the BSP (Multiboot info, command line, GDT/TSS/IDT,
 * ACPI, clocks, APIC, IOAPIC, PIT, UART), start of the APs with INIT/SIPI,
 * the carving of RAM into per-vCPU working sets, the slow-path interrupt
 * dispatcher (exceptions, UART) and the drop of every vCPU into its ring-3
 * workload. Heartbeats, markers and reports are printed from ring 3
 * (work.c): ring-0 code is very slow on the kvm_pvm hosts.
 */
#include "gwos.h"
#include "virtio-net.h"

#define TRAMPOLINE  0x7000u
#define MSR_GS_BASE 0xc0000101

typedef struct IsrFrame {
    uint64_t rax, rbx, rcx, rdx, rsi, rdi, rbp;
    uint64_t r8, r9, r10, r11, r12, r13, r14, r15;
    uint64_t vector, error;
    uint64_t rip, cs, rflags, rsp, ss;
} IsrFrame;

typedef struct Tss {
    uint32_t reserved0;
    uint64_t rsp0, rsp1, rsp2;
    uint64_t reserved1;
    uint64_t ist[7];
    uint64_t reserved2;
    uint16_t reserved3;
    uint16_t iomap_base;
} __attribute__((packed)) Tss;

typedef struct IdtEntry {
    uint16_t off_lo, sel;
    uint8_t ist, type;
    uint16_t off_mid;
    uint32_t off_hi, zero;
} IdtEntry;

/* boot.S */
extern uint64_t gdt_tss[];
extern uint64_t ap_stack_top;
extern uint8_t kstacks[];
extern const char isr_stubs[], tramp_start[], tramp_end[];
extern const char timer_stub[], pit_stub[], spurious_stub[], gp_stub[], net_stub[];
extern uint64_t boot_pd[];

/* What the assembly fast paths in boot.S assume. */
_Static_assert(offsetof(Cpu, res) == 16, "timer_stub reads Cpu.res at %gs:16");
_Static_assert(offsetof(GwosCpuResults, lapic_ticks) == 40, "timer_stub: lapic_ticks");
_Static_assert(GWOS_RESULTS_GPA + offsetof(GwosResults, pit_ticks) == 0x4030,
               "pit_stub: pit_ticks");
_Static_assert(GWOS_RESULTS_GPA + offsetof(GwosResults, net.irqs) == 0x51a8,
               "net_stub: net.irqs");
_Static_assert(GWOS_RESULTS_GPA + offsetof(GwosResults, net.irqs_idle) == 0x51b0,
               "net_stub: net.irqs_idle");
_Static_assert(GWOS_RESULTS_GPA + offsetof(GwosResults, io_gp_traps) == 0x4088,
               "gp_stub: io_gp_traps");
void enter_user(void *arg, void (*fn)(Cpu *), uint64_t rsp) __attribute__((noreturn));
void enter_kernel(void *arg, void (*fn)(Cpu *), uint64_t rsp) __attribute__((noreturn));
void kmain(uint32_t magic, uint32_t mbi);
void ap_main(void);
void isr_dispatch(IsrFrame *f);

Cpu cpus[GWOS_MAX_CPUS];
GwosResults *const results = (GwosResults *)(uintptr_t)GWOS_RESULTS_GPA;
Config cfg = {
    .work = GWOS_WORK_TICK, .hz = 1000, .pit_hz = 100, .marker_hz = 1000,
    .read_write_every = 16, .net_rate = 1000, .net_len = 256, .net_window = 32,
};

static Tss tss[GWOS_MAX_CPUS];
static IdtEntry idt[256] __attribute__((aligned(16)));
static uint8_t ustacks[GWOS_MAX_CPUS][16384] __attribute__((aligned(16)));
static char cmdline[1024];
static Extent ram[MAX_RAM_RANGES];
static int nr_ram;
static int ncpus = 1;
static volatile int ap_index;
static volatile int ap_ready;
static volatile int go;

static const char *const work_names[] = {
    [GWOS_WORK_IDLE] = "idle", [GWOS_WORK_TICK] = "tick", [GWOS_WORK_WS] = "ws",
    [GWOS_WORK_RAND] = "rand", [GWOS_WORK_READ] = "read",
};

Cpu *this_cpu(void)
{
    Cpu *c;
    __asm__ volatile("mov %%gs:0, %0" : "=r"(c));
    return c;
}

/* ---- command line ---- */
static bool streq_n(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return b[n] == 0;
}

static bool parse_num(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    unsigned base = 10;
    size_t i = 0;

    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == n) {
        return false;
    }
    for (; i < n; i++) {
        char ch = s[i];
        unsigned d;
        if (ch >= '0' && ch <= '9') {
            d = (unsigned)(ch - '0');
        } else if (base == 16 && ch >= 'a' && ch <= 'f') {
            d = (unsigned)(ch - 'a' + 10);
        } else if (base == 16 && ch >= 'A' && ch <= 'F') {
            d = (unsigned)(ch - 'A' + 10);
        } else if (i == n - 1 && (ch == 'K' || ch == 'k')) {
            v <<= 10;
            break;
        } else if (i == n - 1 && (ch == 'M' || ch == 'm')) {
            v <<= 20;
            break;
        } else if (i == n - 1 && (ch == 'G' || ch == 'g')) {
            v <<= 30;
            break;
        } else {
            return false;
        }
        v = v * base + d;
    }
    *out = v;
    return true;
}

static void parse_word(const char *w, size_t n)
{
    size_t k = 0;
    while (k < n && w[k] != '=') {
        k++;
    }
    const char *v = w + k + 1;
    size_t vn = k < n ? n - k - 1 : 0;
    uint64_t x;
    bool ok = true;

    if (k == n) {
        if (streq_n(w, "nokvmclock", n)) {
            cfg.no_kvmclock = true;
        } else if (streq_n(w, "ring0", n)) {
            cfg.ring0 = true;
        } else if (streq_n(w, "netbarzero", n)) {
            cfg.net_bar_zero = true;
        }
        return;                         /* the kernel file name, or unknown */
    }
    if (streq_n(w, "work", k)) {
        int found = -1;
        for (int i = 0; i < (int)(sizeof(work_names) / sizeof(work_names[0])); i++) {
            if (streq_n(v, work_names[i], vn)) {
                found = i;
            }
        }
        ok = found >= 0;
        if (ok) {
            cfg.work = found;
        }
    } else if (streq_n(w, "mem", k)) {
        if (streq_n(v, "max", vn)) {
            cfg.mem_max = true;
        } else if ((ok = parse_num(v, vn, &x))) {
            cfg.mem = x;
            cfg.mem_max = false;
        }
    } else if (streq_n(w, "rate", k)) {
        if ((ok = parse_num(v, vn, &x))) {
            cfg.rate_mib = x;
        }
    } else if (streq_n(w, "hz", k)) {
        if ((ok = parse_num(v, vn, &x) && x >= 1 && x <= 10000)) {
            cfg.hz = x;
        }
    } else if (streq_n(w, "pit", k)) {
        if ((ok = parse_num(v, vn, &x) && x <= 10000)) {
            cfg.pit_hz = x;
        }
    } else if (streq_n(w, "marker", k)) {
        if ((ok = parse_num(v, vn, &x) && x <= 10000)) {
            cfg.marker_hz = x;
        }
    } else if (streq_n(w, "exit", k)) {
        if ((ok = parse_num(v, vn, &x))) {
            cfg.exit_after_s = x;
        }
    } else if (streq_n(w, "wevery", k)) {
        if ((ok = parse_num(v, vn, &x) && x >= 1)) {
            cfg.read_write_every = x;
        }
    } else if (streq_n(w, "net", k)) {
        bool on = streq_n(v, "on", vn) || streq_n(v, "1", vn);
        ok = on || streq_n(v, "off", vn) || streq_n(v, "0", vn);
        cfg.net = on;
    } else if (streq_n(w, "netrate", k)) {
        if ((ok = parse_num(v, vn, &x) && x <= 10000000)) {
            cfg.net_rate = x;
        }
    } else if (streq_n(w, "netlen", k)) {
        if ((ok = parse_num(v, vn, &x) && x >= 64 && x <= 1514)) {
            cfg.net_len = x;
        }
    } else if (streq_n(w, "netwin", k)) {
        if ((ok = parse_num(v, vn, &x) && x >= 1 && x <= 256)) {
            cfg.net_window = x;
        }
    } else {
        return;
    }
    if (!ok) {
        kprintf("gwos: warning: ignoring a malformed option value\n");
    }
}

static void parse_cmdline(void)
{
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ') {
            p++;
        }
        const char *w = p;
        while (*p && *p != ' ') {
            p++;
        }
        if (p > w) {
            parse_word(w, (size_t)(p - w));
        }
    }
}

/* ---- Multiboot info ---- */
static void add_ram(uint64_t base, uint64_t len)
{
    uint64_t end = base + len;

    if (base < WORK_BASE) {
        base = WORK_BASE;
    }
    base = (base + 4095) & ~4095ull;
    end &= ~4095ull;
    if (end > 64ull << 30) {
        end = 64ull << 30;              /* what the page tables map */
    }
    if (end <= base || nr_ram == MAX_RAM_RANGES) {
        return;
    }
    ram[nr_ram++] = (Extent){ base, (end - base) / 4096 };
    /* boot.S mapped 0..4 GiB; map RAM above with the same 2 MiB pages. */
    for (uint64_t a = base & ~0x1fffffull; a < end; a += 0x200000) {
        if (a >= 4ull << 30) {
            boot_pd[a >> 21] = a | 0x87;
        }
    }
}

static void read_mbi(uint32_t mbi)
{
    const volatile uint32_t *m = (const volatile uint32_t *)(uintptr_t)mbi;
    uint32_t flags = m[0];

    if (flags & (1u << 2)) {
        const char *s = (const char *)(uintptr_t)m[4];
        size_t i = 0;
        for (; s[i] && i < sizeof(cmdline) - 1; i++) {
            cmdline[i] = s[i];
        }
        cmdline[i] = 0;
    }
    if (flags & (1u << 6)) {
        uint64_t a = m[12], end = a + m[11];
        while (a + 24 <= end) {
            const volatile uint8_t *e = (const volatile uint8_t *)(uintptr_t)a;
            uint32_t size = *(const volatile uint32_t *)e;
            uint64_t base = *(const volatile uint64_t *)(e + 4);
            uint64_t len = *(const volatile uint64_t *)(e + 12);
            uint32_t type = *(const volatile uint32_t *)(e + 20);
            if (type == 1) {
                add_ram(base, len);
            }
            a += size + 4;
        }
    } else if (flags & 1) {
        add_ram(0x100000, (uint64_t)m[2] << 10);
    }
}

/* ---- descriptor tables ---- */
static void cpu_tables(Cpu *c)
{
    Tss *t = &tss[c->index];
    uint64_t base = (uint64_t)(uintptr_t)t;
    uint64_t lim = sizeof(*t) - 1;
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };

    t->rsp0 = (uint64_t)(uintptr_t)(kstacks + 16384 * (c->index + 1));
    t->iomap_base = sizeof(*t);
    gdt_tss[2 * c->index] = (lim & 0xffff) | (base & 0xffffff) << 16 | 0x89ull << 40 |
                            ((lim >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
    gdt_tss[2 * c->index + 1] = base >> 32;
    __asm__ volatile("ltr %w0" : : "r"((uint16_t)TSS_SEL(c->index)));
    __asm__ volatile("lidt %0" : : "m"(idtr));
    wrmsr(MSR_GS_BASE, (uint64_t)(uintptr_t)c);
}

static void idt_init(void)
{
    for (int v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + 16 * v);
        if (v == 13) {
            a = (uint64_t)(uintptr_t)gp_stub;
        } else if (v == VEC_TIMER) {
            a = (uint64_t)(uintptr_t)timer_stub;
        } else if (v == VEC_PIT) {
            a = (uint64_t)(uintptr_t)pit_stub;
        } else if (v == VEC_SPURIOUS) {
            a = (uint64_t)(uintptr_t)spurious_stub;
        } else if (v == VEC_NET) {
            a = (uint64_t)(uintptr_t)net_stub;
        }
        idt[v] = (IdtEntry){
            .off_lo = (uint16_t)a, .sel = KERNEL_CS, .ist = 0, .type = 0x8e,
            .off_mid = (uint16_t)(a >> 16), .off_hi = (uint32_t)(a >> 32),
        };
    }
}

/* ---- working sets ---- */
static void carve_memory(void)
{
    uint64_t total = 0;
    for (int i = 0; i < nr_ram; i++) {
        total += ram[i].pages;
    }
    uint64_t want = cfg.mem_max ? total - total / 16 : (cfg.mem ? cfg.mem : 64ull << 20) / 4096;
    if (want > total) {
        kprintf("gwos: warning: mem= is more than the %lu MiB of RAM above 16 MiB; "
                "using that\n", total >> 8);
        want = total;
    }
    uint64_t share = want / ncpus;
    int r = 0;
    uint64_t off = 0;                   /* pages used in ram[r] */

    results->mem_bytes = share * ncpus * 4096;
    for (int i = 0; i < ncpus; i++) {
        Cpu *c = &cpus[i];
        uint64_t left = share;
        c->work = cfg.work;
        c->rng = 0x9e3779b97f4a7c15ull ^ ((uint64_t)i << 32) ^ 12345;
        c->rate_bytes_per_s = (cfg.rate_mib << 20) / ncpus;
        if (cfg.work == GWOS_WORK_IDLE || !share) {
            continue;
        }
        if (cfg.work == GWOS_WORK_RAND || cfg.work == GWOS_WORK_READ) {
            /* generation bytes first, contiguous */
            uint64_t sp = (share + 4095) / 4096 + 1;
            while (r < nr_ram && ram[r].pages - off < sp) {
                r++;
                off = 0;
            }
            if (r == nr_ram || sp >= left) {
                continue;
            }
            c->shadow = (uint8_t *)(uintptr_t)(ram[r].addr + off * 4096);
            off += sp;
            left -= sp;
        }
        while (left && r < nr_ram && c->next < MAX_EXTENTS) {
            uint64_t n = ram[r].pages - off;
            if (n > left) {
                n = left;
            }
            if (n) {
                c->ext[c->next++] = (Extent){ ram[r].addr + off * 4096, n };
                c->pages += n;
                left -= n;
                off += n;
            }
            if (off == ram[r].pages) {
                r++;
                off = 0;
            }
        }
    }
}

/* ---- interrupts ---- */
static const char *const exc_names[32] = {
    "#DE", "#DB", "NMI", "#BP", "#OF", "#BR", "#UD", "#NM", "#DF", "?9", "#TS", "#NP",
    "#SS", "#GP", "#PF", "?15", "#MF", "#AC", "#MC", "#XM", "#VE", "#CP",
};

void isr_dispatch(IsrFrame *f)
{
    Cpu *c = this_cpu();

    if (f->vector < 32) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        results->state = GWOS_STATE_FAILED;
        kprintf("gwos: exception %s (%lu) cpu=%d error=0x%lx rip=0x%lx cs=0x%lx "
                "rflags=0x%lx rsp=0x%lx cr2=0x%lx\n", exc_names[f->vector] ?
                exc_names[f->vector] : "?", f->vector, c->index, f->error, f->rip, f->cs,
                f->rflags, f->rsp, cr2);
        for (;;) {
            __asm__ volatile("cli; hlt");
        }
    }
    switch (f->vector) {
    case VEC_SERIAL:
        console_irq();
        lapic_eoi();
        break;
    default:
        if (f->vector < 0xe0) {
            lapic_eoi();                /* PIC vectors (0xe0+) get no LAPIC EOI */
        }
        break;
    }
}

/* ---- vCPU start ---- */
static void __attribute__((noreturn)) run_workload(Cpu *c)
{
    lapic_timer_start(cfg.hz);
    (cfg.ring0 ? enter_kernel : enter_user)(c, work_main,
                                            (uint64_t)(uintptr_t)(ustacks[c->index] + 16384));
}

void ap_main(void)
{
    Cpu *c = &cpus[ap_index];

    cpu_tables(c);
    lapic_cpu_init();
    clock_cpu_init(c);
    c->booted = true;
    __atomic_add_fetch(&results->online, 1, __ATOMIC_SEQ_CST);
    WRITE_ONCE(ap_ready, 1);
    __asm__ volatile("sti");
    while (!READ_ONCE(go)) {
        cpu_relax();
    }
    run_workload(c);
}

static void start_aps(Cpu *bsp)
{
    memcpy((void *)(uintptr_t)TRAMPOLINE, tramp_start, (size_t)(tramp_end - tramp_start));
    for (int i = 1; i < ncpus; i++) {
        Cpu *c = &cpus[i];
        WRITE_ONCE(ap_ready, 0);
        ap_index = i;
        ap_stack_top = (uint64_t)(uintptr_t)(kstacks + 16384 * (i + 1));
        barrier();
        if (!lapic_start_ap(bsp, c->apic_id, TRAMPOLINE)) {
            kprintf("gwos: error: cpu %d (apic %u): IPI not delivered\n", i, c->apic_id);
            continue;
        }
        uint64_t deadline = clock_ns(bsp) + NSEC_PER_SEC;
        while (!READ_ONCE(ap_ready) && clock_ns(bsp) < deadline) {
            cpu_relax();
        }
        if (READ_ONCE(ap_ready)) {
            kprintf("gwos: cpu %d up apic=%u\n", i, c->apic_id);
        } else {
            kprintf("gwos: error: cpu %d (apic %u) did not come up\n", i, c->apic_id);
        }
    }
}

/*
 * net=on: the network loop runs on the last vCPU that came up (the BSP
 * with -smp 1), next to its memory workload; the BSP keeps the markers
 * and the PIT, so they are not disturbed by it.
 */
static void start_net(void)
{
    int cpu = 0;

    for (int i = 0; i < ncpus; i++) {
        if (cpus[i].booted) {
            cpu = i;
        }
    }
    results->net.cpu = (uint32_t)cpu;
    results->net.frame_len = cfg.net_len;
    results->net.rate = cfg.net_rate;
    if (!vnet_init(cpus[cpu].apic_id)) {
        return;
    }
    if (cfg.net_window > results->net.queue_size) {
        cfg.net_window = results->net.queue_size;
    }
    results->net.window = cfg.net_window;
    cpus[cpu].net = true;
    results->net.state = GWOS_NET_RUNNING;
    kprintf("gwos: net: cpu %d len=%lu rate=%lu/s win=%lu queue=%u features=0x%lx\n", cpu,
            cfg.net_len, cfg.net_rate, cfg.net_window, results->net.queue_size,
            results->net.features);
}

void kmain(uint32_t magic, uint32_t mbi)
{
    Cpu *bsp = &cpus[0];

    bsp->booted = true;
    memset(results, 0, GWOS_RESULTS_SIZE);
    results->magic = GWOS_RESULTS_MAGIC;
    results->version = GWOS_RESULTS_VERSION;
    for (int i = 0; i < GWOS_MAX_CPUS; i++) {
        cpus[i].self = &cpus[i];
        cpus[i].index = i;
        cpus[i].res = &results->cpu[i];
    }
    console_init();
    if (magic != 0x2BADB002) {
        panic("not booted by a Multiboot loader (magic 0x%x)", magic);
    }
    read_mbi(mbi);
    parse_cmdline();
    idt_init();
    cpu_tables(bsp);
    kprintf("gwos: booting, cmdline \"%s\"\n", cmdline);

    bsp->apic_id = lapic_id();
    if (madt_find()) {
        int n = 1;
        for (int i = 0; i < madt.ncpus; i++) {
            if (madt.apic_ids[i] != bsp->apic_id) {
                cpus[n++].apic_id = madt.apic_ids[i];
            }
        }
        ncpus = n;
    } else {
        kprintf("gwos: warning: no ACPI MADT; running on the BSP only\n");
    }
    if (!madt.ioapic_addr) {
        madt.ioapic_addr = 0xfec00000;
    }
    results->ncpus = (uint32_t)ncpus;
    results->online = 1;
    for (int i = 0; i < ncpus; i++) {
        cpus[i].res->apic_id = cpus[i].apic_id;
    }

    clock_cpu_init(bsp);
    clock_calibrate();
    results->clock = bsp->pvclock ? GWOS_CLOCK_KVM : GWOS_CLOCK_TSC;
    results->tsc_khz = tsc_khz;
    kprintf("gwos: cpus=%d clock=%s tsc_khz=%lu ioapic=0x%lx irq0->gsi%u\n", ncpus,
            bsp->pvclock ? "kvmclock" : "tsc", tsc_khz, madt.ioapic_addr, madt.isa_gsi[0]);

    pic_disable();
    lapic_cpu_init();
    lapic_timer_calibrate(bsp);
    ioapic_route_isa(4, VEC_SERIAL, bsp->apic_id);
    if (cfg.pit_hz) {
        ioapic_route_isa(0, VEC_PIT, bsp->apic_id);
        pit_start(cfg.pit_hz);
    }
    __asm__ volatile("sti");
    console_irq_mode();

    start_aps(bsp);
    kprintf("gwos: %u of %d cpus up\n", results->online, ncpus);
    carve_memory();
    results->work = (uint32_t)cfg.work;
    results->rate_mib = cfg.rate_mib;
    results->lapic_hz = cfg.hz;
    results->pit_hz = cfg.pit_hz;
    kprintf("gwos: work=%s mem=%luM rate=%luM/s hz=%lu pit=%lu marker=%lu exit=%lu\n",
            work_names[cfg.work], results->mem_bytes >> 20, cfg.rate_mib, cfg.hz,
            cfg.pit_hz, cfg.marker_hz, cfg.exit_after_s);
    for (int i = 0; i < ncpus; i++) {
        Cpu *c = &cpus[i];
        for (int e = 0; e < c->next; e++) {
            kprintf("gwos: cpu %d ram 0x%lx-0x%lx\n", i, c->ext[e].addr,
                    c->ext[e].addr + c->ext[e].pages * 4096);
        }
    }
    if (cfg.net) {
        start_net();
    }
    results->boot_ns = clock_ns(bsp);
    results->state = GWOS_STATE_RUNNING;
    kprintf("gwos: running\n");
    WRITE_ONCE(go, 1);
    run_workload(bsp);
}
