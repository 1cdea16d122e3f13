/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Stream records and commands, the registry of device records and
 * iterative sections, and the destination's load loop. The registry is
 * written by the main thread before any migration and only read while one
 * runs, so it needs no lock.
 */
#include "qemu/osdep.h"

#include "migration/savevm.h"
#include "qemu/byteorder.h"

typedef struct SaveEntry {
    bool live;
    char *idstr;
    uint32_t instance_id;
    uint32_t version;
    uint32_t section_id;     /* stable per process: registration order */
    int priority;
    SaveLiveOps ops;         /* live */
    SaveStateHandler h;      /* device */
    void *opaque;
} SaveEntry;

static GPtrArray *entries;   /* sorted: priority, then registration */
static uint32_t next_section_id = 1;

static void entry_free(gpointer p)
{
    SaveEntry *e = p;

    g_free(e->idstr);
    g_free(e);
}

static SaveEntry *find_entry(bool live, const char *idstr, uint32_t instance)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (e->live == live && e->instance_id == instance &&
            !strcmp(e->idstr, idstr)) {
            return e;
        }
    }
    return NULL;
}

static void add_entry(SaveEntry *e)
{
    guint pos;

    if (!entries) {
        entries = g_ptr_array_new_with_free_func(entry_free);
    }
    if (find_entry(e->live, e->idstr, e->instance_id)) {
        /* A programming error, not input: keep the first one. */
        g_critical("migration record '%s' instance %" PRIu32
                   " registered twice", e->idstr, e->instance_id);
        entry_free(e);
        return;
    }
    e->section_id = next_section_id++;
    for (pos = 0; pos < entries->len; pos++) {
        SaveEntry *o = entries->pdata[pos];
        if (o->priority > e->priority) {
            break;
        }
    }
    g_ptr_array_insert(entries, pos, e);
}

void register_savestate(const SaveStateHandler *h)
{
    SaveEntry *e = g_new0(SaveEntry, 1);

    g_assert(h->idstr && strlen(h->idstr) <= STREAM_MAX_CSTR);
    g_assert(h->save && h->load);
    e->idstr = g_strdup(h->idstr);
    e->instance_id = h->instance_id;
    e->version = h->version;
    e->priority = h->priority;
    e->h = *h;
    e->h.idstr = e->idstr;
    e->opaque = h->opaque;
    add_entry(e);
}

void register_savelive(const char *idstr, uint32_t instance_id,
                       uint32_t version, const SaveLiveOps *ops,
                       void *opaque)
{
    SaveEntry *e = g_new0(SaveEntry, 1);

    g_assert(idstr && strlen(idstr) <= STREAM_MAX_CSTR);
    g_assert(ops->save_setup && ops->save_iterate && ops->save_complete &&
             ops->load);
    e->live = true;
    e->idstr = g_strdup(idstr);
    e->instance_id = instance_id;
    e->version = version;
    e->priority = G_MININT;   /* live sections keep registration order */
    e->ops = *ops;
    e->opaque = opaque;
    add_entry(e);
}

void savevm_unregister_all(void)
{
    if (entries) {
        g_ptr_array_unref(entries);
        entries = NULL;
    }
    next_section_id = 1;
}

/* --- writing records --- */

void savevm_put_header(MigStream *s)
{
    stream_put_be32(s, MIG_MAGIC);
    stream_put_be32(s, MIG_VERSION);
}

void savevm_put_config(MigStream *s, const MigConfig *c)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();

    mig_config_encode(c, buf);
    stream_put_u8(s, MIG_REC_CONFIG);
    stream_put_be32(s, buf->len);
    stream_put_buffer(s, buf->data, buf->len);
}

void savevm_put_eof(MigStream *s)
{
    stream_put_u8(s, MIG_REC_EOF);
}

void savevm_put_footer(MigStream *s, uint32_t section_id)
{
    stream_put_u8(s, MIG_REC_FOOTER);
    stream_put_be32(s, section_id);
}

void savevm_put_section_header(MigStream *s, MigRecordType type,
                               uint32_t section_id, const char *idstr,
                               uint32_t instance_id, uint32_t version)
{
    stream_put_u8(s, type);
    stream_put_be32(s, section_id);
    if (type == MIG_REC_SECTION_START || type == MIG_REC_SECTION_FULL) {
        stream_put_cstr(s, idstr);
        stream_put_be32(s, instance_id);
        stream_put_be32(s, version);
    }
}

