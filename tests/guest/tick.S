/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tick: deterministic Multiboot v1 test guest for migration tests. Enters
 * long mode, identity-maps RAM with 2 MiB pages and then, forever (or for
 * passes=N), increments byte 0 of every 4 KiB page of a RAM range and prints
 * one line per pass on COM1. Layout, options and the invariant a paused
 * guest's memory satisfies: docs/devel/test-guests.md.
 *
 * Plain GNU as: assembled as an x86-64 object (the Multiboot entry is
 * .code32), linked at 1 MiB and emitted as ELF32 (see meson.build), since
 * Multiboot loaders take ELF32 only. Baseline x86-64 instructions only.
 */
    .include "guest.inc"

    .equ KERNEL_CS,     0x08
    .equ KERNEL_DS,     0x10
    .equ USER_DS,       0x18
    .equ USER_CS,       0x20
    .equ TSS_SEL,       0x28

    .equ PTE_P,         0x001
    .equ PTE_W,         0x002
    .equ PTE_U,         0x004
    .equ PTE_PS,        0x080
    .equ PDE_FLAGS,     PTE_P | PTE_W | PTE_U
    .equ PDE_2M,        PTE_P | PTE_W | PTE_U | PTE_PS

    .equ NR_PDS,        64              /* page directories: maps 0..64 GiB */
    .equ MAP_LIMIT_GB,  NR_PDS
    .equ MAX_RAM,       32              /* RAM entries kept from the mmap */
    .equ RANGE_LOW,     0x200000        /* the tick range never starts below */
    .equ DEFAULT_RING,  3

    /* rate=: TSC calibration against PIT channel 0 (1193182 Hz). */
    .equ PIT_CH0,       0x40
    .equ PIT_CMD,       0x43
    .equ PIT_HZ,        1193182
    .equ PIT_CAL_TICKS, 119318          /* calibrate over 100 ms */
    .equ TSC_MIN_HZ,    100000000       /* below 100 MHz: calibration failed */

    MULTIBOOT_HEADER MB_HDR_MEMINFO

/* ------------------------------------------------------------------ */
/* 32-bit entry: the Multiboot loader leaves us in flat protected mode. */

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    /* boot_magic/boot_mbi live in .data: .bss is wiped next. */
    mov     %eax, boot_magic
    mov     %ebx, boot_mbi

    /* The loader should zero .bss, but firmware may have used the RAM. */
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    shr     $2, %ecx
    xor     %eax, %eax
    rep stosl

    mov     $kernel_stack_top, %esp

    cmpl    $MB_BOOT_MAGIC, boot_magic
    je      1f
    mov     $msg_bad_magic, %esi
    jmp     fail32
1:
    /* Long mode available? (CPUID 0x80000001 EDX bit 29) */
    mov     $0x80000000, %eax
    cpuid
    cmp     $0x80000001, %eax
    jb      2f
    mov     $0x80000001, %eax
    cpuid
    bt      $29, %edx
    jc      3f
2:  mov     $msg_no_lm, %esi
    jmp     fail32
3:
    /*
     * Boot page tables: identity-map 0..4 GiB with 2 MiB pages so that the
     * MBI, memory map and command line can be read wherever the loader put
     * them. The final tables (RAM only, user-accessible) are built later.
     */
    mov     $boot_pdpt + (PTE_P | PTE_W), %eax
    mov     %eax, boot_pml4
    mov     $boot_pdpt, %edi
    mov     $boot_pd + (PTE_P | PTE_W), %eax
    mov     $4, %ecx
4:  mov     %eax, (%edi)
    add     $4096, %eax
    add     $8, %edi
    loop    4b

    mov     $boot_pd, %edi
    mov     $(PTE_P | PTE_W | PTE_PS), %eax
    mov     $2048, %ecx
5:  mov     %eax, (%edi)
    add     $0x200000, %eax
    add     $8, %edi
    loop    5b

    mov     %cr4, %eax
    or      $0x20, %eax                 /* CR4.PAE */
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx           /* EFER */
    rdmsr
    or      $0x100, %eax                /* EFER.LME */
    wrmsr
    lgdt    gdt_ptr
    mov     %cr0, %eax
    or      $0x80000001, %eax           /* PG | PE */
    mov     %eax, %cr0
    ljmp    $KERNEL_CS, $long_entry

/* esi = message; print it and stop (32-bit, before long mode). */
fail32:
    mov     $COM1, %dx
