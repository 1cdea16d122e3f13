/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Multiboot v1 loader: ELF32 program headers or the a.out address fields,
 * optional modules, and an information block with the PC memory map.
 * Everything is written through machine_ram_write() so migration sees it.
 */
#include "qemu/osdep.h"
#include "hw/pc.h"
#include "qemu/byteorder.h"
#include <elf.h>

#define MB_HEADER_MAGIC   0x1BADB002u
#define MB_BOOT_MAGIC     0x2BADB002u
#define MB_SEARCH_LEN     8192
#define MB_FLAG_AOUT_KLUDGE (1u << 16)

#define MBI_FLAG_MEM      (1u << 0)
#define MBI_FLAG_BOOTDEV  (1u << 1)
#define MBI_FLAG_CMDLINE  (1u << 2)
#define MBI_FLAG_MODS     (1u << 3)
#define MBI_FLAG_MMAP     (1u << 6)
#define MBI_FLAG_LOADER   (1u << 9)

/* Scratch area below 640 KiB, as PC loaders use: */
#define MB_CMDLINE_ADDR   0x8000u   /* 4 KiB command line */
#define MB_CMDLINE_MAX    0x1000u
#define MB_MMAP_ADDR      0x9000u
#define MB_INFO_ADDR      0x9500u
#define MB_LOADER_ADDR    0x9600u
#define MB_MODS_ADDR      0x9700u   /* module entries, 16 bytes each */
#define MB_MODSTR_ADDR    0x9A00u   /* module strings up to 0x9FC00 */
#define MB_SCRATCH_START  0x8000u
#define MB_SCRATCH_END    0xA000u
#define MB_MAX_MODULES    32

static bool load_segment(Machine *ms, uint64_t paddr, const uint8_t *data, uint64_t filesz,
                         uint64_t memsz, GError **errp)
{
    uint64_t end = paddr + memsz;

    if (memsz < filesz || end < paddr || end > 0x100000000ULL) {
        error_setg(errp, "kernel segment at 0x%" PRIx64 " has a bad size", paddr);
        return false;
    }
    if (paddr < MB_SCRATCH_END && end > MB_SCRATCH_START) {
        error_setg(errp, "kernel segment [0x%" PRIx64 ", 0x%" PRIx64
                   ") overlaps the boot information area", paddr, end);
        return false;
    }
    if (!machine_gpa_to_hva(ms, paddr, memsz ? memsz : 1)) {
        error_setg(errp, "kernel segment [0x%" PRIx64 ", 0x%" PRIx64
                   ") lies outside guest RAM", paddr, end);
        return false;
    }
    if (filesz && !machine_ram_write(ms, paddr, data, filesz, errp)) {
        return false;
    }
    if (memsz > filesz) {
        /* bss: RAM may hold old data after a reset. */
        g_autofree uint8_t *zero = g_malloc0(memsz - filesz);
        if (!machine_ram_write(ms, paddr + filesz, zero, memsz - filesz, errp)) {
            return false;
        }
    }
    return true;
}