void savevm_put_full(MigStream *s, uint32_t section_id, const char *idstr,
                     uint32_t instance_id, uint32_t version,
                     const uint8_t *payload, size_t len)
{
    if (len > MIG_FULL_MAX_LEN) {
        stream_set_error_msg(s, "Migration record '%s' instance %" PRIu32
                             " is too large (%zu bytes, max %u)", idstr,
                             instance_id, len, MIG_FULL_MAX_LEN);
        return;
    }
    savevm_put_section_header(s, MIG_REC_SECTION_FULL, section_id, idstr,
                              instance_id, version);
    stream_put_be32(s, len);
    stream_put_buffer(s, payload, len);
    stream_put_be32(s, mig_crc32(0, payload, len));
    savevm_put_footer(s, section_id);
}

void savevm_put_command(MigStream *s, MigCommand cmd, const void *payload,
                        size_t len)
{
    g_assert(len <= MIG_CMD_MAX_LEN);
    stream_put_u8(s, MIG_REC_COMMAND);
    stream_put_be16(s, cmd);
    stream_put_be16(s, len);
    stream_put_buffer(s, payload, len);
}

void savevm_send_open_return_path(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_OPEN_RETURN_PATH, NULL, 0);
}

void savevm_send_ping(MigStream *s, uint32_t value)
{
    uint8_t be[4];

    be32_store(be, value);
    savevm_put_command(s, MIG_CMD_PING, be, sizeof(be));
}

void savevm_send_postcopy_advise(MigStream *s, uint64_t pagesize_summary,
                                 uint64_t target_page_size)
{
    uint8_t be[16];

    be64_store(be, pagesize_summary);
    be64_store(be + 8, target_page_size);
    savevm_put_command(s, MIG_CMD_POSTCOPY_ADVISE, be, sizeof(be));
}

void savevm_send_postcopy_listen(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_POSTCOPY_LISTEN, NULL, 0);
}

void savevm_send_postcopy_run(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_POSTCOPY_RUN, NULL, 0);
}

void savevm_send_postcopy_resume(MigStream *s)
{
    savevm_put_command(s, MIG_CMD_POSTCOPY_RESUME, NULL, 0);
}

bool savevm_send_postcopy_discard(MigStream *s, const char *block,
                                  const MigDiscardRange *r, unsigned n,
                                  GError **errp)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();

    if (!mig_cmd_discard_encode(block, r, n, buf, errp)) {
        return false;
    }
    savevm_put_command(s, MIG_CMD_POSTCOPY_RAM_DISCARD, buf->data, buf->len);
    return true;
}

bool savevm_send_recv_bitmap(MigStream *s, const char *block, GError **errp)
{
    size_t n = strlen(block);
    uint8_t buf[1 + STREAM_MAX_CSTR];

    if (n == 0 || n > STREAM_MAX_CSTR) {
        error_setg(errp, "Invalid RAM block name '%s'", block);
        return false;
    }
    buf[0] = n;
    memcpy(buf + 1, block, n);
    savevm_put_command(s, MIG_CMD_RECV_BITMAP, buf, n + 1);
    return true;
}

bool savevm_send_packaged(MigStream *s, const uint8_t *blob, size_t len,
                          GError **errp)
{
    uint8_t be[4];

    if (len > MIG_PACKAGED_MAX_LEN) {
        error_setg(errp, "Postcopy package is too large (%zu bytes, max %u)",
                   len, MIG_PACKAGED_MAX_LEN);
        return false;
    }
    be32_store(be, (uint32_t)len);
    savevm_put_command(s, MIG_CMD_PACKAGED, be, sizeof(be));
    stream_put_buffer(s, blob, len);
    return stream_check(s, errp);
}

/* --- source, registry driven --- */

bool savevm_live_setup(MigStream *s, GError **errp)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (!e->live) {
            continue;
        }
        savevm_put_section_header(s, MIG_REC_SECTION_START, e->section_id,
                                  e->idstr, e->instance_id, e->version);
        if (!e->ops.save_setup(s, e->opaque, errp)) {
            g_prefix_error(errp, "Setting up section '%s': ", e->idstr);
            return false;
        }
        savevm_put_footer(s, e->section_id);
    }
    return stream_check(s, errp);
}

int savevm_live_iterate(MigStream *s, GError **errp)
{
    int all_done = 1;

    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (!e->live) {
            continue;
        }
        savevm_put_section_header(s, MIG_REC_SECTION_PART, e->section_id,
                                  NULL, 0, 0);
        int r = e->ops.save_iterate(s, e->opaque, errp);
        if (r < 0) {
            g_prefix_error(errp, "Sending section '%s': ", e->idstr);
            return -1;
        }
        savevm_put_footer(s, e->section_id);
        if (!r) {
            all_done = 0;
        }
    }
    return stream_check(s, errp) ? all_done : -1;
}