6:  lodsb
    test    %al, %al
    jz      7f
    mov     $COM1, %dx
    out     %al, %dx
    jmp     6b
7:  mov     $1, %al
    mov     $DEBUG_EXIT_PORT, %dx
    out     %al, %dx
8:  cli
    hlt
    jmp     8b

/* ------------------------------------------------------------------ */
/* 64-bit kernel part. */

    .code64
long_entry:
    mov     $KERNEL_DS, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %eax, %eax
    mov     %ax, %fs
    mov     %ax, %gs
    mov     $kernel_stack_top, %esp     /* zero-extends into %rsp */
    lgdt    gdt_ptr                     /* again, now with a 64-bit base */

    call    setup_tss
    call    setup_idt
    call    serial_init
    call    parse_cmdline
    call    collect_ram
    call    build_page_tables
    call    collect_ranges
    call    init_mailbox
    call    calibrate_rate

    cmpq    $0, nr_ranges
    jne     1f
    mov     $msg_empty, %esi
    call    puts
    mov     $1, %al
    jmp     debug_exit
1:
    cmpq    $0, opt_ring
    je      tick_main                   /* run the loop in ring 0 */

    /*
     * Ring 3, IF clear. Under the shadow-paging KVM here ring-3 code runs
     * much faster than ring-0 code (see docs/devel/test-guests.md). IOPL 3
     * is asked for, but that KVM does not honour it (nor "int n" or
     * "syscall" from ring 3): there the #GP handler performs ring 3's
     * in/out/hlt for it.
     */
    pushq   $(USER_DS | 3)
    pushq   $user_stack_top
    pushq   $0x3002
    pushq   $(USER_CS | 3)
    pushq   $tick_main
    iretq

/* ------------------------------------------------------------------ */
/*
 * The tick loop. Runs in ring 0 or ring 3; touches only the mailbox, the
 * range and the serial/debug-exit ports. Register use:
 *   %r12 pass number, %r8 range cursor, %r9 range table end,
 *   %rsi current page, %rdx end of the current range.
 */
tick_main:
    movq    $STATE_ZEROING, MBX_STATE
    /* Pass 0: every counter to zero, whatever the firmware left there. */
    mov     $MBX_RANGES, %r8d
    mov     MBX_NR_RANGES, %r9
    shl     $4, %r9
    add     %r8, %r9
1:  cmp     %r9, %r8
    jae     3f
    mov     (%r8), %rsi
    mov     8(%r8), %rdx
2:  movb    $0, (%rsi)
    add     $4096, %rsi
    cmp     %rdx, %rsi
    jb      2b
    add     $16, %r8
    jmp     1b
3:
    mov     $msg_start, %esi
    call    puts
    mov     MBX_START, %rax
    call    put_hex
    mov     $msg_end, %esi
    call    puts
    mov     MBX_END, %rax
    call    put_hex
    mov     $msg_pages, %esi
    call    puts
    mov     MBX_PAGES, %rax
    call    put_dec
    mov     $'\n', %al
    call    putc

    movq    $STATE_TICKING, MBX_STATE
    xor     %r12d, %r12d
    /*
     * rate=: %r11 TSC cycles per page, %r10 the next page's deadline,
     * %r13 how far behind we may fall before the backlog is forgotten,
     * %r14 how far ahead a deadline may legitimately be.
     */
    mov     rate_cpp, %r11
    test    %r11, %r11
    jz      .Lpass
    mov     rate_slack, %r13
    lea     (%r11, %r13), %r14
    rdtsc
    shl     $32, %rdx
    or      %rdx, %rax
    mov     %rax, %r10
.Lpass:
    mov     $MBX_RANGES, %r8d
.Lrange:
    cmp     %r9, %r8
    jae     .Lpass_done
    mov     (%r8), %rsi
    mov     8(%r8), %rdx
    test    %r11, %r11
    jnz     .Lpage_paced
    /*
     * The hot loop. The write counter goes up right after each page, so a
     * paused guest's counters match either "writes" or "writes + 1".
     */
.Lpage:
    incb    (%rsi)
    incq    MBX_WRITES
    add     $4096, %rsi
    cmp     %rdx, %rsi
    jb      .Lpage
    add     $16, %r8
    jmp     .Lrange

    /*
     * The same loop at a set rate (rate=): after each page, spin until the
     * TSC reaches that page's deadline. A guest that fell far behind (vCPU
     * paused, e.g. by a migration) or whose TSC jumped back does not try to
     * catch up: it restarts the schedule from now.
     */
