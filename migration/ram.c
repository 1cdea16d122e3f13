/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * RAM migration: the "ram" live section.
 *
 * Source: KVM dirty logging on the guest's slots; a send bitmap with one bit
 * per 4 KiB page of the RAMBlock; passes (a sweep over the bitmap ending in
 * a sync); with KVM's manual protection, write protection is re-armed per
 * 64 MiB chunk (KVM_CLEAR_DIRTY_LOG) right before the chunk's first page is
 * read, so a pass costs no whole-RAM write-protect storm. The first pass
 * skips pages that were never populated (no data in the backing file, or for
 * anonymous memory neither present nor swapped; checked after the chunk
 * is re-armed so a racing first write is logged), so an idle guest's
 * untouched RAM is neither read nor allocated. Runs of zero pages go as one
 * record; runs of data pages as one header plus the guest memory itself
 * (zero-copy until the stream flushes).
 *
 * Destination: pages are written straight into guest RAM; zero pages into
 * never-written memory cost nothing; a bitmap of received pages records
 * what was written (postcopy will use it as the one truth).
 *
 * Threads: everything here runs in the migration thread of its side,
 * except ram_dirty_hook (any thread writing guest RAM through
 * machine_ram_write, BQL held), which only sets bits atomically in
 * extra_bmap.
 */
#include "qemu/osdep.h"
#include "migration/migration.h"
#include "migration/misc.h"
#include "migration/postcopy-ram.h"
#include "migration/postcopy-notify.h"
#include "migration/ram-format.h"
#include "migration/recv-bitmap.h"
#include "migration/savevm.h"
#include "sysemu/kvm.h"
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/mman.h>

#define BITS_PER_LONG      64
#define CLEAR_CHUNK_SHIFT  14                      /* 2^14 pages = 64 MiB */
#define CLEAR_CHUNK_PAGES  (1ULL << CLEAR_CHUNK_SHIFT)
#define SEND_RUN_MAX       256                     /* pages per record run */
/*
 * After the postcopy switch a requested page queues behind whatever
 * background data is already buffered: smaller runs, each flushed, keep
 * that backlog (and so the fault latency) short.
 */
#define SEND_RUN_MAX_POSTCOPY 16
#define ITERATE_MAX_NS     (50 * 1000 * 1000)     /* give the loop a look-in */

typedef struct RAMState {
    Machine *ms;
    RAMBlock *rb;
    uint64_t npages;
    size_t nwords;

    /* Source (migration thread) */
    unsigned long *bmap;          /* pages to send */
    unsigned long *extra_bmap;    /* godwit's own writes (atomic) */
    unsigned long *slot_bmap;     /* scratch for KVM_GET_DIRTY_LOG */
    unsigned long *clear_bmap;    /* chunks to re-arm before reading */
    unsigned long *chunk_bmap;    /* scratch for KVM_CLEAR_DIRTY_LOG */
    unsigned char *populated_vec; /* scratch: 1 = the page may hold data */
    unsigned long *nonresident;   /* first pass: never populated, send as zero unread */
    uint64_t dirty;               /* bits set in bmap */
    uint64_t pos;                 /* sweep position, page index */
    bool sweep_done;
    bool first_pass;
    uint64_t resid_next_chunk;    /* first pass: next chunk to check residency of */
    bool tracking;
    RamWriter writer;
    RamBudgetFn budget;
    void *budget_opaque;
    bool postcopy;                /* switched: serve requests before the sweep */
    GMutex req_lock;              /* protects req_queue (return-path thread pushes) */
    GQueue req_queue;             /* RamRequest */
    int req_eventfd;              /* readable while requests are queued */

    /* Destination (incoming thread, then the listen thread) */
    unsigned long *received;
    RamReader reader;
    PostcopyIncoming *postcopy_in;  /* created at the first DISCARD or LISTEN */
    bool postcopy_listening;            /* pages are placed with userfaultfd */
    uint8_t *hp_buf;              /* huge pages: the host page being assembled */
    uint64_t hp_offset;           /* its offset in the block, or UINT64_MAX */
    uint32_t hp_count;            /* target pages assembled so far */
    bool hp_all_zero;
    PostcopyHooks postcopy_hooks;
    void *postcopy_opaque;
} RAMState;

static RAMState ram_state;

/* Extra dirty sources (include/migration/misc.h): registered at start-up, read-only after. */
static GArray *dirty_sources;          /* RamDirtySource */
static unsigned dirty_sources_started; /* how many of them start() accepted (migration thread) */

void ram_add_dirty_source(const RamDirtySource *src)
{
    if (!dirty_sources) {
        dirty_sources = g_array_new(FALSE, TRUE, sizeof(RamDirtySource));
    }
    g_array_append_val(dirty_sources, *src);
}

static void ram_dirty_sources_stop(void)
{
    while (dirty_sources_started) {
        RamDirtySource *d = &g_array_index(dirty_sources, RamDirtySource,
                                           --dirty_sources_started);
        d->stop(d->opaque);
    }
}

static inline bool test_bit(const unsigned long *map, uint64_t n)
{
    return (map[n / BITS_PER_LONG] >> (n % BITS_PER_LONG)) & 1;
}

static inline void set_bit(unsigned long *map, uint64_t n)
{
    map[n / BITS_PER_LONG] |= 1UL << (n % BITS_PER_LONG);
}

static inline void clear_bit(unsigned long *map, uint64_t n)
{
    map[n / BITS_PER_LONG] &= ~(1UL << (n % BITS_PER_LONG));
}

