/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Command-line parsing: the QEMU options godwit users type, with QEMU's
 * spelling (single or double dash, "key=value,..." lists). Pure: it only
 * builds a GodwitOptions; main() acts on it.
 */
#include "qemu/osdep.h"
#include "sysemu/options.h"

typedef enum OptArg { ARG_NONE, ARG_ONE } OptArg;

typedef struct OptDesc {
    const char *name;
    OptArg arg;
    const char *help;
} OptDesc;

static const OptDesc opt_table[] = {
    { "m", ARG_ONE, "[size=]N[kMG]  guest RAM (MiB when unsuffixed)" },
    { "smp", ARG_ONE, "[cpus=]N  number of vCPUs" },
    { "kernel", ARG_ONE, "FILE  Multiboot v1 kernel (ELF32)" },
    { "append", ARG_ONE, "STR  kernel command line" },
    { "initrd", ARG_ONE, "FILE[,FILE...]  Multiboot modules" },
    { "machine", ARG_ONE, "[type=]q35|pc|none[,accel=kvm][,memory-backend=ID]" },
    { "M", ARG_ONE, "same as -machine" },
    { "accel", ARG_ONE, "kvm  (the only accelerator)" },
    { "enable-kvm", ARG_NONE, "same as -accel kvm" },
    { "cpu", ARG_ONE, "host|max  (the vCPU model is always KVM's host model)" },
    { "object", ARG_ONE, "memory-backend-{ram,memfd,file},id=ID,size=N[,share=on|off][,mem-path=P][,prealloc=on|off]" },
    { "numa", ARG_ONE, "node,memdev=ID  (one node)" },
    { "mem-path", ARG_ONE, "PATH  back guest RAM with a file in PATH" },
    { "mem-prealloc", ARG_NONE, "preallocate guest RAM" },
    { "serial", ARG_ONE, "stdio|file:P|unix:P,server=on,wait=off|tcp:H:P,server=on,wait=off|chardev:ID|null|none" },
    { "chardev", ARG_ONE, "socket|file|stdio|null,id=ID,..." },
    { "qmp", ARG_ONE, "unix:P,server=on,wait=off|tcp:H:P,server=on,wait=off" },
    { "mon", ARG_ONE, "chardev=ID[,mode=control|readline]" },
    { "monitor", ARG_ONE, "stdio|unix:P,server=on,wait=off|chardev:ID|none" },
    { "nographic", ARG_NONE, "serial and monitor multiplexed on stdio (C-a c switches)" },
    { "display", ARG_ONE, "none" },
    { "vga", ARG_ONE, "none" },
    { "nodefaults", ARG_NONE, "create no default devices" },
    { "no-user-config", ARG_NONE, "(accepted; godwit reads no config files)" },
    { "name", ARG_ONE, "[guest=]NAME[,debug-threads=on]" },
    { "S", ARG_NONE, "do not start the guest at startup" },
    { "incoming", ARG_ONE, "tcp:H:P|unix:P|fd:NAME|exec:CMD|defer  wait for a migration" },
    { "device", ARG_ONE, "virtio-net-pci,netdev=ID[,mac=52:54:00:xx:xx:xx][,addr=SLOT] | isa-debug-exit[,iobase=0x501] (always present)" },
    { "netdev", ARG_ONE, "vhost-user,id=ID,chardev=CHR[,queues=1]  (CHR: -chardev socket,id=CHR,path=P[,server=on][,reconnect=S])" },
    { "no-reboot", ARG_NONE, "exit instead of rebooting" },
    { "no-shutdown", ARG_NONE, "stop instead of exiting on guest shutdown" },
    { "realtime", ARG_ONE, "mlock=on|off" },
    { "overcommit", ARG_ONE, "mem-lock=on|off" },
    { "pidfile", ARG_ONE, "FILE  write the process id to FILE" },
    { "help", ARG_NONE, "print this help" },
    { "h", ARG_NONE, "print this help" },
    { "version", ARG_NONE, "print the version" },
};

static const OptDesc *opt_find(const char *name)
{
    for (size_t i = 0; i < G_N_ELEMENTS(opt_table); i++) {
        if (strcmp(opt_table[i].name, name) == 0) {
            return &opt_table[i];
        }
    }
    return NULL;
}

bool parse_size(const char *s, uint64_t *out, GError **errp)
{
    char *end;
    uint64_t mult = 1;

    if (!s || !*s || *s == '-' || !g_ascii_isdigit(*s)) {
        error_setg(errp, "invalid size '%s'", s ? s : "");
        return false;
    }
    errno = 0;
    double v = g_ascii_strtod(s, &end);
    if (errno || end == s) {
        error_setg(errp, "invalid size '%s'", s);
        return false;
    }
    switch (*end) {
    case '\0': break;
    case 'b': case 'B': mult = 1; end++; break;
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    case 't': case 'T': mult = 1ULL << 40; end++; break;
    default:
        error_setg(errp, "invalid size '%s'", s);
        return false;
    }
    if (*end != '\0' || v < 0 || v * (double)mult >= 18446744073709549568.0) {
        error_setg(errp, "invalid size '%s'", s);
        return false;
    }
    *out = (uint64_t)(v * (double)mult);
    return true;
}