.Lpage_paced:
    incb    (%rsi)
    incq    MBX_WRITES
    add     $4096, %rsi
    mov     %rdx, %rcx                  /* rdtsc takes %rdx */
    add     %r11, %r10
1:  rdtsc
    shl     $32, %rdx
    or      %rdx, %rax
    mov     %rax, %rdx
    sub     %r10, %rdx                  /* now - deadline */
    jns     2f
    neg     %rdx
    cmp     %r14, %rdx
    ja      3f                          /* deadline impossibly far ahead */
    pause
    jmp     1b
2:  cmp     %r13, %rdx
    jbe     4f
3:  mov     %rax, %r10
4:  mov     %rcx, %rdx
    cmp     %rdx, %rsi
    jb      .Lpage_paced
    add     $16, %r8
    jmp     .Lrange
.Lpass_done:
    inc     %r12
    mov     %r12, MBX_PASSES
    mov     $msg_pass, %esi
    call    puts
    mov     %r12, %rax
    call    put_dec
    mov     $'\n', %al
    call    putc
    mov     MBX_PASS_LIMIT, %rax
    test    %rax, %rax
    jz      .Lpass
    cmp     %rax, %r12
    jb      .Lpass

    movq    $STATE_DONE, MBX_STATE
    mov     $msg_done, %esi
    call    puts
    xor     %eax, %eax
    mov     $DEBUG_EXIT_PORT, %dx
    out     %al, %dx
    /* No debug-exit device: stop (from ring 3 via the #GP handler). */
1:  hlt
    jmp     1b

/* ------------------------------------------------------------------ */
/* Serial output. All helpers preserve every register but the flags. */

serial_init:
    push    %rax
    push    %rdx
    xor     %eax, %eax
    mov     $COM1_IER, %dx              /* no UART interrupts */
    out     %al, %dx
    pop     %rdx
    pop     %rax
    ret

/* al = character */
putc:
    push    %rax
    push    %rcx
    push    %rdx
    mov     %eax, %ecx                  /* keep the character */
    push    %rcx
    mov     $COM1_LSR, %dx
    mov     $COM1_SPIN, %ecx
1:  in      %dx, %al
    test    $LSR_THRE, %al
    jnz     2f
    loop    1b
2:  pop     %rax
    mov     $COM1, %dx
    out     %al, %dx
    pop     %rdx
    pop     %rcx
    pop     %rax
    ret

/* rsi = NUL-terminated string */
puts:
    push    %rax
    push    %rsi
1:  lodsb
    test    %al, %al
    jz      2f
    call    putc
    jmp     1b
2:  pop     %rsi
    pop     %rax
    ret

/* rax = value, printed as 0x<hex> without leading zeros */
put_hex:
    push    %rax
    push    %rcx
    push    %rdx
    push    %rsi
    mov     %rax, %rdx
    mov     $msg_0x, %esi
    call    puts
    mov     $60, %ecx
    /* skip leading zero digits, but keep the last one */
1:  test    %ecx, %ecx
    jz      2f
    mov     %rdx, %rax
    shr     %cl, %rax
    test    $0xf, %al
    jnz     2f
    sub     $4, %ecx
    jmp     1b
2:  mov     %rdx, %rax
    shr     %cl, %rax
    and     $0xf, %eax
    mov     hex_digits(%rax), %al
    call    putc
    sub     $4, %ecx
    jns     2b
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rax
    ret

/* rax = value, printed in decimal */
put_dec:
    push    %rax
    push    %rcx
    push    %rdx
    push    %rsi
    sub     $32, %rsp
    lea     31(%rsp), %rsi
    movb    $0, (%rsi)
    mov     $10, %ecx
1:  xor     %edx, %edx
    div     %rcx
    add     $'0', %dl
    dec     %rsi
    mov     %dl, (%rsi)
    test    %rax, %rax
    jnz     1b
    call    puts
    add     $32, %rsp
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rax
    ret

/* ------------------------------------------------------------------ */
/*
 * rate=N: measure the TSC frequency against PIT channel 0 (handled inside
 * KVM by both godwit and QEMU, unlike the port 0x61 gate of channel 2),
 * then derive the cycles per page for N MiB/s. Ring 0, once, at boot. On
 * failure rate= is ignored with a warning and the loop runs flat out.
 */
