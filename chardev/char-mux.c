/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Mux: several front-ends (guest serial, HMP monitor) sharing one back-end,
 * usually stdio under -nographic. C-a c moves the input focus, C-a x quits,
 * C-a h prints help, C-a C-a sends C-a. Output of the front-end that has the
 * focus goes straight out; output of the others is held (up to
 * MUX_HELD_CAP bytes each, the rest dropped) and shown when they get it,
 * so the guest console never scribbles over a monitor session.
 */
#include "qemu/osdep.h"

#include "chardev/char.h"
#include "chardev/char-internal.h"
#include "sysemu/runstate.h"

struct CharMux {
    Chardev *be;
    /* Protects fe[], nr_fe, focus and held[] against writers on vCPU threads. */
    GMutex lock;
    Chardev *fe[MUX_MAX_FRONTENDS];
    GByteArray *held[MUX_MAX_FRONTENDS];
    unsigned nr_fe;
    int focus;                  /* slot, or -1 before anyone attached */
    bool user_switched;         /* C-a c was used: stop moving the focus */
    bool force;                 /* escapes on even with one front-end */
    bool got_escape;            /* main thread only */
};

CharMux *char_mux_attach(Chardev *be, bool force)
{
    if (!be->mux) {
        CharMux *mux = g_new0(CharMux, 1);

        g_mutex_init(&mux->lock);
        mux->be = be;
        mux->focus = -1;
        be->mux = mux;
    }
    if (force) {
        be->mux->force = true;
    }
    return be->mux;
}

Chardev *char_mux_backend(CharMux *mux)
{
    return mux->be;
}

void char_mux_add_frontend(CharMux *mux, Chardev *fe)
{
    g_mutex_lock(&mux->lock);
    if (fe->mux_parent != mux && mux->nr_fe < MUX_MAX_FRONTENDS) {
        fe->mux_parent = mux;
        fe->mux_slot = mux->nr_fe;
        mux->fe[mux->nr_fe] = fe;
        mux->held[mux->nr_fe] = g_byte_array_new();
        mux->nr_fe++;
    }
    g_mutex_unlock(&mux->lock);
}

static const ChardevOps mux_fe_ops = {
    .name = "mux-frontend",
};

Chardev *char_mux_new_frontend(Chardev *be, GError **errp)
{
    CharMux *mux = char_mux_attach(be, false);
    g_autofree char *label = NULL;
    Chardev *fe;

    if (mux->nr_fe >= MUX_MAX_FRONTENDS) {
        error_setg(errp, "chardev: too many front-ends on '%s' (at most %d)",
                   be->label, MUX_MAX_FRONTENDS);
        return NULL;
    }
    label = g_strdup_printf("%s[%u]", be->label, mux->nr_fe);
    fe = chardev_alloc(&mux_fe_ops, NULL, label);
    char_mux_add_frontend(mux, fe);
    return fe;
}

static unsigned mux_attached_count_locked(CharMux *mux)
{
    unsigned n = 0;

    for (unsigned i = 0; i < mux->nr_fe; i++) {
        n += mux->fe[i]->fe_read != NULL || mux->fe[i]->fe_event != NULL;
    }
    return n;
}

bool char_mux_escapes_enabled(CharMux *mux)
{
    bool on;

    g_mutex_lock(&mux->lock);
    on = mux->force || mux_attached_count_locked(mux) >= 2;
    g_mutex_unlock(&mux->lock);
    return on;
}

int char_mux_focus(CharMux *mux)
{
    int f;

    g_mutex_lock(&mux->lock);
    f = mux->focus;
    g_mutex_unlock(&mux->lock);
    return f;
}

/* Give the focus to @slot and show what it wrote meanwhile. Lock held. */
static bool mux_set_focus_locked(CharMux *mux, int slot)
{
    GByteArray *held = mux->held[slot];
    bool had_output = held->len > 0;

    mux->focus = slot;
    if (had_output && mux->be->ops->write) {
        mux->be->ops->write(mux->be, held->data, held->len);
    }
    g_byte_array_set_size(held, 0);
    return had_output;
}

void char_mux_frontend_attached(CharMux *mux, Chardev *fe)
{
    g_mutex_lock(&mux->lock);
    if (mux->focus < 0) {
        mux_set_focus_locked(mux, fe->mux_slot);
    } else if (!mux->user_switched && mux->fe[mux->focus]->fe_is_monitor &&
               !fe->fe_is_monitor) {
        /* The guest console starts in front, the monitor behind C-a c. */
        mux_set_focus_locked(mux, fe->mux_slot);
    }
    g_mutex_unlock(&mux->lock);
}