bool parse_ram_size(const char *s, uint64_t *out, GError **errp)
{
    uint64_t v;

    if (!parse_size(s, &v, errp)) {
        return false;
    }
    /* -m without a suffix means MiB. */
    if (g_ascii_isdigit(s[strlen(s) - 1])) {
        if (v > (UINT64_MAX >> 20)) {
            error_setg(errp, "invalid size '%s'", s);
            return false;
        }
        v <<= 20;
    }
    *out = v;
    return true;
}

bool parse_bool_opt(const char *name, const char *s, bool *out, GError **errp)
{
    if (!s || !strcmp(s, "on") || !strcmp(s, "yes") || !strcmp(s, "true")) {
        *out = true;
    } else if (!strcmp(s, "off") || !strcmp(s, "no") || !strcmp(s, "false")) {
        *out = false;
    } else {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
        return false;
    }
    return true;
}

GHashTable *keyval_parse(const char *s, const char *implied_key, GError **errp)
{
    g_autoptr(GHashTable) h = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                    g_free, g_free);
    const char *p = s;
    bool first = true;

    while (*p) {
        /* ",," is an escaped comma inside a value, as in QEMU. */
        GString *item = g_string_new(NULL);
        while (*p) {
            if (*p == ',') {
                if (p[1] == ',') {
                    g_string_append_c(item, ',');
                    p += 2;
                    continue;
                }
                break;
            }
            g_string_append_c(item, *p++);
        }
        if (*p == ',') {
            p++;
        }
        char *eq = strchr(item->str, '=');
        if (!eq) {
            if (first && implied_key) {
                g_hash_table_replace(h, g_strdup(implied_key),
                                     g_string_free(item, FALSE));
                first = false;
                continue;
            }
            if (!item->len) {
                error_setg(errp, "empty item in '%s'", s);
                g_string_free(item, TRUE);
                return NULL;
            }
            /* A bare flag: "server", "nowait" (old spellings). */
            g_hash_table_replace(h, g_string_free(item, FALSE), g_strdup("on"));
            first = false;
            continue;
        }
        *eq = '\0';
        if (!item->str[0]) {
            error_setg(errp, "missing key before '=' in '%s'", s);
            g_string_free(item, TRUE);
            return NULL;
        }
        g_hash_table_replace(h, g_strdup(item->str), g_strdup(eq + 1));
        g_string_free(item, TRUE);
        first = false;
    }
    return g_steal_pointer(&h);
}

static void mem_backend_free(gpointer p)
{
    MemBackendOpts *m = p;
    g_free(m->id);
    g_free(m->mem_path);
    g_free(m);
}

static void netdev_free(gpointer p)
{
    NetdevOpts *n = p;
    g_free(n->id);
    g_free(n->chardev);
    g_free(n->path);
    g_free(n);
}

static void net_device_free(gpointer p)
{
    NetDeviceOpts *d = p;
    g_free(d->id);
    g_free(d->netdev);
    g_free(d);
}

void godwit_options_free(GodwitOptions *o)
{
    if (!o) {
        return;
    }
    g_free(o->kernel);
    g_free(o->append);
    g_free(o->initrd);
    g_free(o->machine_type);
    g_free(o->memory_backend);
    g_ptr_array_unref(o->objects);
    g_ptr_array_unref(o->serials);
    g_ptr_array_unref(o->chardevs);
    g_ptr_array_unref(o->qmps);
    g_ptr_array_unref(o->mons);
    g_ptr_array_unref(o->monitors);
    g_free(o->name);
    g_free(o->incoming);
    g_free(o->pidfile);
    g_ptr_array_unref(o->netdevs);
    g_ptr_array_unref(o->net_devices);
    g_free(o);
}

/* Reject keys we do not know, naming the first one. */
static bool check_keys(GHashTable *kv, const char *opt, const char *const *known,
                       GError **errp)
{
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, kv);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        bool ok = false;
        for (int i = 0; known[i]; i++) {
            if (!strcmp(known[i], k)) {
                ok = true;
                break;
            }
        }
        if (!ok) {
            error_setg(errp, "-%s: unknown parameter '%s'", opt, (char *)k);
            return false;
        }
    }
    return true;
}