/* First set bit at or after @n, or @size. */
static uint64_t find_next_bit(const unsigned long *map, uint64_t size, uint64_t n)
{
    if (n >= size) {
        return size;
    }
    uint64_t w = n / BITS_PER_LONG;
    unsigned long v = map[w] & (~0UL << (n % BITS_PER_LONG));

    while (!v) {
        if (++w >= GW_DIV_ROUND_UP(size, BITS_PER_LONG)) {
            return size;
        }
        v = map[w];
    }
    n = w * BITS_PER_LONG + (uint64_t)__builtin_ctzl(v);
    return MIN(n, size);
}

static void ram_dirty_hook(RAMBlock *rb, uint64_t offset, uint64_t len)
{
    RAMState *rs = &ram_state;

    if (!rs->extra_bmap || !len) {
        return;
    }
    for (uint64_t p = offset / GW_PAGE_SIZE; p <= (offset + len - 1) / GW_PAGE_SIZE; p++) {
        __atomic_fetch_or(&rs->extra_bmap[p / BITS_PER_LONG], 1UL << (p % BITS_PER_LONG),
                          __ATOMIC_RELAXED);
    }
}

/* ---- source ---- */

static void ram_drop_requests(RAMState *rs);

bool ram_start_tracking(GError **errp)
{
    RAMState *rs = &ram_state;

    rs->bmap = g_new(unsigned long, rs->nwords);
    memset(rs->bmap, 0xff, rs->nwords * sizeof(unsigned long));
    if (rs->npages % BITS_PER_LONG) {
        rs->bmap[rs->nwords - 1] = (1UL << (rs->npages % BITS_PER_LONG)) - 1;
    }
    rs->dirty = rs->npages;
    rs->extra_bmap = g_new0(unsigned long, rs->nwords);
    rs->slot_bmap = g_new0(unsigned long, rs->nwords);
    rs->chunk_bmap = g_new0(unsigned long, CLEAR_CHUNK_PAGES / BITS_PER_LONG);
    rs->clear_bmap = g_new0(unsigned long,
                            GW_DIV_ROUND_UP(rs->npages, CLEAR_CHUNK_PAGES * BITS_PER_LONG) + 1);
    rs->populated_vec = g_malloc(CLEAR_CHUNK_PAGES);
    rs->nonresident = g_new0(unsigned long, rs->nwords);
    rs->pos = 0;
    rs->sweep_done = false;
    rs->first_pass = true;
    rs->resid_next_chunk = 0;
    ram_writer_reset(&rs->writer);
    machine_set_ram_dirty_hook(ram_dirty_hook);
    /*
     * Logging on before anything looks at residency: a page first written
     * after this point is in the log, one written before is resident.
     */
    if (!kvm_set_dirty_logging(rs->ms, true, errp)) {
        machine_set_ram_dirty_hook(NULL);
        return false;
    }
    rs->tracking = true;
    for (guint i = 0; dirty_sources && i < dirty_sources->len; i++) {
        RamDirtySource *d = &g_array_index(dirty_sources, RamDirtySource, i);
        if (!d->start(d->opaque, errp)) {
            ram_stop_tracking();          /* stops the sources already started too */
            return false;
        }
        dirty_sources_started = i + 1;
    }
    return true;
}

void ram_stop_tracking(void)
{
    RAMState *rs = &ram_state;

    if (rs->tracking) {
        g_autoptr(GError) err = NULL;
        if (!kvm_set_dirty_logging(rs->ms, false, &err)) {
            g_warning("%s", err->message);
        }
        rs->tracking = false;
    }
    ram_dirty_sources_stop();
    machine_set_ram_dirty_hook(NULL);
    rs->postcopy = false;
    ram_drop_requests(rs);
    g_clear_pointer(&rs->bmap, g_free);
    g_clear_pointer(&rs->extra_bmap, g_free);
    g_clear_pointer(&rs->slot_bmap, g_free);
    g_clear_pointer(&rs->clear_bmap, g_free);
    g_clear_pointer(&rs->chunk_bmap, g_free);
    g_clear_pointer(&rs->populated_vec, g_free);
    g_clear_pointer(&rs->nonresident, g_free);
}

uint64_t ram_dirty_pages(void)
{
    return ram_state.dirty;
}

bool ram_sweep_done(void)
{
    return ram_state.sweep_done;
}

void ram_set_budget(RamBudgetFn fn, void *opaque)
{
    ram_state.budget = fn;
    ram_state.budget_opaque = opaque;
}

/* OR @src words into the send bitmap at page @base; mark chunks to re-arm. */
static void merge_dirty(RAMState *rs, const unsigned long *src, uint64_t base,
                        uint64_t npages, bool from_kvm)
{
    uint64_t w0 = base / BITS_PER_LONG;

    for (uint64_t w = 0; w < GW_DIV_ROUND_UP(npages, BITS_PER_LONG); w++) {
        unsigned long v = src[w];
        if (!v) {
            continue;
        }
        unsigned long fresh = v & ~rs->bmap[w0 + w];
        rs->dirty += (uint64_t)__builtin_popcountl(fresh);
        rs->bmap[w0 + w] |= v;
        /*
         * Written since its chunk's residency check: it holds data now. A
         * postcopy switch inside the first pass would otherwise send it
         * as a zero page, unread, with nothing left to send it again.
         */
        rs->nonresident[w0 + w] &= ~v;
        if (from_kvm) {
            set_bit(rs->clear_bmap, (base + w * BITS_PER_LONG) >> CLEAR_CHUNK_SHIFT);
        }
    }
}

