/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target: what a source does with its return path. The input is
 * the byte stream a destination sends: framed messages (be16 type, be16
 * length, payload), decoded with mig_rp_decode() and handled as the
 * source's return-path thread does: page requests are checked and queued
 * against a 1 MiB RAM block in plain memory, ERROR text is made printable.
 */
#include "qemu/osdep.h"
#include "qemu/byteorder.h"
#include "fuzz-machine.h"

#include "migration/migration.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_machine();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char last_block[256] = "";
    size_t off = 0;

    while (size - off >= MIG_RP_HDR_LEN) {
        g_autoptr(GError) err = NULL;
        unsigned type = be16_load(data + off);
        unsigned len = be16_load(data + off + 2);
        MigRpMsg m;

        off += MIG_RP_HDR_LEN;
        if (len > MIG_RP_MAX_LEN || len > size - off) {
            break;          /* too long, or truncated: the reader gives up */
        }
        if (!mig_rp_decode(type, data + off, len, &m, &err)) {
            break;
        }
        off += len;
        if (m.type == MIG_RP_MSG_REQ_PAGES_ID || m.type == MIG_RP_MSG_REQ_PAGES) {
            if (m.type == MIG_RP_MSG_REQ_PAGES_ID) {
                g_strlcpy(last_block, m.block, sizeof(last_block));
            } else if (!last_block[0]) {
                break;
            }
            if (!ram_queue_request(last_block, m.start, m.len, &err)) {
                break;
            }
        } else if (m.type == MIG_RP_MSG_ERROR) {
            g_autofree char *text = mig_text_sanitize(m.block);
            if (!g_utf8_validate(text, -1, NULL)) {
                __builtin_trap();     /* error-desc must stay valid JSON text */
            }
            break;
        } else if (m.type == MIG_RP_MSG_SHUT) {
            break;
        }
    }
    /* Drop the queued requests, as a finished migration does. */
    ram_stop_tracking();
    return 0;
}