static bool load_elf32(Machine *ms, const uint8_t *img, size_t len, uint32_t *entry,
                       uint64_t *kend, GError **errp)
{
    Elf32_Ehdr eh;

    if (len < sizeof(eh)) {
        error_setg(errp, "kernel is too short for an ELF header");
        return false;
    }
    memcpy(&eh, img, sizeof(eh));
    if (eh.e_ident[EI_CLASS] != ELFCLASS32) {
        error_setg(errp, "kernel is an ELF64 image; Multiboot needs ELF32 (objcopy -O elf32-i386)");
        return false;
    }
    if (eh.e_machine != EM_386 && eh.e_machine != EM_X86_64) {
        error_setg(errp, "kernel is not an x86 ELF image");
        return false;
    }
    if (eh.e_phentsize != sizeof(Elf32_Phdr) || eh.e_phnum == 0 ||
        eh.e_phoff > len || (size_t)eh.e_phnum * sizeof(Elf32_Phdr) > len - eh.e_phoff) {
        error_setg(errp, "kernel has a malformed ELF program header table");
        return false;
    }
    *kend = 0;
    for (int i = 0; i < eh.e_phnum; i++) {
        Elf32_Phdr ph;
        memcpy(&ph, img + eh.e_phoff + (size_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD || ph.p_memsz == 0) {
            continue;
        }
        if (ph.p_offset > len || ph.p_filesz > len - ph.p_offset) {
            error_setg(errp, "kernel ELF segment %d lies outside the file", i);
            return false;
        }
        if (!load_segment(ms, ph.p_paddr, img + ph.p_offset, ph.p_filesz, ph.p_memsz, errp)) {
            return false;
        }
        *kend = MAX(*kend, (uint64_t)ph.p_paddr + ph.p_memsz);
    }
    if (*kend == 0) {
        error_setg(errp, "kernel has no loadable ELF segment");
        return false;
    }
    *entry = eh.e_entry;
    return true;
}

static bool load_aout(Machine *ms, const uint8_t *img, size_t len, size_t hdr_off,
                      uint32_t *entry, uint64_t *kend, GError **errp)
{
    uint32_t header_addr = le32_load(img + hdr_off + 12);
    uint32_t load_addr = le32_load(img + hdr_off + 16);
    uint32_t load_end = le32_load(img + hdr_off + 20);
    uint32_t bss_end = le32_load(img + hdr_off + 24);
    uint64_t file_off, load_len, mem_len;

    if (header_addr < load_addr || header_addr - load_addr > hdr_off) {
        error_setg(errp, "kernel Multiboot header has inconsistent addresses");
        return false;
    }
    file_off = hdr_off - (header_addr - load_addr);
    load_len = load_end ? (uint64_t)load_end - load_addr : len - file_off;
    if (load_end && load_end < load_addr) {
        error_setg(errp, "kernel Multiboot header has load_end_addr below load_addr");
        return false;
    }
    if (load_len > len - file_off) {
        error_setg(errp, "kernel file is shorter than its Multiboot header says");
        return false;
    }
    mem_len = bss_end ? (uint64_t)bss_end - load_addr : load_len;
    if (mem_len < load_len) {
        error_setg(errp, "kernel Multiboot header has bss_end_addr below load_end_addr");
        return false;
    }
    if (!load_segment(ms, load_addr, img + file_off, load_len, mem_len, errp)) {
        return false;
    }
    *entry = le32_load(img + hdr_off + 28);
    *kend = load_addr + mem_len;
    return true;
}

typedef struct MBMmapEntry {
    uint32_t size;
    uint64_t base;
    uint64_t len;
    uint32_t type;
} __attribute__((packed)) MBMmapEntry;

static bool write_mmap(Machine *ms, uint32_t *mmap_len, GError **errp)
{
    MBMmapEntry e[8];
    int n = 0;
    uint64_t below = 0, above = 0;

    for (int i = 0; i < ms->nr_slots; i++) {
        if (ms->slots[i].gpa == 0) {
            below = ms->slots[i].size;
        } else {
            above = ms->slots[i].size;
        }
    }
#define ADD(b, l, t) e[n++] = (MBMmapEntry){ .size = 20, .base = (b), .len = (l), .type = (t) }
    ADD(0, 0x9FC00, 1);
    ADD(0x9FC00, 0x400, 2);
    ADD(0xF0000, 0x10000, 2);
    if (below > 0x100000) {
        ADD(0x100000, below - 0x100000, 1);
    }
    ADD(0xFEFFC000, 0x4000, 2);    /* KVM identity map and TSS pages */
    if (above) {
        ADD(PC_ABOVE_4G_BASE, above, 1);
    }
#undef ADD
    *mmap_len = (uint32_t)(n * sizeof(MBMmapEntry));
    return machine_ram_write(ms, MB_MMAP_ADDR, e, *mmap_len, errp);
}

bool multiboot_load(Machine *ms, const char *kernel, const char *append,
                    const char *modules, uint32_t *entry, uint32_t *mbi_addr,
                    GError **errp)
{
    g_autofree gchar *img = NULL;
    gsize len;
    g_autoptr(GError) ferr = NULL;
    size_t hdr_off = SIZE_MAX;
    uint64_t kend = 0;

    if (!g_file_get_contents(kernel, &img, &len, &ferr)) {
        error_setg(errp, "could not load kernel '%s': %s", kernel, ferr->message);
        return false;
    }
    for (size_t off = 0; off + 12 <= MIN(len, (gsize)MB_SEARCH_LEN); off += 4) {
        const uint8_t *p = (const uint8_t *)img + off;
        if (le32_load(p) == MB_HEADER_MAGIC && le32_load(p) + le32_load(p + 4) + le32_load(p + 8) == 0) {
            hdr_off = off;
            break;
        }
    }
    if (hdr_off == SIZE_MAX) {
        error_setg(errp, "kernel '%s' has no Multiboot v1 header (only Multiboot kernels can be loaded)",
                   kernel);
        return false;
    }
    uint32_t flags = le32_load((const uint8_t *)img + hdr_off + 4);
    bool ok;
    if (flags & MB_FLAG_AOUT_KLUDGE) {
        if (hdr_off + 32 > len) {
            error_setg(errp, "kernel '%s' has a truncated Multiboot header", kernel);
            return false;
        }
        ok = load_aout(ms, (const uint8_t *)img, len, hdr_off, entry, &kend, errp);
    } else {
        ok = load_elf32(ms, (const uint8_t *)img, len, entry, &kend, errp);
    }
    if (!ok) {
        g_prefix_error(errp, "could not load kernel '%s': ", kernel);
        return false;
    }

    /* Command line: "<kernel> <append>", as QEMU passes it. */
    g_autofree char *cmdline = append && *append ?
        g_strdup_printf("%s %s", kernel, append) : g_strdup(kernel);
    size_t clen = strlen(cmdline) + 1;
    if (clen > MB_CMDLINE_MAX) {
        error_setg(errp, "kernel command line is longer than %u bytes", MB_CMDLINE_MAX - 1);
        return false;
    }
    if (!machine_ram_write(ms, MB_CMDLINE_ADDR, cmdline, clen, errp)) {
        return false;
    }
    static const char loader[] = "godwit";
    if (!machine_ram_write(ms, MB_LOADER_ADDR, loader, sizeof(loader), errp)) {
        return false;
    }

    uint32_t mods_count = 0;
    if (modules && *modules) {
        g_auto(GStrv) mods = g_strsplit(modules, ",", -1);
        uint64_t next = GW_ROUND_UP(kend, 4096);
        uint32_t strpos = MB_MODSTR_ADDR;
        for (int i = 0; mods[i]; i++) {
            g_autofree gchar *data = NULL;
            gsize dlen;
            g_autoptr(GError) merr = NULL;
            g_autofree char *file = g_strdup(mods[i]);
            char *sp = strchr(file, ' ');
            if (sp) {
                *sp = '\0';
            }
            if (i >= MB_MAX_MODULES) {
                error_setg(errp, "too many Multiboot modules (at most %d)", MB_MAX_MODULES);
                return false;
            }
            if (!g_file_get_contents(file, &data, &dlen, &merr)) {
                error_setg(errp, "could not load module '%s': %s", file, merr->message);
                return false;
            }
            size_t slen = strlen(mods[i]) + 1;
            if (strpos + slen > 0x9FC00) {
                error_setg(errp, "Multiboot module names are too long");
                return false;
            }
            if (!machine_gpa_to_hva(ms, next, MAX(dlen, 1))) {
                error_setg(errp, "module '%s' does not fit in guest RAM", file);
                return false;
            }
            uint32_t ent[4] = { (uint32_t)next, (uint32_t)(next + dlen), strpos, 0 };
            if (!machine_ram_write(ms, next, data, dlen, errp) ||
                !machine_ram_write(ms, strpos, mods[i], slen, errp) ||
                !machine_ram_write(ms, MB_MODS_ADDR + 16 * i, ent, sizeof(ent), errp)) {
                return false;
            }
            strpos += (uint32_t)slen;
            next = GW_ROUND_UP(next + dlen, 4096);
            mods_count++;
        }
    }

    uint32_t mmap_len;
    if (!write_mmap(ms, &mmap_len, errp)) {
        return false;
    }
    uint64_t below = ms->slots[0].size;
    uint8_t mbi[88] = { 0 };
    uint32_t mbi_flags = MBI_FLAG_MEM | MBI_FLAG_BOOTDEV | MBI_FLAG_CMDLINE |
                         MBI_FLAG_MMAP | MBI_FLAG_LOADER | (mods_count ? MBI_FLAG_MODS : 0);
    uint32_t fields[][2] = {
        { 0, mbi_flags },
        { 4, 639 },
        { 8, (uint32_t)MIN((below - 0x100000) / 1024, 0xFFFFFFFFULL) },
        { 12, 0x8000FFFF },
        { 16, MB_CMDLINE_ADDR },
        { 20, mods_count },
        { 24, MB_MODS_ADDR },
        { 44, mmap_len },
        { 48, MB_MMAP_ADDR },
        { 64, MB_LOADER_ADDR },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fields); i++) {
        le32_store(mbi + fields[i][0], fields[i][1]);
    }
    if (!machine_ram_write(ms, MB_INFO_ADDR, mbi, sizeof(mbi), errp)) {
        return false;
    }
    *mbi_addr = MB_INFO_ADDR;
    return true;
}