bool ram_sync(uint64_t *dirty_pages, GError **errp)
{
    RAMState *rs = &ram_state;
    Machine *ms = rs->ms;

    for (int i = 0; i < ms->nr_slots; i++) {
        MemSlot *s = &ms->slots[i];
        uint64_t spages = s->size / GW_PAGE_SIZE;
        uint64_t base = s->block_offset / GW_PAGE_SIZE;

        /* Slots start on a 64-page boundary of the block (3 GiB split). */
        g_assert(base % BITS_PER_LONG == 0);
        memset(rs->slot_bmap, 0, GW_DIV_ROUND_UP(spages, BITS_PER_LONG) * sizeof(unsigned long));
        if (!kvm_slot_get_dirty_log(ms, s, rs->slot_bmap, errp)) {
            return false;
        }
        merge_dirty(rs, rs->slot_bmap, base, spages, true);
    }
    /* Writers KVM does not see (vhost-user back-ends) add their pages to extra_bmap. */
    for (unsigned i = 0; i < dirty_sources_started; i++) {
        RamDirtySource *d = &g_array_index(dirty_sources, RamDirtySource, i);
        if (!d->sync(d->opaque, rs->extra_bmap, rs->npages, errp)) {
            return false;
        }
    }
    for (size_t w = 0; w < rs->nwords; w++) {
        unsigned long v = __atomic_exchange_n(&rs->extra_bmap[w], 0, __ATOMIC_RELAXED);
        if (v) {
            merge_dirty(rs, &v, w * BITS_PER_LONG, BITS_PER_LONG, false);
        }
    }
    rs->pos = 0;
    rs->sweep_done = false;
    *dirty_pages = rs->dirty;
    return true;
}

/* Which slot holds block page @page (for KVM_CLEAR_DIRTY_LOG). */
static MemSlot *slot_of_page(RAMState *rs, uint64_t page)
{
    for (int i = 0; i < rs->ms->nr_slots; i++) {
        MemSlot *s = &rs->ms->slots[i];
        uint64_t base = s->block_offset / GW_PAGE_SIZE;
        if (page >= base && page - base < s->size / GW_PAGE_SIZE) {
            return s;
        }
    }
    return NULL;
}

/* Mark in @vec the pages of [@first, @first + @n) that pagemap shows present or swapped. */
static bool pagemap_populated(RAMState *rs, uint64_t first, uint64_t n, unsigned char *vec)
{
    uint64_t vpage = (uintptr_t)(rs->rb->host + first * GW_PAGE_SIZE) / GW_PAGE_SIZE;
    g_autofree uint64_t *ent = g_new(uint64_t, n);
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    ssize_t want = (ssize_t)(n * sizeof(uint64_t));
    bool ok;

    if (fd < 0) {
        return false;
    }
    ok = pread(fd, ent, (size_t)want, (off_t)(vpage * sizeof(uint64_t))) == want;
    close(fd);
    for (uint64_t i = 0; ok && i < n; i++) {
        /* Bit 63: present in RAM; bit 62: swapped out. Either means it holds data. */
        if (ent[i] & (3ULL << 62)) {
            vec[i] = 1;
        }
    }
    return ok;
}

/* Mark in @vec the pages of the backing file's range that hold data (not holes). */
static bool file_populated(RAMState *rs, uint64_t first, uint64_t n, unsigned char *vec)
{
    int fd = rs->rb->fd;
    off_t base = (off_t)(rs->rb->fd_offset + first * GW_PAGE_SIZE);
    off_t end = base + (off_t)(n * GW_PAGE_SIZE);

    for (off_t pos = base; pos < end;) {
        off_t data = lseek(fd, pos, SEEK_DATA);
        if (data < 0) {
            return errno == ENXIO;      /* no data from pos on; other errors: unknown */
        }
        if (data >= end) {
            break;
        }
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0) {
            return false;
        }
        for (off_t p = data / GW_PAGE_SIZE * GW_PAGE_SIZE; p < MIN(hole, end); p += GW_PAGE_SIZE) {
            vec[(p - base) / GW_PAGE_SIZE] = 1;
        }
        pos = hole;
    }
    return true;
}

/*
 * Which pages of [@first, @first + @n) may hold data (@vec[i] = 1); false
 * if it cannot be known (then every page is read). Residency (mincore)
 * does not answer it: a swapped-out page, a file page dropped from the
 * page cache, or one written only through another process's mapping of
 * shared memory (a vhost-user back-end) is not resident and holds data.
 * The backing file's holes and, for anonymous memory, pages neither
 * present nor swapped are what was never written.
 */
static bool ram_find_populated(RAMState *rs, uint64_t first, uint64_t n, unsigned char *vec)
{
    memset(vec, 0, n);
    if (rs->rb->fd >= 0) {
        /* A private mapping's written pages are anonymous copies, not in the file. */
        return file_populated(rs, first, n, vec) &&
               (rs->rb->shared || pagemap_populated(rs, first, n, vec));
    }
    /* Shared anonymous memory is shmem without a file to ask: read it all. */
    return !rs->rb->shared && pagemap_populated(rs, first, n, vec);
}

/*
 * Before the first page of a chunk is read in this pass: re-arm KVM's write
 * protection for its dirty pages (manual protect), and on the first pass
 * drop pages that were never populated.
 */