uint64_t savevm_live_pending(void)
{
    uint64_t total = 0;

    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (e->live && e->ops.save_pending) {
            total += e->ops.save_pending(e->opaque);
        }
    }
    return total;
}

bool savevm_live_complete(MigStream *s, GError **errp)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (!e->live) {
            continue;
        }
        savevm_put_section_header(s, MIG_REC_SECTION_END, e->section_id,
                                  NULL, 0, 0);
        if (!e->ops.save_complete(s, e->opaque, errp)) {
            g_prefix_error(errp, "Completing section '%s': ", e->idstr);
            return false;
        }
        savevm_put_footer(s, e->section_id);
    }
    return stream_check(s, errp);
}

void savevm_live_cleanup(void)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (e->live && e->ops.save_cleanup) {
            e->ops.save_cleanup(e->opaque);
        }
    }
}

bool savevm_save_devices(MigStream *s, GError **errp)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (e->live) {
            continue;
        }
        g_autoptr(GByteArray) buf = g_byte_array_new();
        if (!e->h.save(e->opaque, buf, errp)) {
            g_prefix_error(errp, "Saving '%s' instance %" PRIu32 ": ",
                           e->idstr, e->instance_id);
            return false;
        }
        savevm_put_full(s, e->section_id, e->idstr, e->instance_id,
                        e->version, buf->data, buf->len);
        if (stream_has_error(s)) {
            break;
        }
    }
    return stream_check(s, errp);
}

bool savevm_save_complete_precopy(MigStream *s, GError **errp)
{
    if (!savevm_live_complete(s, errp) || !savevm_save_devices(s, errp)) {
        return false;
    }
    savevm_put_eof(s);
    return stream_flush(s, errp);
}

/* --- destination --- */

/* A live section announced by START: its handler and the version sent. */
typedef struct LiveSection {
    SaveEntry *e;
    uint32_t version;
    bool ended;       /* SECTION_END loaded: nothing more may come for it */
} LiveSection;

struct LoadVMState {
    MigConfig *local;
    MigConfig *source;
    const LoadVMCommandOps *ops;
    void *opaque;
    GHashTable *live_by_id;   /* section id -> LiveSection (from START) */
    GHashTable *set_up;       /* SaveEntry -> itself: load_setup done */
    GHashTable *loaded;       /* SaveEntry -> itself: device record loaded */
    int depth;                /* package nesting */
    bool forked;              /* a postcopy listen thread's view: device records load elsewhere */
    /* The postcopy handshake, in the order stream.md requires it. */
    bool advised;             /* POSTCOPY_ADVISE accepted */
    bool listened;            /* POSTCOPY_LISTEN accepted (inside the package) */
};

static MigConfig *config_copy(const MigConfig *c)
{
    MigConfig *n = g_memdup2(c, sizeof(*c));

    n->blocks = g_memdup2(c->blocks, sizeof(*c->blocks) * c->nr_blocks);
    n->cpuid = g_memdup2(c->cpuid, sizeof(*c->cpuid) * c->nr_cpuid);
    return n;
}

LoadVMState *loadvm_state_new(const MigConfig *local,
                              const LoadVMCommandOps *ops, void *opaque)
{
    static const LoadVMCommandOps none;
    LoadVMState *st = g_new0(LoadVMState, 1);

    st->local = local ? config_copy(local) : NULL;
    st->ops = ops ? ops : &none;
    st->opaque = opaque;
    st->live_by_id = g_hash_table_new_full(NULL, NULL, NULL, g_free);
    st->set_up = g_hash_table_new(NULL, NULL);
    st->loaded = g_hash_table_new(NULL, NULL);
    return st;
}

LoadVMState *loadvm_state_fork(LoadVMState *st, const LoadVMCommandOps *ops,
                               void *opaque)
{
    static const LoadVMCommandOps none;
    LoadVMState *f = g_new0(LoadVMState, 1);

    f->local = st->local ? config_copy(st->local) : NULL;
    f->source = st->source ? config_copy(st->source) : NULL;
    f->ops = ops ? ops : &none;
    f->opaque = opaque;
    /* Live sections were started on the parent; the fork only continues them. */
    f->live_by_id = g_hash_table_ref(st->live_by_id);
    f->set_up = g_hash_table_new(NULL, NULL);
    f->loaded = g_hash_table_new(NULL, NULL);
    f->forked = true;
    return f;
}