calibrate_rate:
    cmpq    $0, opt_rate
    je      9f
    mov     $0x34, %al                  /* channel 0, lo/hi byte, mode 2 */
    out     %al, $PIT_CMD
    xor     %eax, %eax                  /* count 0 = 65536 */
    out     %al, $PIT_CH0
    out     %al, $PIT_CH0
    call    pit_sample
    mov     %rax, %r8                   /* first TSC */
    mov     %rcx, %r9                   /* previous count */
    xor     %r10d, %r10d                /* PIT ticks seen */
1:  call    pit_sample
    mov     %r9, %rdx
    sub     %rcx, %rdx
    and     $0xffff, %edx               /* it counts down, wrapping at 65536 */
    add     %rdx, %r10
    mov     %rcx, %r9
    mov     %rax, %rdx
    sub     %r8, %rdx                   /* TSC cycles so far */
    cmp     $PIT_CAL_TICKS, %r10
    jae     2f
    bt      $34, %rdx                   /* seconds without PIT progress */
    jnc     1b
    jmp     8f
2:  mov     %rdx, %rax
    mov     $PIT_HZ, %ecx
    mul     %rcx
    div     %r10                        /* TSC Hz */
    cmp     $TSC_MIN_HZ, %rax
    jb      8f
    mov     %rax, tsc_hz
    xor     %edx, %edx
    mov     $1000, %ecx
    div     %rcx
    mov     %rax, rate_slack            /* 1 ms of TSC */
    mov     opt_rate, %rcx
    mov     $1, %eax
    shl     $32, %rax
    cmp     %rax, %rcx
    jbe     3f
    mov     %rax, %rcx                  /* keep the shift below in range */
3:  shl     $8, %rcx                    /* pages per second */
    mov     tsc_hz, %rax
    xor     %edx, %edx
    div     %rcx
    test    %rax, %rax
    jnz     4f
    inc     %rax
4:  mov     %rax, rate_cpp
    mov     $0x30, %al                  /* channel 0 back to one-shot */
    out     %al, $PIT_CMD
    xor     %eax, %eax
    out     %al, $PIT_CH0
    out     %al, $PIT_CH0
    mov     $msg_rate, %esi
    call    puts
    mov     opt_rate, %rax
    call    put_dec
    mov     $msg_tsc_khz, %esi
    call    puts
    mov     rate_slack, %rax            /* = kHz */
    call    put_dec
    mov     $'\n', %al
    call    putc
    ret
8:  mov     $msg_no_pit, %esi
    call    puts
9:  ret

/* Latch PIT channel 0: %rcx = its count, %rax = the TSC right after. */
pit_sample:
    xor     %eax, %eax                  /* latch command, channel 0 */
    out     %al, $PIT_CMD
    in      $PIT_CH0, %al
    movzbl  %al, %ecx
    in      $PIT_CH0, %al
    movzbl  %al, %eax
    shl     $8, %eax
    or      %eax, %ecx
    rdtsc
    shl     $32, %rdx
    or      %rdx, %rax
    ret

/* ------------------------------------------------------------------ */
/* GDT/TSS/IDT setup (ring 0). */

setup_tss:
    mov     $kernel_stack_top, %eax
    mov     %rax, tss + 4               /* RSP0 */
    movw    $104, tss + 102             /* I/O bitmap offset: none */
    mov     $tss, %eax
    mov     $gdt + TSS_SEL, %edi
    movw    $103, (%rdi)                /* limit 15:0 */
    mov     %ax, 2(%rdi)                /* base 15:0 */
    shr     $16, %eax
    mov     %al, 4(%rdi)                /* base 23:16 */
    movb    $0x89, 5(%rdi)              /* present, DPL 0, 64-bit TSS */
    movb    $0, 6(%rdi)
    mov     %ah, 7(%rdi)                /* base 31:24 */
    movq    $0, 8(%rdi)                 /* base 63:32 + reserved */
    mov     $TSS_SEL, %ax
    ltr     %ax
    ret

/* edi = vector, eax = handler, dl = type/attributes */
set_gate:
    push    %rdi
    shl     $4, %edi
    add     $idt, %edi
    mov     %ax, (%rdi)
    movw    $KERNEL_CS, 2(%rdi)
    movb    $0, 4(%rdi)
    mov     %dl, 5(%rdi)
    shr     $16, %eax
    mov     %ax, 6(%rdi)
    movq    $0, 8(%rdi)
    pop     %rdi
    ret

