/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command line, QEMU-compatible subset. Parsing is pure (no side
 * effects) so it can be unit-tested; main() acts on the result.
 */
#ifndef GODWIT_OPTIONS_H
#define GODWIT_OPTIONS_H

#include "qemu/osdep.h"

typedef enum MemBackendType {
    MEM_BACKEND_RAM,      /* memory-backend-ram (anonymous) */
    MEM_BACKEND_MEMFD,    /* memory-backend-memfd */
    MEM_BACKEND_FILE,     /* memory-backend-file (mem-path) */
} MemBackendType;

typedef struct MemBackendOpts {
    char *id;
    MemBackendType type;
    uint64_t size;
    bool share;
    bool share_set;
    char *mem_path;
    bool prealloc;
    bool hugetlb;          /* memfd hugetlb=on */
    uint64_t hugetlbsize;  /* memfd hugetlbsize=, 0 = default */
} MemBackendOpts;

/*
 * -netdev vhost-user,id=ID,chardev=CHR[,queues=1]. The socket chardev it
 * names is taken out of the -chardev list (it carries file descriptors,
 * not a byte stream) and described here.
 */
typedef struct NetdevOpts {
    char *id;
    char *chardev;          /* the -chardev id */
    char *path;             /* unix socket path */
    bool server;            /* godwit listens (server=on) */
    uint32_t reconnect;     /* client: seconds between connection attempts, 0 = never */
    uint32_t queues;        /* queue pairs (1) */
} NetdevOpts;

/* -device virtio-net-pci,netdev=ID[,mac=...][,addr=SLOT][,rx_queue_size=N]... */
typedef struct NetDeviceOpts {
    char *id;               /* -device id=, or NULL */
    char *netdev;
    uint8_t mac[6];
    bool mac_set;
    int slot;               /* addr=, -1 = first free */
    uint16_t rx_queue_size; /* 256 unless given */
    uint16_t tx_queue_size;
} NetDeviceOpts;

typedef struct GodwitOptions {
    uint64_t ram_size;          /* bytes; default 128 MiB as QEMU */
    int smp_cpus;               /* default 1 */
    char *kernel;
    char *append;
    char *initrd;               /* Multiboot modules, comma separated */
    char *machine_type;         /* q35 (default), pc, none */
    char *memory_backend;       /* -machine memory-backend= / -numa node,memdev= */
    GPtrArray *objects;         /* MemBackendOpts* */
    GPtrArray *serials;         /* char* specs */
    GPtrArray *chardevs;        /* char* option strings */
    GPtrArray *qmps;            /* char* specs (-qmp) */
    GPtrArray *mons;            /* char* -mon option strings */
    GPtrArray *monitors;        /* char* specs (-monitor) */
    bool nographic;
    bool nodefaults;
    bool display_none;
    bool start_paused;          /* -S */
    char *name;
    char *incoming;
    bool no_reboot;
    bool no_shutdown;
    bool daemonize;
    char *pidfile;
    GPtrArray *netdevs;         /* NetdevOpts* */
    GPtrArray *net_devices;     /* NetDeviceOpts* (virtio-net-pci) */
} GodwitOptions;

/*
 * Parse argv. On error returns NULL and sets @errp to one sentence naming
 * the offending option. "-help"/"-version" set *exit_now and print to stdout.
 */
GodwitOptions *godwit_options_parse(int argc, char **argv, bool *exit_now,
                                    GError **errp);
void godwit_options_free(GodwitOptions *o);

/* "128M", "1G", "4096" (MiB when unsuffixed, as QEMU's -m). */
bool parse_ram_size(const char *s, uint64_t *out, GError **errp);
/* Sizes with optional k/M/G/T suffix, bytes when unsuffixed (size= of -object). */
bool parse_size(const char *s, uint64_t *out, GError **errp);
/* "on"/"off"/"yes"/"no"/"true"/"false" */
bool parse_bool_opt(const char *name, const char *s, bool *out, GError **errp);

/* QEMU-style key=value,key=value lists; a leading bare value is stored under @implied_key. */
GHashTable *keyval_parse(const char *s, const char *implied_key, GError **errp);

#endif