void loadvm_state_free(LoadVMState *st)
{
    GHashTableIter it;
    gpointer key;

    if (!st) {
        return;
    }
    g_hash_table_iter_init(&it, st->set_up);
    while (g_hash_table_iter_next(&it, &key, NULL)) {
        SaveEntry *e = key;
        if (e->ops.load_cleanup) {
            e->ops.load_cleanup(e->opaque);
        }
    }
    g_hash_table_unref(st->live_by_id);
    g_hash_table_unref(st->set_up);
    g_hash_table_unref(st->loaded);
    mig_config_free(st->local);
    mig_config_free(st->source);
    g_free(st);
}

const MigConfig *loadvm_source_config(LoadVMState *st)
{
    return st->source;
}

bool loadvm_read_header(LoadVMState *st, MigStream *s, GError **errp)
{
    uint32_t magic = stream_get_be32(s);
    uint32_t version = stream_get_be32(s);

    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Reading the migration header: ");
        return false;
    }
    if (magic != MIG_MAGIC) {
        error_setg(errp, "Not a godwit migration stream (magic 0x%08" PRIx32
                   ", expected 0x%08x)", magic, MIG_MAGIC);
        return false;
    }
    if (version < MIG_VERSION_MIN || version > MIG_VERSION) {
        error_setg(errp, "Unsupported migration stream version %" PRIu32
                   " (this build loads %u to %u)", version, MIG_VERSION_MIN,
                   MIG_VERSION);
        return false;
    }
    uint8_t type = stream_get_u8(s);
    uint32_t len = stream_get_be32(s);
    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Reading the CONFIG record: ");
        return false;
    }
    if (type != MIG_REC_CONFIG) {
        error_setg(errp, "Expected a CONFIG record after the migration header, "
                   "got record type 0x%02x", type);
        return false;
    }
    if (len > MIG_CONFIG_MAX_LEN) {
        error_setg(errp, "CONFIG record too long (%" PRIu32 " bytes, max %u)",
                   len, MIG_CONFIG_MAX_LEN);
        return false;
    }
    g_autofree uint8_t *buf = stream_get_alloc(s, len);
    if (!buf) {
        stream_check(s, errp);
        g_prefix_error(errp, "Reading the CONFIG record: ");
        return false;
    }
    MigConfig *c = mig_config_decode(buf, len, errp);
    if (!c) {
        return false;
    }
    if (c->version != version) {
        error_setg(errp, "Malformed CONFIG record: it says version %" PRIu32
                   " but the header says %" PRIu32, c->version, version);
        mig_config_free(c);
        return false;
    }
    mig_config_free(st->source);
    st->source = c;
    if (st->local) {
        /* The destination's config speaks its own version; compare the rest. */
        st->local->version = c->version;
        return mig_config_compare(c, st->local, errp);
    }
    return true;
}

static bool check_footer(MigStream *s, uint32_t id, const char *idstr,
                         GError **errp)
{
    uint8_t t = stream_get_u8(s);

    if (stream_check(s, NULL) && t != MIG_REC_FOOTER) {
        error_setg(errp, "Missing section footer for '%s' (got byte 0x%02x)",
                   idstr, t);
        return false;
    }
    uint32_t got = stream_get_be32(s);
    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Reading the footer of section '%s': ", idstr);
        return false;
    }
    if (got != id) {
        error_setg(errp, "Section footer mismatch for '%s': expected id %"
                   PRIu32 ", got %" PRIu32, idstr, id, got);
        return false;
    }
    return true;
}

static bool check_version(SaveEntry *e, uint32_t version, GError **errp)
{
    if (version > e->version) {
        error_setg(errp, "Unsupported version %" PRIu32 " of migration record "
                   "'%s' instance %" PRIu32 " (this build loads up to %" PRIu32
                   ")", version, e->idstr, e->instance_id, e->version);
        return false;
    }
    return true;
}

