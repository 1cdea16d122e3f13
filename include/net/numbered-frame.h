/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Numbered test frames: what the guest OS (gwos) sends through its
 * virtio-net device and checks when they come back from a vhost-user
 * back-end that reflects them (our example back-end, or DPDK testpmd
 * forwarding a port to itself). Header-only, needing only <stdint.h> and
 * qemu/byteorder.h, so the freestanding guest and host programs share one
 * definition.
 *
 * Layout (all multi-byte fields little-endian), NF_HDR_LEN = 40 bytes
 * after the 14-byte Ethernet header:
 *
 *   0  u8[6]  dst MAC (the sender writes ff:ff:ff:ff:ff:ff)
 *   6  u8[6]  src MAC (the sender's)
 *  12  be16   ethertype NF_ETHERTYPE (IEEE 802 local experimental 1)
 *  14  u32    magic NF_MAGIC
 *  18  u16    version NF_VERSION
 *  20  u16    stream: which sender (e.g. a vCPU), so seq is per stream
 *  22  u32    length of the whole frame in bytes (Ethernet header included)
 *  26  u64    seq: 0, 1, 2, ... per stream
 *  34  u64    sent_ns: the sender's clock when it queued the frame
 *  42  u32    pattern checksum: nf_fill() below, over bytes 54..length-1
 *  46  u32    header checksum: nf_hdr_sum() over bytes 14..45
 *  50  u32    reserved, 0
 *  54  ...    payload: byte i (from 54) is nf_pattern_byte(seq, i)
 *
 * A reflector may rewrite the MAC addresses (testpmd macswap) and nothing
 * else; everything from byte 14 on must come back unchanged.
 */
#ifndef GODWIT_NET_NUMBERED_FRAME_H
#define GODWIT_NET_NUMBERED_FRAME_H

#include <stdint.h>
#include "qemu/byteorder.h"

#define NF_ETHERTYPE   0x88b5u
#define NF_MAGIC       0x464e5747u      /* "GWNF" read as little-endian */
#define NF_VERSION     1u
#define NF_ETH_LEN     14u
#define NF_HDR_LEN     40u
#define NF_PAYLOAD_OFF (NF_ETH_LEN + NF_HDR_LEN)
#define NF_MIN_LEN     64u
#define NF_MAX_LEN     1514u

/* Offsets of the fields, from the start of the frame. */
enum {
    NF_OFF_MAGIC = 14, NF_OFF_VERSION = 18, NF_OFF_STREAM = 20,
    NF_OFF_LENGTH = 22, NF_OFF_SEQ = 26, NF_OFF_SENT = 34,
    NF_OFF_PSUM = 42, NF_OFF_HSUM = 46, NF_OFF_RSVD = 50,
};

/* What nf_check() found. */
enum {
    NF_OK = 0,
    NF_NOT_OURS = 1,     /* wrong ethertype, magic or version: not a numbered frame */
    NF_BAD_LENGTH = 2,   /* length field disagrees with what arrived */
    NF_BAD_HEADER = 3,   /* header checksum mismatch: corrupted */
    NF_BAD_PAYLOAD = 4,  /* payload differs from the pattern: corrupted */
};

/* Short names for the header's little-endian fields. */
static inline void nf_put16(uint8_t *p, uint16_t v)
{
    le16_store(p, v);
}

static inline void nf_put32(uint8_t *p, uint32_t v)
{
    le32_store(p, v);
}

static inline void nf_put64(uint8_t *p, uint64_t v)
{
    le64_store(p, v);
}

static inline uint16_t nf_get16(const uint8_t *p)
{
    return le16_load(p);
}

static inline uint32_t nf_get32(const uint8_t *p)
{
    return le32_load(p);
}

static inline uint64_t nf_get64(const uint8_t *p)
{
    return le64_load(p);
}

/* Payload byte @i (offset from the frame start) of frame @seq. */
static inline uint8_t nf_pattern_byte(uint64_t seq, uint32_t i)
{
    uint32_t x = (uint32_t)seq * 2654435761u ^ (uint32_t)(seq >> 32) ^ (i * 40503u);
    return (uint8_t)(x ^ (x >> 11) ^ (x >> 19));
}

/* FNV-1a over @len bytes: cheap enough for a guest at line rate. */
static inline uint32_t nf_sum(const uint8_t *p, uint32_t len)
{
    uint32_t h = 2166136261u;

    for (uint32_t i = 0; i < len; i++) {
        h = (h ^ p[i]) * 16777619u;
    }
    return h;
}

static inline uint32_t nf_hdr_sum(const uint8_t *frame)
{
    return nf_sum(frame + NF_ETH_LEN, NF_OFF_HSUM - NF_ETH_LEN);
}

/*
 * Build frame @seq of @stream, @len bytes (clamped to NF_MIN_LEN..NF_MAX_LEN),
 * into @frame. Returns the length written.
 */
static inline uint32_t nf_fill(uint8_t *frame, uint32_t len, const uint8_t src_mac[6],
                               uint16_t stream, uint64_t seq, uint64_t sent_ns)
{
    if (len < NF_MIN_LEN) {
        len = NF_MIN_LEN;
    }
    if (len > NF_MAX_LEN) {
        len = NF_MAX_LEN;
    }
    for (int i = 0; i < 6; i++) {
        frame[i] = 0xff;
        frame[6 + i] = src_mac[i];
    }
    frame[12] = NF_ETHERTYPE >> 8;
    frame[13] = NF_ETHERTYPE & 0xff;
    nf_put32(frame + NF_OFF_MAGIC, NF_MAGIC);
    nf_put16(frame + NF_OFF_VERSION, NF_VERSION);
    nf_put16(frame + NF_OFF_STREAM, stream);
    nf_put32(frame + NF_OFF_LENGTH, len);
    nf_put64(frame + NF_OFF_SEQ, seq);
    nf_put64(frame + NF_OFF_SENT, sent_ns);
    for (uint32_t i = NF_PAYLOAD_OFF; i < len; i++) {
        frame[i] = nf_pattern_byte(seq, i);
    }
    nf_put32(frame + NF_OFF_PSUM, nf_sum(frame + NF_PAYLOAD_OFF, len - NF_PAYLOAD_OFF));
    nf_put32(frame + NF_OFF_RSVD, 0);
    nf_put32(frame + NF_OFF_HSUM, nf_hdr_sum(frame));
    return len;
}

/*
 * Check a received frame of @len bytes. On NF_OK, *stream and *seq are set.
 * The payload is compared byte by byte with the pattern (not only its sum),
 * so a corruption anywhere is seen.
 */
static inline int nf_check(const uint8_t *frame, uint32_t len,
                           uint16_t *stream, uint64_t *seq)
{
    if (len < NF_MIN_LEN || frame[12] != (NF_ETHERTYPE >> 8) ||
        frame[13] != (NF_ETHERTYPE & 0xff) ||
        nf_get32(frame + NF_OFF_MAGIC) != NF_MAGIC ||
        nf_get16(frame + NF_OFF_VERSION) != NF_VERSION) {
        return NF_NOT_OURS;
    }
    if (nf_get32(frame + NF_OFF_HSUM) != nf_hdr_sum(frame)) {
        return NF_BAD_HEADER;
    }
    if (nf_get32(frame + NF_OFF_LENGTH) != len) {
        return NF_BAD_LENGTH;
    }
    uint64_t s = nf_get64(frame + NF_OFF_SEQ);
    for (uint32_t i = NF_PAYLOAD_OFF; i < len; i++) {
        if (frame[i] != nf_pattern_byte(s, i)) {
            return NF_BAD_PAYLOAD;
        }
    }
    *stream = nf_get16(frame + NF_OFF_STREAM);
    *seq = s;
    return NF_OK;
}

#endif
