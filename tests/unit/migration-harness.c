/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The unit-test machine for migration/ram.c and the migration state machines (see
 * migration-harness.h): plain-memory RAM, a dirty log the test writes,
 * vCPUs that only count pauses, recorded events and a main loop that runs
 * while the test waits.
 */
#include "qemu/osdep.h"
#include "migration-harness.h"

#include <sys/mman.h>

#include "chardev/char.h"
#include "migration/misc.h"
#include "monitor/qmp.h"
#include "qemu/bql.h"
#include "sysemu/cpus.h"
#include "sysemu/kvm.h"
#include "sysemu/main-loop.h"
#include "sysemu/runstate.h"

Machine *current_machine;

/* ---- the dirty log (KVM's, as the test writes it) ---- */

static GMutex dirty_lock;
static unsigned long *dirty_log;     /* one bit per target page, since the last read */
static unsigned dirty_reads;
static bool dirty_on;

void harness_dirty(uint64_t first_page, uint64_t npages)
{
    g_mutex_lock(&dirty_lock);
    for (uint64_t p = first_page; p < first_page + npages; p++) {
        dirty_log[p / 64] |= 1UL << (p % 64);
    }
    g_mutex_unlock(&dirty_lock);
}

unsigned harness_dirty_log_reads(void)
{
    g_mutex_lock(&dirty_lock);
    unsigned n = dirty_reads;
    g_mutex_unlock(&dirty_lock);
    return n;
}

bool harness_dirty_logging(void)
{
    return __atomic_load_n(&dirty_on, __ATOMIC_ACQUIRE);
}

bool kvm_set_dirty_logging(Machine *ms, bool enable, GError **errp)
{
    __atomic_store_n(&dirty_on, enable, __ATOMIC_RELEASE);
    return true;
}

bool kvm_slot_get_dirty_log(Machine *ms, MemSlot *slot, unsigned long *bitmap,
                            GError **errp)
{
    uint64_t first = slot->block_offset / GW_PAGE_SIZE;
    uint64_t n = slot->size / GW_PAGE_SIZE;

    g_mutex_lock(&dirty_lock);
    dirty_reads++;
    for (uint64_t w = 0; w < GW_DIV_ROUND_UP(n, 64); w++) {
        bitmap[w] = dirty_log[first / 64 + w];
        dirty_log[first / 64 + w] = 0;
    }
    g_mutex_unlock(&dirty_lock);
    return true;
}

bool kvm_slot_clear_dirty_log(Machine *ms, MemSlot *slot, uint64_t first_page,
                              uint64_t num_pages, unsigned long *bitmap, GError **errp)
{
    return true;
}

struct kvm_cpuid2 *kvm_vcpu_cpuid(Machine *ms, int index)
{
    struct kvm_cpuid2 *c = g_malloc0(sizeof(*c) + sizeof(struct kvm_cpuid_entry2));

    c->nent = 1;
    c->entries[0] = (struct kvm_cpuid_entry2){ .function = 1, .eax = 0x806f0 };
    return c;
}

static RAMDirtyHook dirty_hook;

void machine_set_ram_dirty_hook(RAMDirtyHook hook)
{
    __atomic_store_n(&dirty_hook, hook, __ATOMIC_RELEASE);
}

/* No chardevs here: nothing to drain when the VM stops. */
void chardev_drain_all(int timeout_ms)
{
}

/* ---- vCPUs: they only count pauses ---- */

static int throttle;

void cpus_pause_all(void)
{
}

void cpus_resume_all(void)
{
}

void cpus_set_throttle(int percent)
{
    __atomic_store_n(&throttle, percent, __ATOMIC_RELAXED);
}

int cpus_get_throttle(void)
{
    return __atomic_load_n(&throttle, __ATOMIC_RELAXED);
}

/* ---- the main loop and events ---- */

typedef struct Scheduled {
    GSourceFunc fn;
    gpointer data;
} Scheduled;

typedef struct Event {
    char *name;
    JsonObject *data;
} Event;

static GMutex loop_lock;
static GCond loop_cond;
static GQueue scheduled;        /* Scheduled */
static GPtrArray *events;       /* Event, in emission order */
static guint events_taken;      /* harness_wait_event consumed those before */
static int exit_status = -1;

void main_loop_schedule(GSourceFunc fn, gpointer data)
{
    Scheduled *s = g_new(Scheduled, 1);

    s->fn = fn;
    s->data = data;
    g_mutex_lock(&loop_lock);
    g_queue_push_tail(&scheduled, s);
    g_cond_broadcast(&loop_cond);
    g_mutex_unlock(&loop_lock);
}

void qemu_system_exit_request(int status)
{
    g_mutex_lock(&loop_lock);
    exit_status = status;
    g_cond_broadcast(&loop_cond);
    g_mutex_unlock(&loop_lock);
}

int harness_exit_status(void)
{
    g_mutex_lock(&loop_lock);
    int st = exit_status;
    g_mutex_unlock(&loop_lock);
    return st;
}

