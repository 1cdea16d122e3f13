/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: the human monitor. The input is one command line as
 * human-monitor-command (or a -monitor socket) hands it over: looked up in
 * the tables generated from hmp-commands*.hx, its arguments parsed (types,
 * expressions, /fmt, sizes, quoting), and run. QMP underneath is a stand-in
 * that answers what godwit answers, so the output formatting runs too;
 * guest memory for xp is a small buffer.
 */
#include "qemu/osdep.h"

#include "hw/machine.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "monitor/qmp.h"
#include "qemu/bql.h"
#include "sysemu/cpus.h"
#include "sysemu/runstate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void qemu_system_shutdown_request(const char *reason)
{
}

Machine *current_machine;
static uint8_t fake_ram[8192];

bool machine_ram_read(Machine *ms, uint64_t gpa, void *buf, uint64_t len, GError **errp)
{
    if (gpa >= sizeof(fake_ram) || len > sizeof(fake_ram) - gpa) {
        error_setg(errp, "Invalid parameter 'addr'");
        return false;
    }
    memcpy(buf, fake_ram + gpa, len);
    return true;
}

void cpu_dump_state(CPUState *cpu, GString *out)
{
    g_string_append_printf(out, "RAX=%016x\n", cpu->index);
}

/* What godwit's QMP answers to the commands HMP runs (no side effects here). */
static const struct {
    const char *name, *reply;     /* "" = empty return */
} canned[] = {
    { "query-status", "{\"running\": true, \"singlestep\": false, \"status\": \"running\"}" },
    { "query-version", "{\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 0}, "
      "\"package\": \"godwit 0.1.0\"}" },
    { "query-name", "{\"name\": \"vm\"}" },
    { "query-kvm", "{\"enabled\": true, \"present\": true}" },
    { "query-cpus-fast", "[{\"cpu-index\": 0, \"thread-id\": 4242, \"target\": \"x86_64\"}]" },
    { "query-migrate", "{\"status\": \"active\", \"total-time\": 100, \"setup-time\": 2, "
      "\"expected-downtime\": 300, \"ram\": {\"transferred\": 1, \"remaining\": 2, "
      "\"total\": 3, \"duplicate\": 4, \"skipped\": 0, \"normal\": 5, \"normal-bytes\": 6, "
      "\"dirty-pages-rate\": 7, \"mbps\": 8.5, \"dirty-sync-count\": 9, "
      "\"postcopy-requests\": 10, \"page-size\": 4096, \"multifd-bytes\": 0, "
      "\"pages-per-second\": 11, \"precopy-bytes\": 12, \"downtime-bytes\": 13, "
      "\"postcopy-bytes\": 14, \"dirty-sync-missed-zero-copy\": 0}, "
      "\"socket-address\": [{\"type\": \"inet\", \"host\": \"127.0.0.1\", "
      "\"port\": \"4444\", \"ipv4\": true}]}" },
    { "query-migrate-capabilities", "[{\"capability\": \"events\", \"state\": true}, "
      "{\"capability\": \"postcopy-ram\", \"state\": false}]" },
    { "query-migrate-parameters", "{\"announce-initial\": 50, \"max-bandwidth\": 0, "
      "\"downtime-limit\": 300, \"tls-creds\": \"\", \"multifd-compression\": \"none\", "
      "\"cpu-throttle-tailslow\": false}" },
    { "stop", "" }, { "cont", "" }, { "quit", "" }, { "system_reset", "" },
    { "pmemsave", "" }, { "migrate", "" }, { "migrate-incoming", "" },
    { "migrate_cancel", "" }, { "migrate-continue", "" },
    { "migrate-set-capabilities", "" }, { "migrate-set-parameters", "" },
    { "migrate-start-postcopy", "" },
};

JsonNode *qmp_dispatch(const char *name, JsonObject *args, GError **errp)
{
    for (size_t i = 0; i < G_N_ELEMENTS(canned); i++) {
        if (!strcmp(name, canned[i].name)) {
            return canned[i].reply[0] ? json_from_string(canned[i].reply, NULL) : NULL;
        }
    }
    error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND, "The command %s has not been found", name);
    return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *line = g_strndup((const char *)data, size);
    static Machine m;
    static CPUState cpu0, *cpus[1] = { &cpu0 };

    if (!current_machine) {
        m.smp_cpus = 1;
        m.cpus = cpus;
        current_machine = &m;
    }
    bql_lock();
    g_free(hmp_run_command_line(line));
    bql_unlock();
    return 0;
}