static bool parse_object(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = {
        "qom-type", "id", "size", "share", "mem-path", "prealloc", "hugetlb",
        "hugetlbsize", "seal", "merge", "dump", "reserve", "prealloc-threads",
        "policy", "host-nodes", "discard-data", "align", "readonly", NULL
    };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "qom-type", errp);
    const char *type, *v;

    if (!kv) {
        g_prefix_error(errp, "-object: ");
        return false;
    }
    if (!check_keys(kv, "object", known, errp)) {
        return false;
    }
    type = g_hash_table_lookup(kv, "qom-type");
    g_autofree MemBackendOpts *m = g_new0(MemBackendOpts, 1);
    if (!g_strcmp0(type, "memory-backend-ram")) {
        m->type = MEM_BACKEND_RAM;
    } else if (!g_strcmp0(type, "memory-backend-memfd")) {
        m->type = MEM_BACKEND_MEMFD;
        m->share = true;        /* memfd is shared by default, as in QEMU */
    } else if (!g_strcmp0(type, "memory-backend-file")) {
        m->type = MEM_BACKEND_FILE;
    } else {
        error_setg(errp, "-object: unsupported object type '%s'", type ? type : "");
        return false;
    }
    v = g_hash_table_lookup(kv, "id");
    if (!v || !*v) {
        error_setg(errp, "-object %s: parameter 'id' is missing", type);
        return false;
    }
    for (guint i = 0; i < o->objects->len; i++) {
        MemBackendOpts *other = g_ptr_array_index(o->objects, i);
        if (!strcmp(other->id, v)) {
            error_setg(errp, "-object: duplicate id '%s'", v);
            return false;
        }
    }
    m->id = g_strdup(v);
    v = g_hash_table_lookup(kv, "size");
    if (!v) {
        error_setg(errp, "-object %s: parameter 'size' is missing", m->id);
        goto fail;
    }
    if (!parse_size(v, &m->size, errp)) {
        g_prefix_error(errp, "-object %s: ", m->id);
        goto fail;
    }
    if (m->size == 0) {
        error_setg(errp, "-object %s: size must not be zero", m->id);
        goto fail;
    }
    if ((v = g_hash_table_lookup(kv, "share"))) {
        if (!parse_bool_opt("share", v, &m->share, errp)) {
            goto fail;
        }
        m->share_set = true;
    }
    if ((v = g_hash_table_lookup(kv, "prealloc")) &&
        !parse_bool_opt("prealloc", v, &m->prealloc, errp)) {
        goto fail;
    }
    if ((v = g_hash_table_lookup(kv, "hugetlb")) &&
        !parse_bool_opt("hugetlb", v, &m->hugetlb, errp)) {
        goto fail;
    }
    if ((v = g_hash_table_lookup(kv, "hugetlbsize")) &&
        !parse_size(v, &m->hugetlbsize, errp)) {
        goto fail;
    }
    v = g_hash_table_lookup(kv, "mem-path");
    if (m->type == MEM_BACKEND_FILE) {
        if (!v || !*v) {
            error_setg(errp, "-object %s: parameter 'mem-path' is missing", m->id);
            goto fail;
        }
        m->mem_path = g_strdup(v);
    } else if (v) {
        error_setg(errp, "-object %s: 'mem-path' is only valid for memory-backend-file",
                   m->id);
        goto fail;
    }
    g_ptr_array_add(o->objects, g_steal_pointer(&m));
    return true;
fail:
    g_free(m->id);
    g_free(m->mem_path);
    return false;
}

static bool parse_machine(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = {
        "type", "accel", "memory-backend", "kernel-irqchip", "dump-guest-core",
        "mem-merge", "usb", "vmport", "smm", "graphics", NULL
    };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "type", errp);
    const char *v;

    if (!kv) {
        g_prefix_error(errp, "-machine: ");
        return false;
    }
    if (!check_keys(kv, "machine", known, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "type"))) {
        /* QEMU's versioned names (pc-q35-7.2, pc-i440fx-7.2) map to the same machine. */
        if (!strcmp(v, "q35") || g_str_has_prefix(v, "pc-q35")) {
            v = "q35";
        } else if (!strcmp(v, "pc") || g_str_has_prefix(v, "pc-i440fx")) {
            v = "pc";
        } else if (strcmp(v, "none") != 0) {
            error_setg(errp, "-machine: unsupported machine type '%s' (use q35, pc or none)", v);
            return false;
        }
        g_free(o->machine_type);
        o->machine_type = g_strdup(v);
    }
    if ((v = g_hash_table_lookup(kv, "accel")) && strcmp(v, "kvm") != 0) {
        error_setg(errp, "-machine: accelerator '%s' is not supported (only kvm)", v);
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "memory-backend"))) {
        g_free(o->memory_backend);
        o->memory_backend = g_strdup(v);
    }
    return true;
}

static bool parse_smp(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = {
        "cpus", "maxcpus", "sockets", "dies", "cores", "threads", NULL
    };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "cpus", errp);
    uint64_t cpus = 0, prod = 1;
    const char *v;
    char *end;

    if (!kv) {
        g_prefix_error(errp, "-smp: ");
        return false;
    }
    if (!check_keys(kv, "smp", known, errp)) {
        return false;
    }
    static const char *const topo[] = { "sockets", "dies", "cores", "threads" };
    bool have_topo = false;
    for (size_t i = 0; i < G_N_ELEMENTS(topo); i++) {
        if ((v = g_hash_table_lookup(kv, topo[i]))) {
            uint64_t n = g_ascii_strtoull(v, &end, 10);
            if (*end || !*v || n == 0 || n > 256) {
                error_setg(errp, "-smp: invalid %s '%s'", topo[i], v);
                return false;
            }
            prod *= n;
            have_topo = true;
        }
    }
    if ((v = g_hash_table_lookup(kv, "cpus"))) {
        cpus = g_ascii_strtoull(v, &end, 10);
        if (*end || !*v) {
            error_setg(errp, "-smp: invalid number of CPUs '%s'", v);
            return false;
        }
    } else if (have_topo) {
        cpus = prod;
    }
    if (cpus < 1 || cpus > 64) {
        error_setg(errp, "-smp: the number of CPUs must be between 1 and 64");
        return false;
    }
    if (have_topo && prod != cpus) {
        error_setg(errp, "-smp: topology (%" PRIu64 " CPUs) does not match cpus=%" PRIu64,
                   prod, cpus);
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "maxcpus"))) {
        uint64_t maxc = g_ascii_strtoull(v, &end, 10);
        if (*end || maxc != cpus) {
            error_setg(errp, "-smp: CPU hotplug is not supported (maxcpus must equal cpus)");
            return false;
        }
    }
    o->smp_cpus = (int)cpus;
    return true;
}