static bool ram_prepare_chunk(RAMState *rs, uint64_t chunk, GError **errp)
{
    uint64_t first = chunk << CLEAR_CHUNK_SHIFT;
    uint64_t n = MIN(CLEAR_CHUNK_PAGES, rs->npages - first);

    if (test_bit(rs->clear_bmap, chunk)) {
        clear_bit(rs->clear_bmap, chunk);
        /* A chunk never straddles the two slots: the split is 64 MiB aligned. */
        MemSlot *s = slot_of_page(rs, first);
        uint64_t base = s->block_offset / GW_PAGE_SIZE;
        uint64_t spages = s->size / GW_PAGE_SIZE;
        uint64_t cnt = MIN(n, spages - (first - base));
        memcpy(rs->chunk_bmap, &rs->bmap[first / BITS_PER_LONG],
               GW_DIV_ROUND_UP(cnt, BITS_PER_LONG) * sizeof(unsigned long));
        if (!kvm_slot_clear_dirty_log(rs->ms, s, first - base, cnt, rs->chunk_bmap, errp)) {
            return false;
        }
    }
    if (rs->first_pass && chunk >= rs->resid_next_chunk) {
        /* After the re-arm above: a page first written from now on is logged. */
        rs->resid_next_chunk = chunk + 1;
        /*
         * Not resident means never written only for memory this process
         * created empty: an existing file's pages may just not be cached.
         */
        if (rs->rb->zero_at_start && ram_find_populated(rs, first, n, rs->populated_vec)) {
            /*
             * Never populated: it reads as zero and reading it would allocate
             * it (memfd). It is sent as a zero record without being read, so
             * the destination knows its content too (postcopy relies on the
             * destination's received bitmap being complete).
             */
            for (uint64_t i = 0; i < n; i++) {
                if (!rs->populated_vec[i] && test_bit(rs->bmap, first + i)) {
                    set_bit(rs->nonresident, first + i);
                }
            }
        }
    }
    return true;
}

/* Whether page @p reads as zero; a never-populated page is not even read (one-shot). */
static bool ram_page_is_zero(RAMState *rs, uint64_t p)
{
    if (rs->nonresident && test_bit(rs->nonresident, p)) {
        clear_bit(rs->nonresident, p);
        return true;
    }
    return ram_buffer_is_zero(rs->rb->host + p * GW_PAGE_SIZE, GW_PAGE_SIZE);
}

/*
 * Send the dirty run starting at @page (bits already set). Returns its end.
 *
 * After the postcopy switch on huge pages the run is the whole host page
 * holding @page: the destination assembles a host page from its target
 * pages, in order, and places it only when complete, so a run that
 * stopped inside one (for the rate limit, or for a page request of
 * another host page queued meanwhile) would leave it half sent while the
 * next record starts another one. Host pages are dirty as a whole then
 * (the discard list widened them), so this sends nothing twice.
 */
static uint64_t ram_send_run(RAMState *rs, MigStream *s, uint64_t page)
{
    uint64_t chunk_end = MIN(((page >> CLEAR_CHUNK_SHIFT) + 1) << CLEAR_CHUNK_SHIFT,
                             rs->npages);
    uint64_t hpp = rs->rb->page_size / GW_PAGE_SIZE;
    uint64_t end = page;
    MigrationStatsCounters *st = migration_stats();

    uint64_t run_max = rs->postcopy ? SEND_RUN_MAX_POSTCOPY : SEND_RUN_MAX;

    if (rs->postcopy && hpp > 1) {
        page = page / hpp * hpp;
        end = MIN(page + hpp, rs->npages);
        for (uint64_t p = page; p < end; p++) {
            if (test_bit(rs->bmap, p)) {
                clear_bit(rs->bmap, p);
                rs->dirty--;
            }
        }
    } else {
        while (end < chunk_end && end - page < run_max && test_bit(rs->bmap, end)) {
            clear_bit(rs->bmap, end);
            end++;
        }
        rs->dirty -= end - page;
    }

    /*
     * Split the run into zero and data stretches. Each page is classified
     * once: the page that ends a stretch starts the next (checking it again
     * would read a never-populated page, whose one-shot mark is gone).
     */
    uint64_t p = page;
    bool zero = ram_page_is_zero(rs, p);
    while (p < end) {
        uint8_t *host = rs->rb->host + p * GW_PAGE_SIZE;
        uint64_t q = p + 1;
        bool next_zero = zero;
        while (q < end && (next_zero = ram_page_is_zero(rs, q)) == zero) {
            q++;
        }
        migration_stats_lock();
        if (zero) {
            ram_put_zero(s, &rs->writer, rs->rb->name, p * GW_PAGE_SIZE, (uint32_t)(q - p));
            st->duplicate += q - p;
        } else {
            ram_put_pages(s, &rs->writer, rs->rb->name, p * GW_PAGE_SIZE, host,
                          (uint32_t)(q - p));
            st->normal += q - p;
        }
        migration_stats_unlock();
        p = q;
        zero = next_zero;
    }
    return end;
}

/* ---- source, postcopy ---- */

static bool ram_page_is_zero(RAMState *rs, uint64_t p);

typedef struct RamRequest {
    uint64_t offset;
    uint64_t len;
} RamRequest;

bool ram_queue_request(const char *block, uint64_t offset, uint64_t len, GError **errp)
{
    RAMState *rs = &ram_state;
    size_t hps = rs->rb->page_size;

    if (strcmp(block, rs->rb->name) != 0) {
        error_setg(errp, "page request for unknown RAM block '%s'", block);
        return false;
    }
    if (!len || offset % hps || len % hps || offset >= rs->rb->size ||
        len > rs->rb->size - offset) {
        error_setg(errp, "page request [0x%" PRIx64 ", +0x%" PRIx64
                   ") is not aligned to host pages or lies outside RAM", offset, len);
        return false;
    }
    RamRequest *r = g_new(RamRequest, 1);
    r->offset = offset;
    r->len = len;
    g_mutex_lock(&rs->req_lock);
    g_queue_push_tail(&rs->req_queue, r);
    g_mutex_unlock(&rs->req_lock);
    uint64_t one = 1;
    if (write(rs->req_eventfd, &one, sizeof(one)) < 0) {
        /* The counter cannot overflow in practice; the queue holds the truth. */
    }
    migration_stats_lock();
    migration_stats()->postcopy_requests++;
    migration_stats_unlock();
    return true;
}

