/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * file back-end: output only, truncated at open like QEMU's, written by
 * the output queue's thread so a vCPU never waits for the disk.
 */
#include "qemu/osdep.h"

#include <fcntl.h>

#include "chardev/char.h"
#include "chardev/char-internal.h"

typedef struct FileState {
    int fd;
    CharOut *out;
} FileState;

static void file_write(Chardev *chr, const uint8_t *buf, size_t len)
{
    FileState *s = chr->be_opaque;

    char_out_write(s->out, buf, len);
}

static bool file_drain(Chardev *chr, int timeout_ms)
{
    FileState *s = chr->be_opaque;

    return char_out_drain(s->out, timeout_ms);
}

static void file_close(Chardev *chr)
{
    FileState *s = chr->be_opaque;

    char_out_free(s->out);
    close(s->fd);
    g_free(s);
}

static const ChardevOps file_ops = {
    .name = "file",
    .write = file_write,
    .drain = file_drain,
    .close = file_close,
};

Chardev *chardev_file_new(const char *id, const char *path, GError **errp)
{
    g_autofree char *label = g_strdup_printf("file:%s", path);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    FileState *s;
    Chardev *chr;

    if (fd < 0) {
        error_setg_errno(errp, errno, "chardev: could not open '%s'", path);
        return NULL;
    }
    s = g_new0(FileState, 1);
    s->fd = fd;
    s->out = char_out_new(fd, false, 1024 * 1024);
    chr = chardev_alloc(&file_ops, id, label);
    chr->be_opaque = s;
    return chr;
}