setup_idt:
    xor     %edi, %edi
1:  mov     exc_stubs(,%rdi,4), %eax
    mov     $0x8E, %dl                  /* present, DPL 0, interrupt gate */
    call    set_gate
    inc     %edi
    cmp     $32, %edi
    jb      1b
    mov     $13, %edi
    mov     $exc_gp, %eax
    mov     $0x8E, %dl
    call    set_gate
    lidt    idt_ptr
    ret

/* al = value for the debug-exit port; if the VMM has none, just stop. */
debug_exit:
    mov     $DEBUG_EXIT_PORT, %dx
    out     %al, %dx
    jmp     halt_forever

/*
 * #GP: if ring 3 tripped over in/out/hlt (IOPL 3 not honoured), do it here
 * and carry on. Stack: error code, rip, cs, rflags, rsp, ss.
 */
exc_gp:
    testb   $3, 16(%rsp)
    jz      3f
    push    %rsi
    mov     16(%rsp), %rsi              /* faulting rip */
    cmpb    $0xEE, (%rsi)               /* out %al, (%dx) */
    je      1f
    cmpb    $0xEC, (%rsi)               /* in (%dx), %al */
    je      2f
    cmpb    $0xF4, (%rsi)               /* hlt */
    je      halt_forever
    pop     %rsi
3:  pushq   $13
    jmp     exc_common
1:  out     %al, %dx
    jmp     4f
2:  in      %dx, %al
4:  incq    16(%rsp)                    /* past the one-byte instruction */
    pop     %rsi
    add     $8, %rsp                    /* error code */
    iretq

/* One stub per exception; vectors without an error code push a zero. */
.macro EXC_STUB vec
exc_\vec:
    .if ((\vec == 8) || ((\vec >= 10) && (\vec <= 14)) || (\vec == 17) || (\vec == 21) || (\vec == 29) || (\vec == 30)) == 0
    pushq   $0
    .endif
    pushq   $\vec
    jmp     exc_common
.endm

    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    EXC_STUB \v
    .endr

/* Stack: vector, error code, rip, cs, rflags, rsp, ss. Report and stop. */
exc_common:
    mov     $msg_exc, %esi
    call    puts
    mov     (%rsp), %rax
    call    put_dec
    mov     $msg_err, %esi
    call    puts
    mov     8(%rsp), %rax
    call    put_hex
    mov     $msg_rip, %esi
    call    puts
    mov     16(%rsp), %rax
    call    put_hex
    mov     $msg_cs, %esi
    call    puts
    mov     24(%rsp), %rax
    call    put_hex
    mov     $msg_rflags, %esi
    call    puts
    mov     32(%rsp), %rax
    call    put_hex
    mov     $msg_cr2, %esi
    call    puts
    mov     %cr2, %rax
    call    put_hex
    mov     $'\n', %al
    call    putc
    mov     $2, %al
    mov     $DEBUG_EXIT_PORT, %dx
    out     %al, %dx
halt_forever:
    cli
1:  hlt
    jmp     1b

/* ------------------------------------------------------------------ */
/* Command line: key=value words anywhere ("<kernel> <append string>"). */

/* rsi = text, rdi = NUL-terminated key. CF clear + rsi past key on match. */
match_key:
    push    %rsi
1:  mov     (%rdi), %al
    test    %al, %al
    jz      2f
    cmp     (%rsi), %al
    jne     3f
    inc     %rsi
    inc     %rdi
    jmp     1b
2:  add     $8, %rsp
    clc
    ret
3:  pop     %rsi
    stc
    ret

/*
 * rsi = number text: decimal or 0x hex, optional K/M/G suffix, ending at a
 * space or NUL. Returns rax, rsi past it; CF set if malformed.
 */
parse_num:
    push    %rcx
    push    %rdx
    xor     %eax, %eax
    xor     %ecx, %ecx                  /* digits seen */
    cmpb    $'0', (%rsi)
    jne     .Ldec
    mov     1(%rsi), %dl
    or      $0x20, %dl
    cmp     $'x', %dl
    jne     .Ldec
    add     $2, %rsi