int ram_request_eventfd(void)
{
    return ram_state.req_eventfd;
}

bool ram_has_requests(void)
{
    RAMState *rs = &ram_state;
    bool any;

    g_mutex_lock(&rs->req_lock);
    any = !g_queue_is_empty(&rs->req_queue);
    g_mutex_unlock(&rs->req_lock);
    return any;
}

static void ram_drop_requests(RAMState *rs)
{
    uint64_t v;

    g_mutex_lock(&rs->req_lock);
    g_queue_clear_full(&rs->req_queue, g_free);
    g_mutex_unlock(&rs->req_lock);
    while (read(rs->req_eventfd, &v, sizeof(v)) == sizeof(v)) {
    }
}

/*
 * Send the pages of a request that are still to send. After the switch the
 * destination lacks exactly the pages whose bit was set at the switch (every
 * other page went in precopy, never-populated ones as zero records); a
 * requested page whose bit is clear has been sent since and is on its way,
 * so sending it again would only delay the pages behind it.
 */
static void ram_send_forced(RAMState *rs, MigStream *s, uint64_t offset, uint64_t len)
{
    MigrationStatsCounters *st = migration_stats();

    for (uint64_t p = offset / GW_PAGE_SIZE; p < (offset + len) / GW_PAGE_SIZE; p++) {
        uint8_t *host = rs->rb->host + p * GW_PAGE_SIZE;
        if (!test_bit(rs->bmap, p)) {
            continue;
        }
        clear_bit(rs->bmap, p);
        rs->dirty--;
        migration_stats_lock();
        if (ram_page_is_zero(rs, p)) {
            ram_put_zero(s, &rs->writer, rs->rb->name, p * GW_PAGE_SIZE, 1);
            st->duplicate++;
        } else {
            ram_put_pages(s, &rs->writer, rs->rb->name, p * GW_PAGE_SIZE, host, 1);
            st->normal++;
        }
        migration_stats_unlock();
    }
}

/* Serve every queued request; returns true if any was served. */
static bool ram_serve_requests(RAMState *rs, MigStream *s)
{
    bool served = false;
    uint64_t v;

    if (read(rs->req_eventfd, &v, sizeof(v)) < 0) {
        /* Nothing signalled; the queue may still hold entries pushed earlier. */
    }
    for (;;) {
        g_mutex_lock(&rs->req_lock);
        RamRequest *r = g_queue_pop_head(&rs->req_queue);
        g_mutex_unlock(&rs->req_lock);
        if (!r) {
            break;
        }
        ram_send_forced(rs, s, r->offset, r->len);
        /* Locality: the background sweep goes on right after the faulted page. */
        rs->pos = (r->offset + r->len) / GW_PAGE_SIZE;
        g_free(r);
        served = true;
    }
    return served;
}

void ram_postcopy_switch(void)
{
    ram_state.postcopy = true;
}

bool ram_postcopy_send_discard(MigStream *s, GError **errp)
{
    RAMState *rs = &ram_state;
    g_autofree MigDiscardRange *r = g_new(MigDiscardRange, MIG_DISCARD_MAX_RANGES);
    unsigned n = 0;
    uint64_t page = 0;
    size_t hpp = rs->rb->page_size / GW_PAGE_SIZE;

    for (;;) {
        page = find_next_bit(rs->bmap, rs->npages, page);
        if (page >= rs->npages) {
            break;
        }
        uint64_t end = page;
        while (end < rs->npages && test_bit(rs->bmap, end)) {
            end++;
        }
        /* Whole host pages only (huge-page backends). */
        uint64_t first = page / hpp * hpp;
        uint64_t last = GW_ROUND_UP(end, hpp);
        r[n].start = first * GW_PAGE_SIZE;
        r[n].length = (last - first) * GW_PAGE_SIZE;
        for (uint64_t p = first; p < last; p++) {
            if (!test_bit(rs->bmap, p)) {
                set_bit(rs->bmap, p);
                rs->dirty++;
            }
        }
        if (++n == MIG_DISCARD_MAX_RANGES) {
            if (!savevm_send_postcopy_discard(s, rs->rb->name, r, n, errp)) {
                return false;
            }
            n = 0;
        }
        page = last;
    }
    if (n && !savevm_send_postcopy_discard(s, rs->rb->name, r, n, errp)) {
        return false;
    }
    return stream_check(s, errp);
}