void char_mux_fe_write(CharMux *mux, Chardev *fe, const uint8_t *buf, size_t len)
{
    g_mutex_lock(&mux->lock);
    if (mux->focus < 0 || (int)fe->mux_slot == mux->focus) {
        if (mux->be->ops->write) {
            mux->be->ops->write(mux->be, buf, len);
        }
    } else {
        GByteArray *held = mux->held[fe->mux_slot];
        size_t room = MUX_HELD_CAP > held->len ? MUX_HELD_CAP - held->len : 0;

        g_byte_array_append(held, buf, MIN(len, room));
    }
    g_mutex_unlock(&mux->lock);
}

static void mux_be_puts(CharMux *mux, const char *s)
{
    if (mux->be->ops->write) {
        mux->be->ops->write(mux->be, (const uint8_t *)s, strlen(s));
    }
}

static void mux_print_help(CharMux *mux)
{
    mux_be_puts(mux, "\r\n"
                "C-a h    print this help\r\n"
                "C-a x    exit godwit\r\n"
                "C-a c    switch between the console and the monitor\r\n"
                "C-a C-a  send C-a\r\n");
}

static void mux_switch_focus(CharMux *mux)
{
    Chardev *fe = NULL;
    bool had_output = false;

    g_mutex_lock(&mux->lock);
    for (unsigned step = 1; step <= mux->nr_fe; step++) {
        int slot = (mux->focus + step) % mux->nr_fe;
        Chardev *cand = mux->fe[slot];

        if (cand->fe_read || cand->fe_event) {
            mux->user_switched = true;
            had_output = mux_set_focus_locked(mux, slot);
            fe = cand;
            break;
        }
    }
    g_mutex_unlock(&mux->lock);

    /*
     * Tell the new front-end it is in front (outside the lock: it will
     * print). Not when its held output was just shown: that already ends
     * where the user left it.
     */
    if (fe && !had_output && fe->fe_event) {
        fe->fe_event(fe->fe_opaque, true);
    }
}

static void mux_deliver(CharMux *mux, const uint8_t *buf, size_t len)
{
    Chardev *fe = NULL;
    int focus = char_mux_focus(mux);

    if (len == 0 || focus < 0) {
        return;
    }
    fe = mux->fe[focus];
    if (fe->fe_read) {
        fe->fe_read(fe->fe_opaque, buf, len);
    }
}

void char_mux_input(CharMux *mux, const uint8_t *buf, size_t len)
{
    static const uint8_t esc = MUX_ESCAPE_CHAR;
    size_t run = 0;     /* start of the plain bytes not yet delivered */

    if (!char_mux_escapes_enabled(mux)) {
        mux_deliver(mux, buf, len);
        return;
    }
    for (size_t i = 0; i < len; i++) {
        uint8_t c = buf[i];

        if (mux->got_escape) {
            mux->got_escape = false;
            run = i + 1;
            switch (c) {
            case 'c':
                mux_switch_focus(mux);
                break;
            case 'x':
                mux_be_puts(mux, "\r\ngodwit: terminating on C-a x\r\n");
                qemu_system_shutdown_request("host-quit");
                break;
            case 'h':
            case '?':
                mux_print_help(mux);
                break;
            case MUX_ESCAPE_CHAR:
                mux_deliver(mux, &esc, 1);
                break;
            default:
                /* Unknown escapes are swallowed, as QEMU does. */
                break;
            }
        } else if (c == MUX_ESCAPE_CHAR) {
            mux_deliver(mux, buf + run, i - run);
            mux->got_escape = true;
            run = i + 1;
        }
    }
    if (run < len) {
        mux_deliver(mux, buf + run, len - run);
    }
}

void char_mux_event(CharMux *mux, bool connected)
{
    Chardev *fes[MUX_MAX_FRONTENDS];
    unsigned n;

    g_mutex_lock(&mux->lock);
    n = mux->nr_fe;
    memcpy(fes, mux->fe, sizeof(fes[0]) * n);
    g_mutex_unlock(&mux->lock);
    for (unsigned i = 0; i < n; i++) {
        if (fes[i]->fe_event) {
            fes[i]->fe_event(fes[i]->fe_opaque, connected);
        }
    }
}

void char_mux_free(CharMux *mux)
{
    for (unsigned i = 0; i < mux->nr_fe; i++) {
        g_byte_array_free(mux->held[i], true);
    }
    g_mutex_clear(&mux->lock);
    g_free(mux);
}