static bool parse_m(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = { "size", "slots", "maxmem", NULL };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "size", errp);
    const char *v;

    if (!kv) {
        g_prefix_error(errp, "-m: ");
        return false;
    }
    if (!check_keys(kv, "m", known, errp)) {
        return false;
    }
    v = g_hash_table_lookup(kv, "size");
    if (!v) {
        error_setg(errp, "-m: missing size");
        return false;
    }
    if (!parse_ram_size(v, &o->ram_size, errp)) {
        g_prefix_error(errp, "-m: ");
        return false;
    }
    if (o->ram_size < (2ULL << 20)) {
        error_setg(errp, "-m: guest RAM must be at least 2 MiB");
        return false;
    }
    if (o->ram_size > (1ULL << 40)) {
        error_setg(errp, "-m: guest RAM of more than 1 TiB is not supported");
        return false;
    }
    if (o->ram_size % GW_PAGE_SIZE) {
        error_setg(errp, "-m: size must be a multiple of 4 KiB");
        return false;
    }
    return true;
}

static bool parse_numa(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = { "type", "memdev", "nodeid", "cpus", NULL };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "type", errp);
    const char *v;

    if (!kv) {
        g_prefix_error(errp, "-numa: ");
        return false;
    }
    if (!check_keys(kv, "numa", known, errp)) {
        return false;
    }
    if (g_strcmp0(g_hash_table_lookup(kv, "type"), "node") != 0) {
        error_setg(errp, "-numa: only 'node' is supported");
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "nodeid")) && strcmp(v, "0") != 0) {
        error_setg(errp, "-numa: only one NUMA node (nodeid=0) is supported");
        return false;
    }
    v = g_hash_table_lookup(kv, "memdev");
    if (!v) {
        error_setg(errp, "-numa: parameter 'memdev' is missing");
        return false;
    }
    if (o->memory_backend && strcmp(o->memory_backend, v) != 0) {
        error_setg(errp, "-numa: only one NUMA node is supported");
        return false;
    }
    g_free(o->memory_backend);
    o->memory_backend = g_strdup(v);
    return true;
}

static bool parse_name(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = { "guest", "process", "debug-threads", NULL };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "guest", errp);

    if (!kv) {
        g_prefix_error(errp, "-name: ");
        return false;
    }
    if (!check_keys(kv, "name", known, errp)) {
        return false;
    }
    g_free(o->name);
    o->name = g_strdup(g_hash_table_lookup(kv, "guest"));
    return true;
}

/* "52:54:00:12:34:56" */
static bool parse_mac(const char *s, uint8_t mac[6])
{
    for (int i = 0; i < 6; i++) {
        if (!g_ascii_isxdigit(s[0]) || !g_ascii_isxdigit(s[1]) ||
            (i < 5 ? s[2] != ':' : s[2] != '\0')) {
            return false;
        }
        mac[i] = (uint8_t)(g_ascii_xdigit_value(s[0]) << 4 | g_ascii_xdigit_value(s[1]));
        s += 3;
    }
    return true;
}

/* QEMU's addr= spelling: a hex slot, optionally ".function" ("3", "0x3", "03.0"). */
static bool parse_pci_addr(const char *s, int *slot, GError **errp)
{
    char *end;
    uint64_t sl, fn = 0;

    errno = 0;
    sl = g_ascii_strtoull(s, &end, 16);
    if (end == s || errno) {
        goto bad;
    }
    if (*end == '.') {
        const char *f = end + 1;
        fn = g_ascii_strtoull(f, &end, 16);
        if (end == f) {
            goto bad;
        }
    }
    if (*end) {
        goto bad;
    }
    if (sl >= 32 || fn >= 8) {
        error_setg(errp, "-device virtio-net-pci: addr '%s' is out of range (slot 0x0-0x1f)", s);
        return false;
    }
    if (fn) {
        error_setg(errp, "-device virtio-net-pci: only PCI function 0 is supported (addr '%s')", s);
        return false;
    }
    *slot = (int)sl;
    return true;
bad:
    error_setg(errp, "Property 'virtio-net-pci.addr' doesn't take value '%s'", s);
    return false;
}