static bool load_section_start(LoadVMState *st, MigStream *s, GError **errp)
{
    char idstr[STREAM_MAX_CSTR + 1];
    uint32_t id = stream_get_be32(s);

    stream_get_cstr(s, idstr);
    uint32_t instance = stream_get_be32(s);
    uint32_t version = stream_get_be32(s);
    if (!stream_check(s, errp)) {
        return false;
    }
    SaveEntry *e = find_entry(true, idstr, instance);
    if (!e) {
        error_setg(errp, "Unknown migration section '%s' instance %" PRIu32,
                   idstr, instance);
        return false;
    }
    if (!check_version(e, version, errp)) {
        return false;
    }
    if (g_hash_table_contains(st->live_by_id, GUINT_TO_POINTER(id)) ||
        g_hash_table_contains(st->set_up, e)) {
        error_setg(errp, "Duplicate start of migration section '%s' (id %"
                   PRIu32 ")", idstr, id);
        return false;
    }
    if (e->ops.load_setup && !e->ops.load_setup(e->opaque, errp)) {
        g_prefix_error(errp, "Setting up section '%s': ", idstr);
        return false;
    }
    LiveSection *ls = g_new0(LiveSection, 1);
    ls->e = e;
    ls->version = version;
    g_hash_table_insert(st->set_up, e, e);
    g_hash_table_insert(st->live_by_id, GUINT_TO_POINTER(id), ls);
    if (!e->ops.load(s, e->opaque, version, MIG_REC_SECTION_START, errp)) {
        g_prefix_error(errp, "Loading section '%s': ", idstr);
        return false;
    }
    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Loading section '%s': ", idstr);
        return false;
    }
    return check_footer(s, id, idstr, errp);
}

static bool load_section_part(LoadVMState *st, MigStream *s, uint8_t type,
                              GError **errp)
{
    uint32_t id = stream_get_be32(s);

    if (!stream_check(s, errp)) {
        return false;
    }
    LiveSection *ls = g_hash_table_lookup(st->live_by_id,
                                          GUINT_TO_POINTER(id));
    if (!ls) {
        error_setg(errp, "Unknown section id %" PRIu32 " in %s record", id,
                   mig_record_name(type));
        return false;
    }
    SaveEntry *e = ls->e;
    if (ls->ended) {
        error_setg(errp, "%s record for migration section '%s' after its end",
                   mig_record_name(type), e->idstr);
        return false;
    }
    /* PART/END carry no version: it is the one announced at START. */
    if (!e->ops.load(s, e->opaque, ls->version, type, errp)) {
        g_prefix_error(errp, "Loading section '%s': ", e->idstr);
        return false;
    }
    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Loading section '%s': ", e->idstr);
        return false;
    }
    if (!check_footer(s, id, e->idstr, errp)) {
        return false;
    }
    ls->ended = type == MIG_REC_SECTION_END;
    return true;
}

static bool load_section_full(LoadVMState *st, MigStream *s, GError **errp)
{
    char idstr[STREAM_MAX_CSTR + 1];
    uint32_t id = stream_get_be32(s);

    stream_get_cstr(s, idstr);
    uint32_t instance = stream_get_be32(s);
    uint32_t version = stream_get_be32(s);
    uint32_t len = stream_get_be32(s);
    if (!stream_check(s, errp)) {
        return false;
    }
    SaveEntry *e = find_entry(false, idstr, instance);
    if (!e) {
        error_setg(errp, "Unknown migration record '%s' instance %" PRIu32,
                   idstr, instance);
        return false;
    }
    if (!check_version(e, version, errp)) {
        return false;
    }
    if (g_hash_table_contains(st->loaded, e)) {
        error_setg(errp, "Duplicate migration record '%s' instance %" PRIu32,
                   idstr, instance);
        return false;
    }
    if (len > MIG_FULL_MAX_LEN) {
        error_setg(errp, "Migration record '%s' instance %" PRIu32 " is too "
                   "large (%" PRIu32 " bytes, max %u)", idstr, instance, len,
                   MIG_FULL_MAX_LEN);
        return false;
    }
    g_autofree uint8_t *buf = stream_get_alloc(s, len);
    uint32_t crc = stream_get_be32(s);
    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Reading record '%s' instance %" PRIu32 ": ",
                       idstr, instance);
        return false;
    }
    if (crc != mig_crc32(0, buf, len)) {
        error_setg(errp, "Checksum mismatch in migration record '%s' instance %"
                   PRIu32, idstr, instance);
        return false;
    }
    if (!check_footer(s, id, idstr, errp)) {
        return false;
    }
    if (st->ops->device_lock) {
        st->ops->device_lock(st->opaque, true);
    }
    bool ok = e->h.load(e->opaque, buf, len, version, errp);
    if (st->ops->device_lock) {
        st->ops->device_lock(st->opaque, false);
    }
    if (!ok) {
        g_prefix_error(errp, "Loading record '%s' instance %" PRIu32 ": ",
                       idstr, instance);
        return false;
    }
    g_hash_table_insert(st->loaded, e, e);
    return true;
}