.Lhex:
    movzbl  (%rsi), %edx
    sub     $'0', %edx
    cmp     $9, %edx
    jbe     1f
    movzbl  (%rsi), %edx
    or      $0x20, %edx
    sub     $'a', %edx
    cmp     $5, %edx
    ja      .Lsuffix
    add     $10, %edx
1:  shl     $4, %rax
    add     %rdx, %rax
    inc     %ecx
    inc     %rsi
    jmp     .Lhex
.Ldec:
    movzbl  (%rsi), %edx
    sub     $'0', %edx
    cmp     $9, %edx
    ja      .Lsuffix
    imul    $10, %rax, %rax
    add     %rdx, %rax
    inc     %ecx
    inc     %rsi
    jmp     .Ldec
.Lsuffix:
    test    %ecx, %ecx
    jz      .Lbad
    movzbl  (%rsi), %edx
    or      $0x20, %edx
    mov     $10, %cl
    cmp     $'k', %dl
    je      2f
    mov     $20, %cl
    cmp     $'m', %dl
    je      2f
    mov     $30, %cl
    cmp     $'g', %dl
    jne     3f
2:  shl     %cl, %rax
    inc     %rsi
3:  movzbl  (%rsi), %edx
    test    %dl, %dl
    jz      4f
    cmp     $' ', %dl
    jne     .Lbad
4:  pop     %rdx
    pop     %rcx
    clc
    ret
.Lbad:
    pop     %rdx
    pop     %rcx
    stc
    ret

/* Try one "key=" at rsi; on match store the number at (rbx). CF = no match. */
.macro TRY_OPT key, var
    mov     $\key, %edi
    call    match_key
    jc      9f
    call    parse_num
    jc      8f
    mov     %rax, \var
    jmp     .Lnext_word
8:  mov     $msg_bad_opt, %esi
    call    puts
    jmp     .Lnext_word
9:
.endm

parse_cmdline:
    mov     boot_mbi, %ebx
    testl   $MBI_F_CMDLINE, MBI_FLAGS(%rbx)
    jz      .Lcmd_done
    mov     MBI_CMDLINE(%rbx), %esi
    test    %esi, %esi
    jz      .Lcmd_done
.Lword:
    cmpb    $' ', (%rsi)
    jne     1f
    inc     %rsi
    jmp     .Lword
1:  cmpb    $0, (%rsi)
    je      .Lcmd_done
    TRY_OPT key_start, opt_start
    TRY_OPT key_end, opt_end
    TRY_OPT key_passes, opt_passes
    TRY_OPT key_ring, opt_ring
    TRY_OPT key_rate, opt_rate
.Lnext_word:
    /* skip to the end of the current word */
    mov     (%rsi), %al
    test    %al, %al
    jz      .Lcmd_done
    cmp     $' ', %al
    je      .Lword
    inc     %rsi
    jmp     .Lnext_word
.Lcmd_done:
    cmpq    $0, opt_ring
    je      1f
    movq    $3, opt_ring                /* anything but 0 means ring 3 */
1:  ret

/* ------------------------------------------------------------------ */
/* Memory map. */

/* Append [rax, rdx) to the RAM table (if non-empty and there is room). */
add_ram:
    cmp     %rdx, %rax
    jae     1f
    mov     nr_ram, %rcx
    cmp     $MAX_RAM, %rcx
    jae     1f
    shl     $4, %rcx
    mov     %rax, ram(%rcx)
    mov     %rdx, ram + 8(%rcx)
    incq    nr_ram
1:  ret

/* Usable RAM from the Multiboot mmap, or mem_upper when there is none. */
collect_ram:
    mov     boot_mbi, %ebx
    testl   $MBI_F_MMAP, MBI_FLAGS(%rbx)
    jz      .Lno_mmap
    mov     MBI_MMAP_ADDR(%rbx), %esi
    mov     MBI_MMAP_LENGTH(%rbx), %edi
    add     %rsi, %rdi                  /* end of the map */
1:  lea     MMAP_TYPE + 4(%rsi), %rax
    cmp     %rdi, %rax
    ja      3f
    cmpl    $MMAP_TYPE_RAM, MMAP_TYPE(%rsi)
    jne     2f
    mov     MMAP_BASE(%rsi), %rax
    mov     MMAP_LEN(%rsi), %rdx
    add     %rax, %rdx
    call    add_ram
2:  mov     MMAP_SIZE(%rsi), %eax
    lea     4(%rsi, %rax), %rsi
    jmp     1b