static bool parse_queue_size(GHashTable *kv, const char *key, uint16_t *out, GError **errp)
{
    const char *v = g_hash_table_lookup(kv, key);
    char *end;

    *out = 256;
    if (!v) {
        return true;
    }
    uint64_t n = g_ascii_strtoull(v, &end, 0);
    /* QEMU's range for a vhost-user NIC: a power of two from 256 to 1024. */
    if (!*v || *end || n < 256 || n > 1024 || (n & (n - 1))) {
        error_setg(errp, "-device virtio-net-pci: invalid %s=%s: must be a power of 2 "
                   "between 256 and 1024", key, v);
        return false;
    }
    *out = (uint16_t)n;
    return true;
}

static bool parse_virtio_net_pci(GodwitOptions *o, GHashTable *kv, GError **errp)
{
    static const char *const known[] = {
        "driver", "id", "netdev", "mac", "addr", "bus", "vectors", "disable-legacy",
        "disable-modern", "romfile", "rombar", "mq", "rx_queue_size", "tx_queue_size",
        "multifunction", NULL
    };
    const char *v;

    if (!check_keys(kv, "device", known, errp)) {
        return false;
    }
    g_autoptr(GPtrArray) keep = g_ptr_array_new_with_free_func(net_device_free);
    NetDeviceOpts *d = g_new0(NetDeviceOpts, 1);
    g_ptr_array_add(keep, d);
    d->slot = -1;
    d->id = g_strdup(g_hash_table_lookup(kv, "id"));
    v = g_hash_table_lookup(kv, "netdev");
    if (!v || !*v) {
        error_setg(errp, "-device virtio-net-pci: parameter 'netdev' is missing (godwit's "
                   "only network back-end is -netdev vhost-user)");
        return false;
    }
    d->netdev = g_strdup(v);
    if ((v = g_hash_table_lookup(kv, "mac"))) {
        if (!parse_mac(v, d->mac) || (d->mac[0] & 1)) {
            error_setg(errp, "Property 'virtio-net-pci.mac' doesn't take value '%s'", v);
            return false;
        }
        d->mac_set = true;
    }
    if ((v = g_hash_table_lookup(kv, "addr")) && !parse_pci_addr(v, &d->slot, errp)) {
        return false;
    }
    if ((v = g_hash_table_lookup(kv, "bus")) && strcmp(v, "pcie.0") && strcmp(v, "pci.0")) {
        error_setg(errp, "-device virtio-net-pci: bus '%s' not found (godwit has one PCI "
                   "bus, pcie.0)", v);
        return false;
    }
    /* Only what this device is: virtio 1.x, no legacy interface, one queue pair. */
    static const struct { const char *key; bool must_be; const char *why; } fixed[] = {
        { "disable-legacy", true, "legacy virtio is not supported (the device is virtio 1.x only)" },
        { "disable-modern", false, "disable-modern=on is not supported (the device is virtio 1.x only)" },
        { "mq", false, "multiqueue is not supported (mq=off)" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(fixed); i++) {
        bool b;
        v = g_hash_table_lookup(kv, fixed[i].key);
        if (!v || !strcmp(v, "auto")) {
            continue;
        }
        if (!parse_bool_opt(fixed[i].key, v, &b, errp)) {
            return false;
        }
        if (b != fixed[i].must_be) {
            error_setg(errp, "-device virtio-net-pci: %s", fixed[i].why);
            return false;
        }
    }
    if (!parse_queue_size(kv, "rx_queue_size", &d->rx_queue_size, errp) ||
        !parse_queue_size(kv, "tx_queue_size", &d->tx_queue_size, errp)) {
        return false;
    }
    /* vectors=, romfile=, rombar=: accepted for QEMU users; there is no MSI-X and no ROM. */
    g_ptr_array_add(o->net_devices, g_ptr_array_steal_index(keep, 0));
    return true;
}

static bool parse_netdev(GodwitOptions *o, const char *arg, GError **errp)
{
    static const char *const known[] = {
        "type", "id", "chardev", "queues", "vhostforce", NULL
    };
    g_autoptr(GHashTable) kv = keyval_parse(arg, "type", errp);
    const char *v, *type;

    if (!kv) {
        g_prefix_error(errp, "-netdev: ");
        return false;
    }
    type = g_hash_table_lookup(kv, "type");
    if (g_strcmp0(type, "vhost-user") != 0) {
        error_setg(errp, "-netdev %s: only vhost-user network back-ends are supported",
                   type ? type : "");
        return false;
    }
    if (!check_keys(kv, "netdev", known, errp)) {
        return false;
    }
    v = g_hash_table_lookup(kv, "id");
    if (!v || !*v) {
        error_setg(errp, "-netdev vhost-user: Parameter 'id' is missing");
        return false;
    }
    for (guint i = 0; i < o->netdevs->len; i++) {
        NetdevOpts *other = g_ptr_array_index(o->netdevs, i);
        if (!strcmp(other->id, v)) {
            error_setg(errp, "-netdev: Duplicate ID '%s' for netdev", v);
            return false;
        }
    }
    const char *chr = g_hash_table_lookup(kv, "chardev");
    if (!chr || !*chr) {
        error_setg(errp, "-netdev vhost-user,id=%s: Parameter 'chardev' is missing", v);
        return false;
    }
    uint32_t queues = 1;
    if ((v = g_hash_table_lookup(kv, "queues"))) {
        char *end;
        uint64_t q = g_ascii_strtoull(v, &end, 0);
        if (!*v || *end || q != 1) {
            error_setg(errp, "-netdev vhost-user: queues=%s: only one queue pair is "
                       "supported (no multiqueue)", v);
            return false;
        }
        queues = (uint32_t)q;
    }
    NetdevOpts *n = g_new0(NetdevOpts, 1);
    n->id = g_strdup(g_hash_table_lookup(kv, "id"));
    n->chardev = g_strdup(chr);
    n->queues = queues;
    g_ptr_array_add(o->netdevs, n);
    return true;
}

/*
 * A vhost-user netdev's -chardev: a unix socket, taken out of the chardev
 * list (the chardev layer carries bytes, vhost-user needs SCM_RIGHTS).
 */
static bool bind_netdev_chardev(GodwitOptions *o, NetdevOpts *n, GError **errp)
{
    static const char *const known[] = {
        "backend", "id", "path", "server", "wait", "reconnect", "nodelay", "logfile",
        "logappend", "telnet", "tn3270", "websocket", "mux", NULL
    };

    for (guint i = 0; i < o->chardevs->len; i++) {
        const char *spec = g_ptr_array_index(o->chardevs, i);
        g_autoptr(GHashTable) kv = keyval_parse(spec, "backend", NULL);
        const char *v;
        bool wait = true;

        if (!kv || g_strcmp0(g_hash_table_lookup(kv, "id"), n->chardev) != 0) {
            continue;
        }
        if (g_strcmp0(g_hash_table_lookup(kv, "backend"), "socket") != 0 ||
            !g_hash_table_lookup(kv, "path")) {
            error_setg(errp, "-netdev vhost-user,id=%s: chardev \"%s\" is not a unix socket",
                       n->id, n->chardev);
            return false;
        }
        if (!check_keys(kv, "chardev", known, errp)) {
            return false;
        }
        n->path = g_strdup(g_hash_table_lookup(kv, "path"));
        if (!*n->path) {
            error_setg(errp, "-chardev %s: empty path", n->chardev);
            return false;
        }
        if ((v = g_hash_table_lookup(kv, "server")) &&
            !parse_bool_opt("server", v, &n->server, errp)) {
            return false;
        }
        /* wait= is accepted: a vhost-user netdev waits for its back-end either way. */
        if ((v = g_hash_table_lookup(kv, "wait")) && !parse_bool_opt("wait", v, &wait, errp)) {
            return false;
        }
        if ((v = g_hash_table_lookup(kv, "reconnect"))) {
            char *end;
            uint64_t secs = g_ascii_strtoull(v, &end, 10);
            if (!*v || *end || secs > 3600) {
                error_setg(errp, "-chardev %s: invalid reconnect=%s (seconds, 0 to 3600)",
                           n->chardev, v);
                return false;
            }
            if (secs && n->server) {
                error_setg(errp, "-chardev %s: 'reconnect' option is incompatible with "
                           "socket in server listen mode", n->chardev);
                return false;
            }
            n->reconnect = (uint32_t)secs;
        }
        g_ptr_array_remove_index(o->chardevs, i);
        return true;
    }
    error_setg(errp, "-netdev vhost-user,id=%s: chardev \"%s\" not found", n->id, n->chardev);
    return false;
}

/* Chardevs to netdevs, devices to netdevs, default MACs as QEMU gives them. */
static bool resolve_network(GodwitOptions *o, GError **errp)
{
    for (guint i = 0; i < o->netdevs->len; i++) {
        if (!bind_netdev_chardev(o, g_ptr_array_index(o->netdevs, i), errp)) {
            return false;
        }
    }
    for (guint i = 0; i < o->net_devices->len; i++) {
        NetDeviceOpts *d = g_ptr_array_index(o->net_devices, i);
        bool found = false;
        for (guint j = 0; j < o->netdevs->len; j++) {
            found |= !strcmp(((NetdevOpts *)g_ptr_array_index(o->netdevs, j))->id, d->netdev);
        }
        if (!found) {
            error_setg(errp, "Property 'virtio-net-pci.netdev' can't find value '%s'",
                       d->netdev);
            return false;
        }
        for (guint j = 0; j < i; j++) {
            NetDeviceOpts *e = g_ptr_array_index(o->net_devices, j);
            if (!strcmp(e->netdev, d->netdev)) {
                error_setg(errp, "Property 'virtio-net-pci.netdev' can't take value '%s', "
                           "it's in use", d->netdev);
                return false;
            }
            if (d->slot >= 0 && d->slot == e->slot) {
                error_setg(errp, "PCI: slot %d function 0 not available for virtio-net-pci, "
                           "in use by virtio-net-pci", d->slot);
                return false;
            }
        }
        if (d->slot == 0) {
            error_setg(errp, "PCI: slot 0 function 0 not available for virtio-net-pci, in "
                       "use by the host bridge");
            return false;
        }
        if (!d->mac_set) {
            /* QEMU's default: 52:54:00:12:34:56, then :57, ... per NIC. */
            static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
            memcpy(d->mac, base, 6);
            d->mac[5] = (uint8_t)(base[5] + i);
        }
    }
    return true;
}

static bool parse_device(GodwitOptions *o, const char *arg, GError **errp)
{
    g_autoptr(GHashTable) kv = keyval_parse(arg, "driver", errp);
    const char *v;

    if (!kv) {
        g_prefix_error(errp, "-device: ");
        return false;
    }
    if (!g_strcmp0(g_hash_table_lookup(kv, "driver"), "virtio-net-pci")) {
        return parse_virtio_net_pci(o, kv, errp);
    }
    if (g_strcmp0(g_hash_table_lookup(kv, "driver"), "isa-debug-exit") != 0) {
        error_setg(errp, "-device: unsupported device '%s'",
                   (char *)g_hash_table_lookup(kv, "driver"));
        return false;
    }
    static const char *const known[] = { "driver", "iobase", "iosize", NULL };
    if (!check_keys(kv, "device", known, errp)) {
        return false;
    }
    v = g_hash_table_lookup(kv, "iobase");
    if (v && g_ascii_strtoull(v, NULL, 0) != 0x501) {
        error_setg(errp, "-device isa-debug-exit: only iobase=0x501 is supported");
        return false;
    }
    return true;
}

static void print_help(void)
{
    printf("usage: godwit [options]\n\nA KVM x86-64 VMM built for live migration. Options (QEMU spelling):\n");
    for (size_t i = 0; i < G_N_ELEMENTS(opt_table); i++) {
        printf("  -%-14s %s\n", opt_table[i].name, opt_table[i].help);
    }
}

GodwitOptions *godwit_options_parse(int argc, char **argv, bool *exit_now,
                                    GError **errp)
{
    GodwitOptions *o = g_new0(GodwitOptions, 1);
    const char *mem_path = NULL;
    bool mem_prealloc = false;

    *exit_now = false;
    o->ram_size = 128ULL << 20;
    o->smp_cpus = 1;
    o->machine_type = g_strdup("q35");
    o->objects = g_ptr_array_new_with_free_func(mem_backend_free);
    o->serials = g_ptr_array_new_with_free_func(g_free);
    o->chardevs = g_ptr_array_new_with_free_func(g_free);
    o->qmps = g_ptr_array_new_with_free_func(g_free);
    o->mons = g_ptr_array_new_with_free_func(g_free);
    o->monitors = g_ptr_array_new_with_free_func(g_free);
    o->netdevs = g_ptr_array_new_with_free_func(netdev_free);
    o->net_devices = g_ptr_array_new_with_free_func(net_device_free);

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *name;
        const char *arg = NULL;

        if (a[0] != '-' || a[1] == '\0') {
            error_setg(errp, "unexpected argument '%s' (options start with '-')", a);
            goto fail;
        }
        name = a + (a[1] == '-' ? 2 : 1);
        const OptDesc *d = opt_find(name);
        if (!d) {
            error_setg(errp, "invalid option '%s'", a);
            goto fail;
        }
        if (d->arg == ARG_ONE) {
            if (i + 1 >= argc) {
                error_setg(errp, "option '%s' requires an argument", a);
                goto fail;
            }
            arg = argv[++i];
        }

        if (!strcmp(name, "m")) {
            if (!parse_m(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "smp")) {
            if (!parse_smp(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "kernel")) {
            g_free(o->kernel);
            o->kernel = g_strdup(arg);
        } else if (!strcmp(name, "append")) {
            g_free(o->append);
            o->append = g_strdup(arg);
        } else if (!strcmp(name, "initrd")) {
            g_free(o->initrd);
            o->initrd = g_strdup(arg);
        } else if (!strcmp(name, "machine") || !strcmp(name, "M")) {
            if (!parse_machine(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "accel")) {
            g_autoptr(GHashTable) kv = keyval_parse(arg, "accel", errp);
            if (!kv) {
                goto fail;
            }
            if (g_strcmp0(g_hash_table_lookup(kv, "accel"), "kvm") != 0) {
                error_setg(errp, "-accel: accelerator '%s' is not supported (only kvm)",
                           (char *)g_hash_table_lookup(kv, "accel"));
                goto fail;
            }
        } else if (!strcmp(name, "enable-kvm") || !strcmp(name, "no-user-config")) {
            /* KVM is the only accelerator; nothing to do. */
        } else if (!strcmp(name, "cpu")) {
            if (strcmp(arg, "host") && strcmp(arg, "max") &&
                !g_str_has_prefix(arg, "host,") && !g_str_has_prefix(arg, "max,")) {
                error_setg(errp, "-cpu: unsupported CPU model '%s' (use host)", arg);
                goto fail;
            }
        } else if (!strcmp(name, "object")) {
            if (!parse_object(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "numa")) {
            if (!parse_numa(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "mem-path")) {
            mem_path = arg;
        } else if (!strcmp(name, "mem-prealloc")) {
            mem_prealloc = true;
        } else if (!strcmp(name, "serial")) {
            g_ptr_array_add(o->serials, g_strdup(arg));
        } else if (!strcmp(name, "chardev")) {
            g_ptr_array_add(o->chardevs, g_strdup(arg));
        } else if (!strcmp(name, "qmp")) {
            g_ptr_array_add(o->qmps, g_strdup(arg));
        } else if (!strcmp(name, "mon")) {
            g_ptr_array_add(o->mons, g_strdup(arg));
        } else if (!strcmp(name, "monitor")) {
            g_ptr_array_add(o->monitors, g_strdup(arg));
        } else if (!strcmp(name, "nographic")) {
            o->nographic = true;
        } else if (!strcmp(name, "display") || !strcmp(name, "vga")) {
            if (strcmp(arg, "none") != 0) {
                error_setg(errp, "-%s: only 'none' is supported", name);
                goto fail;
            }
            o->display_none = true;
        } else if (!strcmp(name, "nodefaults")) {
            o->nodefaults = true;
        } else if (!strcmp(name, "name")) {
            if (!parse_name(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "S")) {
            o->start_paused = true;
        } else if (!strcmp(name, "incoming")) {
            if (!*arg) {
                error_setg(errp, "-incoming: empty URI");
                goto fail;
            }
            g_free(o->incoming);
            o->incoming = g_strdup(arg);
        } else if (!strcmp(name, "device")) {
            if (!parse_device(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "netdev")) {
            if (!parse_netdev(o, arg, errp)) {
                goto fail;
            }
        } else if (!strcmp(name, "no-reboot")) {
            o->no_reboot = true;
        } else if (!strcmp(name, "no-shutdown")) {
            o->no_shutdown = true;
        } else if (!strcmp(name, "realtime") || !strcmp(name, "overcommit")) {
            /*
             * mlock is refused: it prefaults guest RAM, which defeats lazy
             * allocation and postcopy (userfaultfd only sees missing pages).
             */
            g_autoptr(GHashTable) kv = keyval_parse(arg, NULL, errp);
            const char *v;
            bool on = false;
            if (!kv) {
                goto fail;
            }
            v = g_hash_table_lookup(kv, !strcmp(name, "realtime") ? "mlock" : "mem-lock");
            if (v && !parse_bool_opt("mlock", v, &on, errp)) {
                goto fail;
            }
            if (on) {
                error_setg(errp, "-%s: locking guest memory is not supported", name);
                goto fail;
            }
        } else if (!strcmp(name, "pidfile")) {
            g_free(o->pidfile);
            o->pidfile = g_strdup(arg);
        } else if (!strcmp(name, "help") || !strcmp(name, "h")) {
            print_help();
            *exit_now = true;
            return o;
        } else if (!strcmp(name, "version")) {
            printf("godwit version " GW_VERSION_STRING "\n");
            *exit_now = true;
            return o;
        }
    }

    if (mem_path) {
        if (o->memory_backend) {
            error_setg(errp, "-mem-path cannot be combined with a memory backend");
            goto fail;
        }
        MemBackendOpts *m = g_new0(MemBackendOpts, 1);
        m->id = g_strdup("pc.ram");
        m->type = MEM_BACKEND_FILE;
        m->size = o->ram_size;
        m->mem_path = g_strdup(mem_path);
        m->prealloc = mem_prealloc;
        g_ptr_array_add(o->objects, m);
        o->memory_backend = g_strdup(m->id);
    } else if (mem_prealloc) {
        error_setg(errp, "-mem-prealloc needs -mem-path");
        goto fail;
    }
    if (o->memory_backend) {
        MemBackendOpts *found = NULL;
        for (guint i = 0; i < o->objects->len; i++) {
            MemBackendOpts *m = g_ptr_array_index(o->objects, i);
            if (!strcmp(m->id, o->memory_backend)) {
                found = m;
            }
        }
        if (!found) {
            error_setg(errp, "memory backend '%s' not found", o->memory_backend);
            goto fail;
        }
        if (found->size != o->ram_size) {
            /* QEMU takes the size from the backend when -m is not given. */
            bool m_given = false;
            for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "-m") || !strcmp(argv[i], "--m")) {
                    m_given = true;
                }
            }
            if (m_given) {
                error_setg(errp, "memory backend '%s' has size %" PRIu64
                           " but -m asks for %" PRIu64 " bytes", found->id,
                           found->size, o->ram_size);
                goto fail;
            }
            o->ram_size = found->size;
        }
    }
    if (!strcmp(o->machine_type, "none") && o->kernel) {
        error_setg(errp, "-kernel cannot be used with -machine none");
        goto fail;
    }
    if (!resolve_network(o, errp)) {
        goto fail;
    }
    if (o->net_devices->len && !strcmp(o->machine_type, "none")) {
        error_setg(errp, "-device virtio-net-pci: -machine none has no PCI bus");
        goto fail;
    }
    return o;

fail:
    godwit_options_free(o);
    return NULL;
}