static int refuse(uint16_t cmd, GError **errp)
{
    error_setg(errp, "Migration command %s is not supported by this "
               "destination", mig_command_name(cmd));
    return -1;
}

static LoadVMResult loadvm_loop(LoadVMState *st, MigStream *s, GError **errp);
static bool check_live_ended(LoadVMState *st, GError **errp);

static int load_package(LoadVMState *st, MigStream *s, uint32_t len,
                        GError **errp)
{
    if (len > MIG_PACKAGED_MAX_LEN) {
        error_setg(errp, "Postcopy package too large (%" PRIu32
                   " bytes, max %u)", len, MIG_PACKAGED_MAX_LEN);
        return -1;
    }
    if (st->depth > 0) {
        error_setg(errp, "Nested postcopy package");
        return -1;
    }
    /*
     * Read the whole package before loading any of it: device loaders may
     * fault on RAM that only the main stream can deliver (stream.md).
     */
    uint8_t *blob = stream_get_alloc(s, len);
    if (!blob) {
        stream_check(s, errp);
        g_prefix_error(errp, "Reading the postcopy package: ");
        return -1;
    }
    MigStream *ms = stream_new_mem_reader(blob, len, true);
    st->depth++;
    LoadVMResult r = loadvm_loop(st, ms, errp);
    st->depth--;
    stream_free(ms);
    if (r == LOADVM_ERROR) {
        g_prefix_error(errp, "In the postcopy package: ");
        return -1;
    }
    if (r == LOADVM_EOF) {
        error_setg(errp, "EOF record inside the postcopy package");
        return -1;
    }
    if (r != LOADVM_QUIT) {
        /*
         * LISTEN handed the main stream to the listen thread: this thread
         * must not read it again, and only RUN ends its loop. A package
         * that never listened is no postcopy switch either (stream.md).
         */
        error_setg(errp, "The postcopy package ended without POSTCOPY_RUN");
        return -1;
    }
    return LOADVM_QUIT;
}

/*
 * The package holds, in order: LISTEN, device records and PINGs, RUN
 * (stream.md). Anything else would run on the incoming thread while the
 * listen thread, started by LISTEN, loads RAM from the main stream.
 */
static bool package_command_allowed(LoadVMState *st, MigStream *s, uint16_t cmd,
                                    GError **errp)
{
    if (!st->listened && cmd != MIG_CMD_POSTCOPY_LISTEN) {
        error_setg(errp, "%s before POSTCOPY_LISTEN", mig_command_name(cmd));
        return false;
    }
    switch (cmd) {
    case MIG_CMD_POSTCOPY_LISTEN:
    case MIG_CMD_PING:
        return true;
    case MIG_CMD_POSTCOPY_RUN:
        /* RUN starts the guest: nothing may follow it unread. */
        if (!stream_at_eof(s)) {
            error_setg(errp, "POSTCOPY_RUN is not its last record");
            return false;
        }
        return true;
    default:
        error_setg(errp, "command %s is not allowed there", mig_command_name(cmd));
        return false;
    }
}