/* Send dirty pages from the sweep position; 1 = sweep finished, 0 = more. */
static int ram_save_iterate(MigStream *s, void *opaque, GError **errp)
{
    RAMState *rs = opaque;
    int64_t start = gw_clock_ns();
    int n = 0;

    if (rs->postcopy && ram_serve_requests(rs, s)) {
        /* Let the caller flush now: a vCPU waits for these pages. */
        ram_put_eos(s);
        return rs->dirty ? 0 : 1;
    }
    while (rs->pos < rs->npages) {
        if (rs->postcopy && ram_has_requests()) {
            break;
        }
        if (rs->budget && rs->budget(rs->budget_opaque)) {
            break;
        }
        if ((++n & 7) == 0 && gw_clock_ns() - start > ITERATE_MAX_NS) {
            break;
        }
        uint64_t page = find_next_bit(rs->bmap, rs->npages, rs->pos);
        if (page >= rs->npages) {
            rs->pos = rs->npages;
            break;
        }
        uint64_t chunk = page >> CLEAR_CHUNK_SHIFT;
        if (test_bit(rs->clear_bmap, chunk) ||
            (rs->first_pass && chunk >= rs->resid_next_chunk)) {
            if (!ram_prepare_chunk(rs, chunk, errp)) {
                return -1;
            }
            /* The residency check may have emptied the chunk. */
            rs->pos = page;
            continue;
        }
        rs->pos = ram_send_run(rs, s, page);
        if (rs->postcopy) {
            stream_flush(s, NULL);    /* errors latch in the stream */
        }
        if (stream_has_error(s)) {
            break;
        }
    }
    ram_put_eos(s);
    if (rs->pos >= rs->npages) {
        if (rs->postcopy && rs->dirty) {
            /* Requests moved the sweep forward; pages before it remain. */
            rs->pos = 0;
            rs->first_pass = false;
            return 0;
        }
        rs->sweep_done = true;
        rs->first_pass = false;
        return 1;
    }
    return 0;
}

static bool ram_save_setup(MigStream *s, void *opaque, GError **errp)
{
    RAMState *rs = opaque;
    MigRamBlockInfo b = { .size = rs->rb->size, .page_size = rs->rb->page_size };

    g_strlcpy(b.name, rs->rb->name, sizeof(b.name));
    ram_put_mem_size(s, &b, 1);
    ram_put_eos(s);
    return true;
}

/* Stop-and-copy: the VM is stopped; send everything still dirty. */
static bool ram_save_complete(MigStream *s, void *opaque, GError **errp)
{
    RAMState *rs = opaque;
    uint64_t page = 0;

    for (;;) {
        page = find_next_bit(rs->bmap, rs->npages, page);
        if (page >= rs->npages) {
            break;
        }
        /*
         * The VM is stopped, so nothing dirties a page any more; chunks of an
         * unfinished first pass still get their residency check, so that
         * never-populated memory is not read (which would allocate memfd pages).
         */
        uint64_t chunk = page >> CLEAR_CHUNK_SHIFT;
        if (rs->first_pass && chunk >= rs->resid_next_chunk) {
            if (!ram_prepare_chunk(rs, chunk, errp)) {
                return false;
            }
            continue;
        }
        page = ram_send_run(rs, s, page);
        if (stream_has_error(s)) {
            break;
        }
    }
    ram_put_eos(s);
    return stream_check(s, errp);
}

static uint64_t ram_save_pending(void *opaque)
{
    RAMState *rs = opaque;
    return rs->dirty * GW_PAGE_SIZE;
}

/* ---- destination ---- */

static bool ram_load_setup(void *opaque, GError **errp)
{
    RAMState *rs = opaque;

    if (!rs->received) {
        rs->received = g_new0(unsigned long, rs->nwords);
    }
    ram_reader_reset(&rs->reader);
    return true;
}

static bool ram_load_mem_size(RAMState *rs, MigStream *s, uint64_t total, GError **errp)
{
    g_autofree MigRamBlockInfo *blocks = NULL;
    unsigned n;

    if (!ram_get_mem_size_blocks(s, total, &blocks, &n, errp)) {
        return false;
    }
    if (n != 1 || strcmp(blocks[0].name, rs->rb->name) != 0) {
        error_setg(errp, "RAM layout mismatch: source has %u block(s) starting with '%s', "
                   "destination has one block '%s'", n, n ? blocks[0].name : "", rs->rb->name);
        return false;
    }
    if (blocks[0].size != rs->rb->size) {
        error_setg(errp, "RAM size mismatch: source has %" PRIu64 " bytes, destination %" PRIu64,
                   blocks[0].size, rs->rb->size);
        return false;
    }
    if (blocks[0].page_size != rs->rb->page_size) {
        error_setg(errp, "RAM page size mismatch: source uses %" PRIu64
                   "-byte pages, destination %zu", blocks[0].page_size, rs->rb->page_size);
        return false;
    }
    return true;
}

/*
 * Postcopy: place target pages through userfaultfd, a whole host page at a
 * time (huge pages are assembled in hp_buf first; a record for another host
 * page before the current one is complete is a protocol error).
 */
static bool ram_place_target_page(RAMState *rs, uint64_t offset, const uint8_t *data,
                                  GError **errp)
{
    size_t hps = rs->rb->page_size;

    if (hps == GW_PAGE_SIZE) {
        if (!data) {
            if (test_bit(rs->received, offset / GW_PAGE_SIZE)) {
                return true;
            }
            return postcopy_place_zero_page(rs->postcopy_in, offset, errp);
        }
        return postcopy_place_page(rs->postcopy_in, offset, data, errp);
    }
    uint64_t base = offset / hps * hps;
    if (rs->hp_offset == UINT64_MAX) {
        if (offset != base) {
            error_setg(errp, "huge page at 0x%" PRIx64 " does not start with its first "
                       "target page", base);
            return false;
        }
        rs->hp_offset = base;
        rs->hp_count = 0;
        rs->hp_all_zero = true;
    } else if (base != rs->hp_offset || offset != base + rs->hp_count * GW_PAGE_SIZE) {
        error_setg(errp, "page 0x%" PRIx64 " arrived while huge page 0x%" PRIx64
                   " was incomplete", offset, rs->hp_offset);
        return false;
    }
    if (data) {
        memcpy(rs->hp_buf + rs->hp_count * GW_PAGE_SIZE, data, GW_PAGE_SIZE);
        rs->hp_all_zero = false;
    } else {
        memset(rs->hp_buf + rs->hp_count * GW_PAGE_SIZE, 0, GW_PAGE_SIZE);
    }
    if (++rs->hp_count < hps / GW_PAGE_SIZE) {
        return true;
    }
    uint64_t at = rs->hp_offset;
    bool zero = rs->hp_all_zero;
    rs->hp_offset = UINT64_MAX;
    return zero ? postcopy_place_zero_page(rs->postcopy_in, at, errp)
                : postcopy_place_page(rs->postcopy_in, at, rs->hp_buf, errp);
}

