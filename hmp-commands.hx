# SPDX-License-Identifier: GPL-2.0-or-later
# HMP commands. Format and argument types: see scripts/hxtool.py.
# Each handler builds a QMP argument object and calls qmp_dispatch(),
# except where its doc says otherwise.

command: help|?
args: name:S?
params: [cmd]
help: list the commands, or show how to use one
handler: hmp_help
doc: |
  `help` lists every command and `info` subcommand; `help migrate` or
  `help info migrate` shows one.
---
command: info
args: item:s?
params: [subcommand]
help: show information about the VM (see "help info")
handler: hmp_info
doc: |
  Without a subcommand, lists the `info` subcommands.
---
command: stop|s
params:
help: pause the guest (QMP stop)
handler: hmp_stop
---
command: cont|c
params:
help: resume the guest (QMP cont)
handler: hmp_cont
---
command: quit|q
params:
help: exit godwit (QMP quit)
handler: hmp_quit
---
command: system_reset
params:
help: reset the machine (QMP system_reset)
handler: hmp_system_reset
---
command: pmemsave
args: val:l,size:l,filename:F
params: addr size file
help: write guest-physical memory [addr, addr+size) to a file
handler: hmp_pmemsave
doc: |
  `addr` and `size` are expressions, so quote the file name when it starts
  with `/`: `pmemsave 0x100000 4096 "/tmp/mem.bin"`. Unquoted, `/tmp` would
  be read as a division and fail with `invalid char 't' in expression`, as
  in QEMU.
---
command: xp
args: fmt:/,addr:l
params: /fmt addr
help: dump guest-physical memory at addr
handler: hmp_xp
doc: |
  `/fmt` is `/COUNT FORMAT SIZE`: format `x` (hex), `d` (signed), `u`
  (unsigned), `o` (octal) or `c` (characters); size `b` (1 byte), `h` (2),
  `w` (4) or `g` (8). Format and size are remembered between calls, as in
  QEMU. Reads guest RAM directly (not through QMP).
---
command: migrate
args: detach:-d,blk:-b,inc:-i,resume:-r,uri:s
params: [-d] [-b] [-i] [-r] uri
help: migrate to uri (-d: do not wait for the migration to finish)
handler: hmp_migrate
doc: |
  Without `-d` the monitor stops reading commands until `query-migrate`
  reports a status other than `setup` or `active` (so it returns at
  `postcopy-active`, `completed`, `failed` or `cancelled`); a failure is
  then printed as `Error: <error-desc>`. `-r` resumes a paused postcopy
  migration. Through `human-monitor-command` the command always behaves as
  with `-d`.
---
command: migrate_incoming
args: uri:s
params: uri
help: start an incoming migration on uri (needs -incoming defer)
handler: hmp_migrate_incoming
---
command: migrate_cancel
params:
help: cancel the outgoing migration
handler: hmp_migrate_cancel
---
command: migrate_continue
args: state:s
params: state
help: let a migration paused in state (e.g. pre-switchover) go on
handler: hmp_migrate_continue
---
command: migrate_set_capability
args: capability:s,state:b
params: capability state
help: turn a migration capability on or off
handler: hmp_migrate_set_capability
doc: |
  `state` is `on` or `off`; anything else prints `Expected 'on' or 'off'`.
---
command: migrate_set_parameter
args: parameter:s,value:s
params: parameter value
help: set a migration parameter
handler: hmp_migrate_set_parameter
doc: |
  The value is converted to the parameter's QMP type: `max-bandwidth`
  takes a size whose default unit is MiB/s (`10` means 10485760 bytes/s;
  `1G`, `512k` work too); the other sizes (`max-postcopy-bandwidth`,
  `xbzrle-cache-size`, `announce-*`, `downtime-limit`) default to bytes
  (or ms) and accept `k`, `M`, `G`, `T` suffixes; the percentages, levels
  and thread counts take plain integers; `on`/`off` for the booleans;
  strings for `tls-*` and `multifd-compression`.
---
command: migrate_pause
params:
help: break the postcopy connection on purpose (either side, postcopy-active only)
handler: hmp_migrate_pause
---
command: migrate_recover
args: uri:s
params: uri
help: destination in postcopy-paused: listen on uri for the source's migrate -r
handler: hmp_migrate_recover
---
command: migrate_start_postcopy
params:
help: switch the running outgoing migration to postcopy
handler: hmp_migrate_start_postcopy
doc: |
  Needs the `postcopy-ram` capability on both sides before `migrate`.