3:  ret
.Lno_mmap:
    testl   $MBI_F_MEM, MBI_FLAGS(%rbx)
    jz      1f
    mov     MBI_MEM_UPPER(%rbx), %edx
    shl     $10, %rdx
    add     $0x100000, %rdx
    mov     $0x100000, %eax
    call    add_ram
1:  ret

/*
 * Final page tables: 2 MiB identity pages, user-accessible, for the low
 * 2 MiB (the guest itself) and every 2 MiB block touching RAM below 64 GiB.
 */
build_page_tables:
    mov     $pdpt + PDE_FLAGS, %eax
    mov     %rax, pml4
    mov     $pd + PDE_FLAGS, %eax
    xor     %ecx, %ecx
1:  mov     %rax, pdpt(,%rcx,8)
    add     $4096, %rax
    inc     %ecx
    cmp     $NR_PDS, %ecx
    jb      1b
    movq    $PDE_2M, pd                 /* 0..2 MiB */

    xor     %r8d, %r8d
2:  cmp     nr_ram, %r8
    jae     5f
    mov     %r8, %rcx
    shl     $4, %rcx
    mov     ram(%rcx), %rax
    mov     ram + 8(%rcx), %rdx
    shr     $21, %rax                   /* first block */
    add     $0x1fffff, %rdx
    shr     $21, %rdx                   /* end block */
    cmp     $NR_PDS * 512, %rdx
    jbe     3f
    mov     $NR_PDS * 512, %edx
3:  cmp     %rdx, %rax
    jae     4f
    mov     %rax, %rcx
    shl     $21, %rcx
    or      $PDE_2M, %rcx
    mov     %rcx, pd(,%rax,8)
    inc     %rax
    jmp     3b
4:  inc     %r8
    jmp     2b
5:  mov     $pml4, %eax
    mov     %rax, %cr3
    ret

/*
 * The tick range: RAM intersected with [max(start, 2 MiB), min(end, 64 GiB)),
 * page-aligned, in memory-map order (which must be ascending).
 */
collect_ranges:
    mov     opt_start, %r10
    cmp     $RANGE_LOW, %r10
    jae     1f
    mov     $RANGE_LOW, %r10d
1:  add     $0xfff, %r10
    and     $~0xfff, %r10
    mov     opt_end, %r11
    mov     $MAP_LIMIT_GB, %rax
    shl     $30, %rax
    cmp     %rax, %r11
    jbe     2f
    mov     %rax, %r11
2:  and     $~0xfff, %r11

    xor     %r8d, %r8d                  /* RAM index */
    xor     %r13d, %r13d                /* pages */
.Lcr_loop:
    cmp     nr_ram, %r8
    jae     .Lcr_done
    mov     %r8, %rcx
    shl     $4, %rcx
    mov     ram(%rcx), %rax
    mov     ram + 8(%rcx), %rdx
    inc     %r8
    add     $0xfff, %rax
    and     $~0xfff, %rax
    and     $~0xfff, %rdx
    cmp     %r10, %rax
    jae     3f
    mov     %r10, %rax
3:  cmp     %r11, %rdx
    jbe     4f
    mov     %r11, %rdx
4:  cmp     %rdx, %rax
    jae     .Lcr_loop
    mov     nr_ranges, %rcx
    cmp     $MBX_MAX_RANGES, %rcx
    jae     .Lcr_loop
    test    %rcx, %rcx
    jz      5f
    shl     $4, %rcx
    cmp     ranges - 8(%rcx), %rax      /* previous range's end */
    jae     6f
    mov     $msg_unsorted, %esi
    call    puts
    jmp     .Lcr_loop
5:  shl     $4, %rcx
6:  mov     %rax, ranges(%rcx)
    mov     %rdx, ranges + 8(%rcx)
    incq    nr_ranges
    sub     %rax, %rdx
    shr     $12, %rdx
    add     %rdx, %r13
    jmp     .Lcr_loop
.Lcr_done:
    mov     %r13, nr_pages
    ret

init_mailbox:
    mov     $MBX, %edi
    mov     $512, %ecx
    xor     %eax, %eax
    rep stosq
    mov     nr_ranges, %rcx
    mov     %rcx, MBX_NR_RANGES
    test    %rcx, %rcx
    jz      1f
    mov     ranges, %rax
    mov     %rax, MBX_START
    mov     %rcx, %rdx
    shl     $4, %rdx
    mov     ranges - 8(%rdx), %rax
    mov     %rax, MBX_END
    shl     $1, %rcx                    /* quadwords to copy */
    mov     $ranges, %esi
    mov     $MBX_RANGES, %edi
    rep movsq