static bool ram_load_postcopy(RAMState *rs, MigStream *s, const RamRecord *rec,
                              GError **errp)
{
    if (rec->type == RAM_RECORD_PAGES && rs->rb->page_size == GW_PAGE_SIZE) {
        /* Runs straight from the stream buffer, in as few copies as it allows. */
        uint32_t left = rec->npages;
        uint64_t off = rec->offset;
        while (left) {
            uint32_t n = MIN(left, (uint32_t)(STREAM_BUF_SIZE / GW_PAGE_SIZE));
            const uint8_t *data = stream_get_ptr(s, (size_t)n * GW_PAGE_SIZE);
            if (!data) {
                return stream_check(s, errp);
            }
            if (!postcopy_place_pages(rs->postcopy_in, off, data, n, errp)) {
                return false;
            }
            off += (uint64_t)n * GW_PAGE_SIZE;
            left -= n;
        }
        return true;
    }
    for (uint32_t i = 0; i < rec->npages; i++) {
        uint64_t off = rec->offset + (uint64_t)i * GW_PAGE_SIZE;
        const uint8_t *data = NULL;
        if (rec->type == RAM_RECORD_PAGES) {
            data = stream_get_ptr(s, GW_PAGE_SIZE);
            if (!data) {
                return stream_check(s, errp);
            }
        }
        if (!ram_place_target_page(rs, off, data, errp)) {
            return false;
        }
    }
    return true;
}

static bool ram_postcopy_ensure(RAMState *rs, GError **errp)
{
    if (rs->postcopy_in) {
        return true;
    }
    if (!rs->received) {
        rs->received = g_new0(unsigned long, rs->nwords);
    }
    rs->postcopy_in = postcopy_incoming_new(rs->rb, rs->received, rs->npages, &rs->postcopy_hooks,
                                   rs->postcopy_opaque, errp);
    if (rs->postcopy_in && rs->rb->page_size > GW_PAGE_SIZE) {
        rs->hp_buf = g_malloc(rs->rb->page_size);
        rs->hp_offset = UINT64_MAX;
    }
    return rs->postcopy_in != NULL;
}

bool ram_postcopy_incoming_advise(uint64_t pagesize_summary, uint64_t target_page_size,
                                  const PostcopyHooks *hooks, void *opaque, GError **errp)
{
    RAMState *rs = &ram_state;

    if (target_page_size != GW_PAGE_SIZE) {
        error_setg(errp, "Postcopy target page size mismatch: source uses %" PRIu64
                   " bytes, destination %llu", target_page_size, GW_PAGE_SIZE);
        return false;
    }
    if (pagesize_summary != rs->rb->page_size) {
        error_setg(errp, "Postcopy page size mismatch: source RAM uses %" PRIu64
                   "-byte pages, destination %zu", pagesize_summary, rs->rb->page_size);
        return false;
    }
    if (!postcopy_ram_supported(rs->rb, errp) ||
        !postcopy_notify(POSTCOPY_NOTIFY_INBOUND_ADVISE, NULL, errp)) {
        return false;
    }
    rs->postcopy_hooks = *hooks;
    rs->postcopy_opaque = opaque;
    return true;
}

bool ram_postcopy_incoming_discard(const char *block, const MigDiscardRange *r, unsigned n,
                                   GError **errp)
{
    RAMState *rs = &ram_state;

    if (strcmp(block, rs->rb->name) != 0) {
        error_setg(errp, "discard for unknown RAM block '%s'", block);
        return false;
    }
    if (rs->postcopy_listening) {
        error_setg(errp, "discard after the postcopy listen command");
        return false;
    }
    if (!ram_postcopy_ensure(rs, errp)) {
        return false;
    }
    for (unsigned i = 0; i < n; i++) {
        if (r[i].start >= rs->rb->size || r[i].length > rs->rb->size - r[i].start) {
            error_setg(errp, "discard range [0x%" PRIx64 ", +0x%" PRIx64 ") lies outside RAM",
                       r[i].start, r[i].length);
            return false;
        }
        if (!postcopy_discard_range(rs->postcopy_in, r[i].start, r[i].length, errp)) {
            return false;
        }
    }
    return true;
}

bool ram_postcopy_incoming_listen(const int *vcpu_tids, int nvcpus, GError **errp)
{
    RAMState *rs = &ram_state;

    if (!ram_postcopy_ensure(rs, errp)) {
        return false;
    }
    postcopy_set_vcpu_tids(rs->postcopy_in, vcpu_tids, nvcpus);
    /* External userfaultfds join now: the fault thread's poll set is fixed at listen. */
    if (!postcopy_notify(POSTCOPY_NOTIFY_INBOUND_LISTEN, rs->postcopy_in, errp) ||
        !postcopy_listen(rs->postcopy_in, errp)) {
        return false;
    }
    rs->postcopy_listening = true;
    return true;
}

PostcopyIncoming *ram_postcopy_incoming(void)
{
    return ram_state.postcopy_in;
}

/* ---- postcopy recovery ---- */

const char *ram_block_name(void)
{
    return ram_state.rb->name;
}