static int load_command(LoadVMState *st, MigStream *s, GError **errp)
{
    const LoadVMCommandOps *o = st->ops;
    uint16_t cmd = stream_get_be16(s);
    uint16_t len = stream_get_be16(s);
    const uint8_t *p = stream_get_ptr(s, len);

    if (!stream_check(s, errp)) {
        g_prefix_error(errp, "Reading a command: ");
        return -1;
    }
    int fixed = mig_command_fixed_len(cmd);
    if (fixed == -2) {
        error_setg(errp, "Unknown migration command 0x%04x", cmd);
        return -1;
    }
    if (fixed >= 0 && len != fixed) {
        error_setg(errp, "Migration command %s has bad length %u "
                   "(expected %d)", mig_command_name(cmd), len, fixed);
        return -1;
    }
    if (st->depth > 0 && !package_command_allowed(st, s, cmd, errp)) {
        return -1;
    }
    switch (cmd) {
    case MIG_CMD_OPEN_RETURN_PATH:
        return o->open_return_path ? o->open_return_path(st->opaque, errp)
                                   : refuse(cmd, errp);
    case MIG_CMD_PING:
        return o->ping ? o->ping(st->opaque, be32_load(p), errp)
                       : refuse(cmd, errp);
    case MIG_CMD_POSTCOPY_ADVISE: {
        if (!o->postcopy_advise) {
            return refuse(cmd, errp);
        }
        if (st->depth > 0 || st->advised) {
            error_setg(errp, "POSTCOPY_ADVISE is only valid once, before the postcopy "
                       "package");
            return -1;
        }
        int r = o->postcopy_advise(st->opaque, be64_load(p), be64_load(p + 8), errp);
        st->advised = r == 0;
        return r;
    }
    case MIG_CMD_POSTCOPY_LISTEN: {
        if (!o->postcopy_listen) {
            return refuse(cmd, errp);
        }
        /*
         * LISTEN starts a second reader of the main stream: only valid
         * where this thread has stopped reading it, inside the package
         * (read whole into memory), and only once.
         */
        if (st->depth == 0) {
            error_setg(errp, "POSTCOPY_LISTEN outside the postcopy package");
            return -1;
        }
        if (!st->advised) {
            error_setg(errp, "POSTCOPY_LISTEN without POSTCOPY_ADVISE");
            return -1;
        }
        if (st->listened) {
            error_setg(errp, "Second POSTCOPY_LISTEN in one migration");
            return -1;
        }
        int r = o->postcopy_listen(st->opaque, errp);
        st->listened = r == 0;
        return r;
    }
    case MIG_CMD_POSTCOPY_RUN:
        if (!o->postcopy_run) {
            return refuse(cmd, errp);
        }
        if (st->depth == 0 || !st->listened) {
            error_setg(errp, "POSTCOPY_RUN outside the postcopy package or before "
                       "POSTCOPY_LISTEN");
            return -1;
        }
        return o->postcopy_run(st->opaque, errp);
    case MIG_CMD_POSTCOPY_RESUME:
        return o->postcopy_resume ? o->postcopy_resume(st->opaque, errp)
                                  : refuse(cmd, errp);
    case MIG_CMD_POSTCOPY_RAM_DISCARD: {
        char block[STREAM_MAX_CSTR + 1];
        g_autofree MigDiscardRange *r = g_new(MigDiscardRange,
                                              MIG_DISCARD_MAX_RANGES);
        int n = mig_cmd_discard_decode(p, len, block, r, errp);
        if (n < 0) {
            return -1;
        }
        return o->postcopy_discard ?
               o->postcopy_discard(st->opaque, block, r, n, errp)
               : refuse(cmd, errp);
    }
    case MIG_CMD_RECV_BITMAP: {
        char block[STREAM_MAX_CSTR + 1];
        if (len < 2 || p[0] + 1u != len) {
            error_setg(errp, "Malformed RECV_BITMAP command (length %u)", len);
            return -1;
        }
        if (memchr(p + 1, 0, p[0])) {
            error_setg(errp, "Malformed RECV_BITMAP command (NUL byte in the block name)");
            return -1;
        }
        memcpy(block, p + 1, p[0]);
        block[p[0]] = '\0';
        return o->recv_bitmap ? o->recv_bitmap(st->opaque, block, errp)
                              : refuse(cmd, errp);
    }
    case MIG_CMD_PACKAGED:
        if (st->forked) {
            error_setg(errp, "PACKAGED after the postcopy switch");
            return -1;
        }
        return load_package(st, s, be32_load(p), errp);
    }
    error_setg(errp, "Unknown migration command 0x%04x", cmd);
    return -1;
}

/* Record types inside the package: commands, and device records after LISTEN. */
static bool package_record_allowed(LoadVMState *st, uint8_t type, GError **errp)
{
    switch (type) {
    case MIG_REC_COMMAND:
        return true;    /* package_command_allowed() checks which */
    case MIG_REC_SECTION_FULL:
        if (st->listened) {
            return true;
        }
        error_setg(errp, "device record before POSTCOPY_LISTEN");
        return false;
    case MIG_REC_SECTION_START:
    case MIG_REC_SECTION_PART:
    case MIG_REC_SECTION_END:
        /* RAM after the switch belongs to the listen thread, on the main stream. */
        error_setg(errp, "%s record is not allowed there (RAM goes on the main stream)",
                   mig_record_name(type));
        return false;
    default:
        return true;    /* EOF and unknown types fail with their own message */
    }
}

/*
 * After the postcopy switch (the listen thread's view): the device state
 * came in the package and the guest may run, so a device record here would
 * rewrite live vCPU or device state without the BQL. Only RAM continues.
 */