1:  mov     nr_pages, %rax
    mov     %rax, MBX_PAGES
    mov     opt_passes, %rax
    mov     %rax, MBX_PASS_LIMIT
    mov     opt_ring, %rax
    mov     %rax, MBX_RING
    movq    $STATE_BOOT, MBX_STATE
    movl    $MBX_MAGIC_LO, MBX_MAGIC
    movl    $MBX_MAGIC_HI, MBX_MAGIC + 4
    ret

/* ------------------------------------------------------------------ */

    .section .rodata
hex_digits:     .ascii "0123456789abcdef"
msg_0x:         .asciz "0x"
msg_start:      .asciz "tick: start="
msg_end:        .asciz " end="
msg_pages:      .asciz " pages="
msg_pass:       .asciz "tick: pass "
msg_done:       .asciz "tick: done\n"
msg_empty:      .asciz "tick: error: no RAM in the tick range\n"
msg_bad_opt:    .asciz "tick: warning: ignoring a malformed option value\n"
msg_unsorted:   .asciz "tick: warning: memory map not ascending, skipping an entry\n"
msg_bad_magic:  .asciz "tick: error: not started by a Multiboot loader\n"
msg_no_lm:      .asciz "tick: error: CPU has no long mode\n"
msg_exc:        .asciz "tick: exception "
msg_err:        .asciz " error="
msg_rip:        .asciz " rip="
msg_cr2:        .asciz " cr2="
msg_cs:         .asciz " cs="
msg_rflags:     .asciz " rflags="
key_start:      .asciz "start="
key_end:        .asciz "end="
key_passes:     .asciz "passes="
key_ring:       .asciz "ring="
key_rate:       .asciz "rate="
msg_rate:       .asciz "tick: rate="
msg_tsc_khz:    .asciz " MiB/s tsc-khz="
msg_no_pit:     .asciz "tick: warning: cannot calibrate the TSC against the PIT, ignoring rate=\n"

    .balign 4
exc_stubs:
    .irp v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
    .long exc_\v
    .endr

    .data
    .balign 8
boot_magic:     .long 0
boot_mbi:       .long 0
opt_start:      .quad RANGE_LOW
opt_end:        .quad -1
opt_passes:     .quad 0
opt_ring:       .quad DEFAULT_RING
opt_rate:       .quad 0                 /* MiB/s, 0 = flat out */

    .balign 16
gdt:
    .quad 0                             /* null */
    .quad 0x00AF9A000000FFFF            /* 0x08 kernel code, 64-bit */
    .quad 0x00CF92000000FFFF            /* 0x10 kernel data */
    .quad 0x00CFF2000000FFFF            /* 0x18 user data, DPL 3 */
    .quad 0x00AFFA000000FFFF            /* 0x20 user code, 64-bit, DPL 3 */
    .quad 0, 0                          /* 0x28 TSS, filled at run time */
gdt_end:

/* 10-byte pseudo-descriptors: lgdt in 32-bit mode reads only 6 of them. */
    .balign 8
    .word 0, 0, 0
gdt_ptr:
    .word gdt_end - gdt - 1
    .long gdt, 0
    .word 0, 0, 0
idt_ptr:
    .word 256 * 16 - 1
    .long idt, 0

    .bss
    .balign 4096
boot_pml4:      .skip 4096
boot_pdpt:      .skip 4096
boot_pd:        .skip 4 * 4096
pml4:           .skip 4096
pdpt:           .skip 4096
pd:             .skip NR_PDS * 4096
idt:            .skip 256 * 16
kernel_stack:   .skip 16384
kernel_stack_top:
user_stack:     .skip 16384
user_stack_top:
    .balign 16
tss:            .skip 104
    .balign 8
nr_ram:         .skip 8
ram:            .skip MAX_RAM * 16
nr_ranges:      .skip 8
nr_pages:       .skip 8
ranges:         .skip MBX_MAX_RANGES * 16
tsc_hz:         .skip 8
rate_cpp:       .skip 8                 /* TSC cycles per page, 0 = flat out */
rate_slack:     .skip 8
