# SPDX-License-Identifier: GPL-2.0-or-later
# "info" subcommands. Format and argument types: see scripts/hxtool.py.

command: status
params:
help: show the VM run state (running, paused, ...)
handler: hmp_info_status
---
command: version
params:
help: show the version of godwit
handler: hmp_info_version
---
command: name
params:
help: show the VM name given with -name
handler: hmp_info_name
---
command: cpus
params:
help: list the vCPUs and their host thread ids
handler: hmp_info_cpus
---
command: registers
args: cpustate_all:-a
params: [-a]
help: show the registers of vCPU 0 (-a: of every vCPU)
handler: hmp_info_registers
doc: |
  Reads the vCPU state directly (not through QMP); the format is godwit's
  own.
---
command: kvm
params:
help: show whether KVM is in use
handler: hmp_info_kvm
---
command: migrate
params:
help: show the migration status and statistics
handler: hmp_info_migrate
doc: |
  Formatted from `query-migrate` like QEMU 7.2's output, but without the
  "globals:" block, which describes QEMU-only settings.
---
command: migrate_capabilities
params:
help: show the migration capabilities
handler: hmp_info_migrate_capabilities
---
command: migrate_parameters
params:
help: show the migration parameters
handler: hmp_info_migrate_parameters