void qmp_event_emit(const char *name, JsonObject *data)
{
    Event *e = g_new0(Event, 1);

    e->name = g_strdup(name);
    e->data = data ? data : json_object_new();
    g_mutex_lock(&loop_lock);
    g_ptr_array_add(events, e);
    g_cond_broadcast(&loop_cond);
    g_mutex_unlock(&loop_lock);
}

guint harness_event_count(const char *name)
{
    guint n = 0;

    g_mutex_lock(&loop_lock);
    for (guint i = 0; i < events->len; i++) {
        Event *e = events->pdata[i];
        n += !strcmp(e->name, name);
    }
    g_mutex_unlock(&loop_lock);
    return n;
}

/* Run what is scheduled, with the BQL (held by the caller) as the main loop would. */
static void run_scheduled(void)
{
    for (;;) {
        g_mutex_lock(&loop_lock);
        Scheduled *s = g_queue_pop_head(&scheduled);
        g_mutex_unlock(&loop_lock);
        if (!s) {
            return;
        }
        s->fn(s->data);
        g_free(s);
    }
}

static JsonObject *take_event_locked(const char *name, const char *key, const char *value)
{
    for (guint i = events_taken; i < events->len; i++) {
        Event *e = events->pdata[i];
        if (strcmp(e->name, name)) {
            continue;
        }
        if (key && (!json_object_has_member(e->data, key) ||
                    g_strcmp0(json_object_get_string_member(e->data, key), value))) {
            continue;
        }
        events_taken = i + 1;
        return json_object_ref(e->data);
    }
    return NULL;
}

JsonObject *harness_wait_event(const char *name, const char *key, const char *value,
                               int timeout_ms)
{
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

    for (;;) {
        run_scheduled();
        g_mutex_lock(&loop_lock);
        JsonObject *o = take_event_locked(name, key, value);
        if (o || g_get_monotonic_time() >= deadline) {
            g_mutex_unlock(&loop_lock);
            return o;
        }
        /* Sleep without the BQL, as godwit's main loop does in poll(). */
        bql_unlock();
        if (g_queue_is_empty(&scheduled)) {
            g_cond_wait_until(&loop_cond, &loop_lock,
                              MIN(deadline, g_get_monotonic_time() + 10000));
        }
        g_mutex_unlock(&loop_lock);
        bql_lock();
    }
}

void harness_run_main_loop(int ms)
{
    JsonObject *none = harness_wait_event("HARNESS-NEVER", NULL, NULL, ms);

    g_assert_null(none);
}

/* ---- the machine ---- */

static Machine *machine_new(RAMBlock *rb, int ncpus)
{
    Machine *m = g_new0(Machine, 1);
    uint64_t ram_size = rb->size;

    m->ram = rb;
    m->type = g_strdup("pc");
    m->smp_cpus = ncpus;
    m->cpus = g_new0(CPUState *, ncpus);
    for (int i = 0; i < ncpus; i++) {
        m->cpus[i] = g_new0(CPUState, 1);
        m->cpus[i]->index = i;
        m->cpus[i]->tid = 1000000 + i;     /* no such thread: blocktime never matches */
    }
    m->slots[0] = (MemSlot){ .slot = 0, .gpa = 0, .size = ram_size, .block_offset = 0 };
    m->nr_slots = 1;
    current_machine = m;

    dirty_log = g_new0(unsigned long, GW_DIV_ROUND_UP(ram_size / GW_PAGE_SIZE, 64) + 1);
    events = g_ptr_array_new();
    g_queue_init(&scheduled);
    bql_lock();
    migration_init();
    return m;
}

Machine *harness_init(uint64_t ram_size, size_t page_size, int ncpus)
{
    RAMBlock *rb = g_new0(RAMBlock, 1);

    g_assert_cmpuint(ram_size % page_size, ==, 0);
    g_strlcpy(rb->name, "pc.ram", sizeof(rb->name));
    rb->size = ram_size;
    rb->page_size = page_size;
    rb->fd = -1;
    rb->zero_at_start = true;     /* anonymous, created empty */
    /* Aligned like the real backend, so "huge" pages start on their boundary. */
    uint8_t *resv = mmap(NULL, ram_size + page_size, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    g_assert(resv != MAP_FAILED);
    rb->host = (uint8_t *)GW_ROUND_UP((uintptr_t)resv, page_size);
    /* 4 KiB pages whatever the host's THP setting: tests count pages allocated. */
    madvise(rb->host, ram_size, MADV_NOHUGEPAGE);
    return machine_new(rb, ncpus);
}

Machine *harness_init_fd(int fd, uint64_t ram_size, bool zero_at_start)
{
    RAMBlock *rb = g_new0(RAMBlock, 1);

    g_strlcpy(rb->name, "pc.ram", sizeof(rb->name));
    rb->size = ram_size;
    rb->page_size = GW_PAGE_SIZE;
    rb->fd = fd;
    rb->shared = true;
    rb->zero_at_start = zero_at_start;
    rb->host = mmap(NULL, ram_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    g_assert(rb->host != MAP_FAILED);
    return machine_new(rb, 1);
}