uint64_t ram_recv_bitmap_bytes(const char *block)
{
    RAMState *rs = &ram_state;

    return rs->rb && !strcmp(block, rs->rb->name) ? recv_bitmap_size(rs->npages) : 0;
}

bool ram_postcopy_resume_from_received(const char *block, const uint8_t *bytes, uint64_t size,
                                       GError **errp)
{
    RAMState *rs = &ram_state;

    if (!rs->bmap || strcmp(block, rs->rb->name) != 0) {
        error_setg(errp, "The destination sent a received bitmap for an unknown RAM block");
        return false;
    }
    if (size != recv_bitmap_size(rs->npages)) {
        error_setg(errp, "The destination's received bitmap has %" PRIu64 " bytes, expected %"
                   PRIu64, size, recv_bitmap_size(rs->npages));
        return false;
    }
    /*
     * What the destination lacks is what is left to send: pages in flight
     * when the connection broke go again, received ones never do. Requests
     * queued for the old connection are dropped (the destination asks
     * again), and the new channel's first record names its block.
     */
    rs->dirty = recv_bitmap_to_dirty(bytes, rs->npages, rs->bmap);
    rs->pos = 0;
    rs->sweep_done = false;
    ram_drop_requests(rs);
    ram_writer_reset(&rs->writer);
    migration_stats_lock();
    migration_stats()->remaining_bytes = rs->dirty * GW_PAGE_SIZE;
    migration_stats_unlock();
    return true;
}

uint8_t *ram_postcopy_received_bitmap(const char *block, size_t *len, GError **errp)
{
    RAMState *rs = &ram_state;

    if (!rs->received || !rs->rb || strcmp(block, rs->rb->name) != 0) {
        error_setg(errp, "The source asked for the received bitmap of an unknown RAM block");
        return NULL;
    }
    return recv_bitmap_encode(rs->received, rs->npages, len);
}

void ram_postcopy_incoming_reconnect(void)
{
    RAMState *rs = &ram_state;

    /*
     * A host page half assembled when the connection broke was never placed
     * nor marked received: the source sends it whole again.
     */
    rs->hp_offset = UINT64_MAX;
    rs->hp_count = 0;
    rs->hp_all_zero = true;
    ram_reader_reset(&rs->reader);
}

static bool ram_load(MigStream *s, void *opaque, uint32_t version, MigRecordType type,
                     GError **errp)
{
    RAMState *rs = opaque;
    RamRecord rec;

    if (version != RAM_SECTION_VERSION) {
        error_setg(errp, "RAM section version %u is not supported (expected %d)", version,
                   RAM_SECTION_VERSION);
        return false;
    }
    for (;;) {
        if (!ram_get_record(s, &rs->reader, &rec, errp)) {
            return false;
        }
        switch (rec.type) {
        case RAM_RECORD_EOS:
            return stream_check(s, errp);
        case RAM_RECORD_MEM_SIZE:
            if (type != MIG_REC_SECTION_START) {
                error_setg(errp, "RAM block list outside the RAM setup section");
                return false;
            }
            if (!ram_load_mem_size(rs, s, rec.offset, errp)) {
                return false;
            }
            break;
        case RAM_RECORD_ZERO:
        case RAM_RECORD_PAGES: {
            if (strcmp(rec.block, rs->rb->name) != 0) {
                error_setg(errp, "unknown RAM block '%s' in the migration stream", rec.block);
                return false;
            }
            if (!ram_record_check_range(&rec, rs->rb->size, errp)) {
                return false;
            }
            uint64_t first = rec.offset / GW_PAGE_SIZE;
            uint8_t *host = rs->rb->host + rec.offset;
            if (rs->postcopy_listening) {
                if (!ram_load_postcopy(rs, s, &rec, errp)) {
                    return false;
                }
            } else if (rec.type == RAM_RECORD_PAGES) {
                stream_get_buffer(s, host, (size_t)rec.npages * GW_PAGE_SIZE);
                for (uint32_t i = 0; i < rec.npages; i++) {
                    set_bit(rs->received, first + i);
                }
            } else {
                for (uint32_t i = 0; i < rec.npages; i++) {
                    /*
                     * Memory this process created empty and never wrote
                     * reads as zero already; anything else (a reused
                     * memory-backend-file) must be cleared.
                     */
                    ram_zero_pages(host + (uint64_t)i * GW_PAGE_SIZE, GW_PAGE_SIZE,
                                   rs->rb->zero_at_start &&
                                   !test_bit(rs->received, first + i));
                    set_bit(rs->received, first + i);
                }
            }
            if (!stream_check(s, errp)) {
                return false;
            }
            break;
        }
        }
    }
}

static const SaveLiveOps ram_live_ops = {
    .save_setup = ram_save_setup,
    .save_iterate = ram_save_iterate,
    .save_complete = ram_save_complete,
    .save_pending = ram_save_pending,
    /* No save_cleanup: ram_stop_tracking() frees the bitmaps once the destination runs. */
    .load_setup = ram_load_setup,
    .load = ram_load,
};

void ram_migration_init(Machine *ms)
{
    RAMState *rs = &ram_state;

    rs->ms = ms;
    rs->rb = ms->ram;
    rs->npages = ms->ram->size / GW_PAGE_SIZE;
    rs->nwords = GW_DIV_ROUND_UP(rs->npages, BITS_PER_LONG);
    g_mutex_init(&rs->req_lock);
    g_queue_init(&rs->req_queue);
    rs->req_eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    register_savelive("ram", 0, RAM_SECTION_VERSION, &ram_live_ops, rs);
}
