#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Print the records of a godwit migration stream file.

The stream layout is documented in docs/devel/migration/stream.md and
defined in include/migration/format.h and migration/ram-format.h; keep
the three in sync. Produce a file with `migrate file:/tmp/s` (or
`migrate "exec:cat > /tmp/s"`) and run:

    scripts/analyze-migration.py /tmp/s            # one line per record
    scripts/analyze-migration.py --pages /tmp/s    # plus every RAM record

Exit status: 0 if the stream parsed to its EOF record (or cleanly to the
end of a file cut after a postcopy package), 1 on a malformed stream.
"""

import argparse
import struct
import sys
import zlib

MAGIC = 0x47445754          # "GDWT"
VERSIONS = (1,)

REC_EOF, REC_START, REC_PART, REC_END, REC_FULL = 0x00, 0x01, 0x02, 0x03, 0x04
REC_CONFIG, REC_COMMAND, REC_FOOTER = 0x07, 0x08, 0x7e
REC_NAMES = {REC_EOF: "EOF", REC_START: "SECTION_START",
             REC_PART: "SECTION_PART", REC_END: "SECTION_END",
             REC_FULL: "SECTION_FULL", REC_CONFIG: "CONFIG",
             REC_COMMAND: "COMMAND", REC_FOOTER: "FOOTER"}

CMD_NAMES = {0: "INVALID", 1: "OPEN_RETURN_PATH", 2: "PING",
             3: "POSTCOPY_ADVISE", 4: "POSTCOPY_LISTEN", 5: "POSTCOPY_RUN",
             6: "POSTCOPY_RAM_DISCARD", 7: "PACKAGED", 8: "RESERVED_8",
             9: "POSTCOPY_RESUME", 10: "RECV_BITMAP"}
CMD_FIXED_LEN = {1: 0, 2: 4, 3: 16, 4: 0, 5: 0, 7: 4, 9: 0}

RAM_ZERO, RAM_MEM_SIZE, RAM_PAGE, RAM_EOS = 0x002, 0x004, 0x008, 0x010
RAM_CONTINUE, RAM_ZERO_RUN, RAM_PAGE_RUN = 0x020, 0x040, 0x080
RAM_TYPES = RAM_ZERO | RAM_MEM_SIZE | RAM_PAGE | RAM_EOS | RAM_ZERO_RUN | \
    RAM_PAGE_RUN
PAGE = 4096
MAX_RUN = 1 << 18
FULL_MAX = 16 << 20


class StreamError(Exception):
    pass


class Reader:
    def __init__(self, data, base=0):
        self.data = data
        self.pos = 0
        self.base = base       # offset of data[0] in the file, for messages

    def at_end(self):
        return self.pos >= len(self.data)

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise StreamError("unexpected end of stream at byte %d"
                              % (self.base + len(self.data)))
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def be16(self):
        return struct.unpack(">H", self.take(2))[0]

    def be32(self):
        return struct.unpack(">I", self.take(4))[0]

    def be64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def cstr(self):
        return self.take(self.u8()).decode("utf-8", "replace")

    def where(self):
        return self.base + self.pos


class RamStats:
    def __init__(self):
        self.zero_pages = 0
        self.data_pages = 0
        self.records = 0
        self.per_block = {}

    def add(self, block, zero, n):
        self.records += 1
        z, d = self.per_block.get(block, (0, 0))
        if zero:
            self.zero_pages += n
            z += n
        else:
            self.data_pages += n
            d += n
        self.per_block[block] = (z, d)

    def merge(self, other):
        self.zero_pages += other.zero_pages
        self.data_pages += other.data_pages
        self.records += other.records
        for b, (z, d) in other.per_block.items():
            oz, od = self.per_block.get(b, (0, 0))
            self.per_block[b] = (oz + z, od + d)


class Analyzer:
    def __init__(self, pages, out):
        self.pages = pages
        self.out = out
        self.sections = {}          # id -> (name, instance, version)
        self.ram_last_block = None
        self.total = RamStats()

    def say(self, indent, text):
        self.out.write("  " * indent + text + "\n")

    # --- RAM section payloads (ram-format.h) ---
    def ram_payload(self, r, depth):
        stats = RamStats()
        while True:
            at = r.where()
            word = r.be64()
            flags = word & 0xfff
            offset = word & ~0xfff
            kind = flags & RAM_TYPES
            if flags & ~(RAM_TYPES | RAM_CONTINUE) or kind == 0 or \
                    kind & (kind - 1):
                raise StreamError("bad RAM record flags 0x%x at byte %d"
                                  % (flags, at))
            if kind == RAM_EOS:
                if offset or flags & RAM_CONTINUE:
                    raise StreamError("malformed RAM EOS at byte %d" % at)
                break
            if kind == RAM_MEM_SIZE:
                total, blocks = offset, []
                acc = 0
                while acc < total:
                    name = r.cstr()
                    size, psize = r.be64(), r.be64()
                    if size == 0 or size > total - acc:
                        raise StreamError("RAM block '%s' size %d does not fit"
                                          " total %d" % (name, size, total))
                    acc += size
                    blocks.append("%s 0x%x (page 0x%x)" % (name, size, psize))
                self.say(depth, "ram setup: %d bytes: %s"
                         % (total, ", ".join(blocks)))
                continue
            if flags & RAM_CONTINUE:
                if self.ram_last_block is None:
                    raise StreamError("RAM CONTINUE without a block at byte %d"
                                      % at)
            else:
                self.ram_last_block = r.cstr()
                if not self.ram_last_block:
                    raise StreamError("empty RAM block name at byte %d" % at)
            n = 1
            if kind in (RAM_ZERO_RUN, RAM_PAGE_RUN):
                n = r.be32()
                if n < 2 or n > MAX_RUN:
                    raise StreamError("bad RAM run length %d at byte %d"
                                      % (n, at))
            zero = kind in (RAM_ZERO, RAM_ZERO_RUN)
            if not zero:
                r.take(n * PAGE)
            stats.add(self.ram_last_block, zero, n)
            if self.pages:
                self.say(depth, "%s %s 0x%x +%d page%s" % (
                    "zero" if zero else "data", self.ram_last_block, offset,
                    n, "" if n == 1 else "s"))
        self.say(depth, "ram: %d records, %d data pages, %d zero pages"
                 % (stats.records, stats.data_pages, stats.zero_pages))
        self.total.merge(stats)

    def footer(self, r, sid):
        at = r.where()
        t = r.u8()
        if t != REC_FOOTER:
            raise StreamError("missing footer for section %d at byte %d"
                              % (sid, at))
        got = r.be32()
        if got != sid:
            raise StreamError("footer id %d does not match section %d at "
                              "byte %d" % (got, sid, at))

    def section(self, r, t, depth):
        sid = r.be32()
        if t == REC_START:
            name, inst, ver = r.cstr(), r.be32(), r.be32()
            self.sections[sid] = (name, inst, ver)
            self.say(depth, "SECTION_START id %d '%s' instance %d version %d"
                     % (sid, name, inst, ver))
        else:
            if sid not in self.sections:
                raise StreamError("%s for unknown section id %d"
                                  % (REC_NAMES[t], sid))
            name = self.sections[sid][0]
            self.say(depth, "%s id %d '%s'" % (REC_NAMES[t], sid, name))
        if name != "ram":
            raise StreamError("cannot parse the payload of section '%s'"
                              % name)
        self.ram_payload(r, depth + 1)
        self.footer(r, sid)

    def full(self, r, depth):
        sid = r.be32()
        name, inst, ver = r.cstr(), r.be32(), r.be32()
        ln = r.be32()
        if ln > FULL_MAX:
            raise StreamError("record '%s' too large (%d bytes)" % (name, ln))
        payload = r.take(ln)
        crc = r.be32()
        ok = "ok" if zlib.crc32(payload) & 0xffffffff == crc else "MISMATCH"
        self.say(depth, "SECTION_FULL id %d '%s' instance %d version %d: "
                 "%d bytes, crc %s" % (sid, name, inst, ver, ln, ok))
        if ok != "ok":
            raise StreamError("checksum mismatch in record '%s'" % name)
        self.footer(r, sid)

    def command(self, r, depth):
        cmd, ln = r.be16(), r.be16()
        p = r.take(ln)
        name = CMD_NAMES.get(cmd)
        if name is None or cmd in (0, 8):
            raise StreamError("unknown command 0x%04x" % cmd)
        if cmd in CMD_FIXED_LEN and ln != CMD_FIXED_LEN[cmd]:
            raise StreamError("command %s has bad length %d" % (name, ln))
        text = "COMMAND " + name
        if cmd == 2:
            text += " %d" % struct.unpack(">I", p)[0]
        elif cmd == 3:
            text += " page sizes 0x%x, target page 0x%x" % struct.unpack(
                ">QQ", p)
        elif cmd == 6:
            pr = Reader(p)
            block = pr.cstr()
            ranges = []
            while not pr.at_end():
                ranges.append("0x%x+0x%x" % (pr.be64(), pr.be64()))
            text += " %s: %s" % (block, " ".join(ranges))
        elif cmd == 10:
            text += " " + Reader(p).cstr()
        self.say(depth, text)
        if cmd == 7:
            blen = struct.unpack(">I", p)[0]
            base = r.where()
            blob = r.take(blen)
            self.say(depth + 1, "package of %d bytes:" % blen)
            self.records(Reader(blob, base), depth + 2, nested=True)

    def records(self, r, depth, nested=False):
        while True:
            if nested and r.at_end():
                return "end-of-package"
            if not nested and r.at_end():
                # A file cut after a postcopy switch has no EOF.
                self.say(depth, "(end of file without EOF record)")
                return "end-of-file"
            at = r.where()
            t = r.u8()
            if t == REC_EOF:
                self.say(depth, "EOF")
                return "eof"
            if t in (REC_START, REC_PART, REC_END):
                self.section(r, t, depth)
            elif t == REC_FULL:
                self.full(r, depth)
            elif t == REC_COMMAND:
                self.command(r, depth)
            else:
                raise StreamError("unknown record type 0x%02x at byte %d"
                                  % (t, at))

    def run(self, data):
        r = Reader(data)
        magic, version = r.be32(), r.be32()
        if magic != MAGIC:
            raise StreamError("not a godwit stream (magic 0x%08x)" % magic)
        if version not in VERSIONS:
            raise StreamError("unsupported version %d" % version)
        self.say(0, "header: GDWT version %d" % version)
        if r.u8() != REC_CONFIG:
            raise StreamError("CONFIG record missing after the header")
        c = Reader(r.take(r.be32()), r.where())
        cver, machine = c.be32(), c.cstr()
        vcpus, tps = c.be32(), c.be32()
        blocks = []
        for _ in range(c.be32()):
            name, size, psize = c.cstr(), c.be64(), c.be64()
            blocks.append("%s %d bytes (page %d)" % (name, size, psize))
        ncpuid = c.be32()
        c.take(24 * ncpuid)
        if not c.at_end():
            raise StreamError("trailing bytes in CONFIG")
        self.say(0, "CONFIG version %d machine '%s', %d vCPUs, target page %d,"
                 " %d CPUID entries" % (cver, machine, vcpus, tps, ncpuid))
        for b in blocks:
            self.say(1, "RAM block " + b)
        how = self.records(r, 0)
        if how == "eof" and not r.at_end():
            self.say(0, "(%d bytes after EOF)" % (len(data) - r.pos))
        t = self.total
        self.say(0, "total: %d data pages, %d zero pages in %d RAM records"
                 % (t.data_pages, t.zero_pages, t.records))
        if self.pages:
            for b, (z, d) in sorted(t.per_block.items()):
                self.say(1, "%s: %d data, %d zero" % (b, d, z))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="stream file ('-' for stdin)")
    ap.add_argument("-p", "--pages", action="store_true",
                    help="print every RAM record and per-block page counts")
    args = ap.parse_args()
    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            data = f.read()
    a = Analyzer(args.pages, sys.stdout)
    try:
        a.run(data)
    except StreamError as e:
        sys.stdout.flush()
        sys.stderr.write("analyze-migration: %s\n" % e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