static bool switched_record_allowed(uint8_t type, GError **errp)
{
    switch (type) {
    case MIG_REC_SECTION_FULL:
    case MIG_REC_SECTION_START:
        error_setg(errp, "%s record after the postcopy switch (only RAM may follow the "
                   "package)", mig_record_name(type));
        return false;
    default:
        return true;
    }
}

static LoadVMResult loadvm_loop(LoadVMState *st, MigStream *s, GError **errp)
{
    for (;;) {
        if (st->depth > 0 && stream_at_eof(s)) {
            return LOADVM_END_OF_PACKAGE;
        }
        uint8_t type = stream_get_u8(s);
        if (!stream_check(s, errp)) {
            return LOADVM_ERROR;
        }
        bool ok;
        if (st->depth > 0 && !package_record_allowed(st, type, errp)) {
            return LOADVM_ERROR;
        }
        if (st->forked && !switched_record_allowed(type, errp)) {
            return LOADVM_ERROR;
        }
        switch (type) {
        case MIG_REC_EOF:
            /*
             * All of the guest must have arrived: every device record
             * (the fork's came in the package) and every live section,
             * started and ended. A stream without RAM would otherwise
             * start the guest on empty memory.
             */
            if (st->depth == 0 && !st->forked && !loadvm_check_all_loaded(st, errp)) {
                return LOADVM_ERROR;
            }
            if (st->depth == 0 && !check_live_ended(st, errp)) {
                return LOADVM_ERROR;
            }
            return LOADVM_EOF;
        case MIG_REC_SECTION_START:
            ok = load_section_start(st, s, errp);
            break;
        case MIG_REC_SECTION_PART:
        case MIG_REC_SECTION_END:
            ok = load_section_part(st, s, type, errp);
            break;
        case MIG_REC_SECTION_FULL:
            ok = load_section_full(st, s, errp);
            break;
        case MIG_REC_COMMAND: {
            int r = load_command(st, s, errp);
            if (r < 0) {
                return LOADVM_ERROR;
            }
            if (r == LOADVM_QUIT) {
                return LOADVM_QUIT;
            }
            ok = true;
            break;
        }
        default:
            error_setg(errp, "Unknown migration record type 0x%02x at byte %"
                       PRIu64, type, stream_bytes(s) - 1);
            return LOADVM_ERROR;
        }
        if (!ok) {
            return LOADVM_ERROR;
        }
    }
}

LoadVMResult loadvm_main(LoadVMState *st, MigStream *s, GError **errp)
{
    return loadvm_loop(st, s, errp);
}

/* The section started for live entry @e (shared with a fork), or NULL. */
static LiveSection *live_section_of(LoadVMState *st, SaveEntry *e)
{
    GHashTableIter it;
    gpointer v;

    g_hash_table_iter_init(&it, st->live_by_id);
    while (g_hash_table_iter_next(&it, NULL, &v)) {
        LiveSection *ls = v;
        if (ls->e == e) {
            return ls;
        }
    }
    return NULL;
}

bool loadvm_check_all_loaded(LoadVMState *st, GError **errp)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (e->live && !live_section_of(st, e)) {
            error_setg(errp, "Missing migration section '%s' instance %" PRIu32,
                       e->idstr, e->instance_id);
            return false;
        }
        if (!e->live && !g_hash_table_contains(st->loaded, e)) {
            error_setg(errp, "Missing migration record '%s' instance %" PRIu32,
                       e->idstr, e->instance_id);
            return false;
        }
    }
    return true;
}

/* Every registered live section was started and has ended (at EOF). */
static bool check_live_ended(LoadVMState *st, GError **errp)
{
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (!e->live) {
            continue;
        }
        LiveSection *ls = live_section_of(st, e);
        if (!ls) {
            error_setg(errp, "Missing migration section '%s' instance %" PRIu32,
                       e->idstr, e->instance_id);
            return false;
        }
        if (!ls->ended) {
            error_setg(errp, "Migration section '%s' instance %" PRIu32 " did not end "
                       "(no SECTION_END before EOF)", e->idstr, e->instance_id);
            return false;
        }
    }
    return true;
}

void loadvm_post_load_all(LoadVMState *st)
{
    if (st->ops->device_lock) {
        st->ops->device_lock(st->opaque, true);
    }
    for (guint i = 0; entries && i < entries->len; i++) {
        SaveEntry *e = entries->pdata[i];
        if (!e->live && e->h.post_load_all) {
            e->h.post_load_all(e->opaque);
        }
    }
    if (st->ops->device_lock) {
        st->ops->device_lock(st->opaque, false);
    }
}
