/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * gwos boot code: Multiboot v1 header and 32-bit entry, the switch to long
 * mode with 4-level paging (identity map of 0..4 GiB, 2 MiB pages,
 * user-accessible so ring-3 workloads can touch RAM; main.c maps RAM above
 * 4 GiB), the real-mode AP
 * trampoline (copied below 1 MiB and started with SIPI), the interrupt entry
 * stubs and the drop to ring 3.
 */

    .equ MB_MAGIC,      0x1BADB002
    .equ MB_FLAGS,      0x00000002          /* memory info wanted */
    .equ PTE_FLAGS,     0x87                /* present, writable, user, 2 MiB */
    .equ PTE_NOCACHE,   0x18                /* PWT | PCD, for the 3..4 GiB MMIO gigabyte */
    .equ PD_COUNT,      64                  /* 64 GiB mapped */
    .equ KERNEL_CS,     0x08
    .equ KERNEL_DS,     0x10
    .equ USER_DS,       0x1b
    .equ USER_CS,       0x23
    .equ MAX_CPUS,      32

    .section .multiboot, "a"
    .align 4
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)

/* ------------------------------------------------------------------ */
    .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov     %eax, boot_magic
    mov     %ebx, boot_mbi

    /* Zero .bss: the loader may leave old contents after a reset. */
    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    shr     $2, %ecx
    xor     %eax, %eax
    rep stosl

    /* Long mode? (CPUID 0x80000001 EDX bit 29). Without it: stop quietly. */
    mov     $0x80000000, %eax
    cpuid
    cmp     $0x80000001, %eax
    jb      no_lm
    mov     $0x80000001, %eax
    cpuid
    bt      $29, %edx
    jnc     no_lm

    /* PML4[0] -> PDPT; PDPT[0..63] -> 64 page directories. */
    mov     $boot_pdpt + 0x7, %eax
    mov     %eax, boot_pml4
    mov     $boot_pdpt, %edi
    mov     $boot_pd + 0x7, %eax
    mov     $PD_COUNT, %ecx
1:  mov     %eax, (%edi)
    movl    $0, 4(%edi)
    add     $4096, %eax
    add     $8, %edi
    loop    1b

    /*
     * The first 4 GiB as 2048 2 MiB pages (entry i maps i << 21); RAM above
     * 4 GiB is mapped from C. Few instructions: ring-0 code is emulated
     * instruction by instruction on the kvm_pvm hosts, so every loop here
     * costs microseconds per iteration.
     */
    mov     $boot_pd, %edi
    xor     %ebx, %ebx                      /* i */
2:  mov     %ebx, %eax
    shl     $21, %eax
    or      $PTE_FLAGS, %eax
    mov     %ebx, %edx
    shr     $9, %edx                        /* which gigabyte */
    cmp     $3, %edx
    jne     3f
    or      $PTE_NOCACHE, %eax
3:  mov     %eax, (%edi)
    mov     %ebx, %edx
    shr     $11, %edx
    mov     %edx, 4(%edi)
    add     $8, %edi
    inc     %ebx
    cmp     $4 * 512, %ebx
    jb      2b

    mov     %cr4, %eax
    or      $0x20, %eax                     /* PAE */
    mov     %eax, %cr4
    mov     $boot_pml4, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx               /* EFER.LME */
    rdmsr
    or      $0x100, %eax
    wrmsr
    lgdt    gdt_ptr
    mov     %cr0, %eax
    or      $0x80000001, %eax               /* PG | PE */
    mov     %eax, %cr0
    ljmp    $KERNEL_CS, $long_entry

no_lm:
    mov     $0x3f8, %dx
    mov     $no_lm_msg, %esi
4:  lodsb
    test    %al, %al
    jz      5f
    out     %al, %dx
    jmp     4b
5:  cli
    hlt
    jmp     5b

    .code64
long_entry:
    mov     $KERNEL_DS, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %eax, %eax
    mov     %ax, %fs
    mov     %ax, %gs
    lgdt    gdt_ptr                         /* reload with the 64-bit base */
    lea     kstacks + 16384(%rip), %rsp     /* CPU 0's kernel stack */
    mov     boot_magic(%rip), %edi
    mov     boot_mbi(%rip), %esi
    call    kmain
6:  cli
    hlt
    jmp     6b

/* APs arrive here from the trampoline, in 64-bit mode on the boot tables. */
ap_long64:
    mov     $KERNEL_DS, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    xor     %eax, %eax
    mov     %ax, %fs
    mov     %ax, %gs
    lgdt    gdt_ptr
    mov     ap_stack_top(%rip), %rsp
    call    ap_main
7:  cli
    hlt
    jmp     7b

/*
 * void enter_user(void *arg, void (*fn)(void *), uint64_t user_rsp):
 * iretq to ring 3 with interrupts enabled; fn gets arg in %rdi.
 */
    .globl enter_user
enter_user:
    pushq   $USER_DS
    pushq   %rdx
    pushq   $0x3202                         /* IF, IOPL 3 (where honoured) */
    pushq   $USER_CS
    pushq   %rsi
    xor     %eax, %eax
    mov     %ax, %ds
    mov     %ax, %es
    iretq

/* The same, staying in ring 0 (the "ring0" option). */
    .globl enter_kernel
enter_kernel:
    pushq   $KERNEL_DS
    pushq   %rdx
    pushq   $0x202                          /* IF */
    pushq   $KERNEL_CS
    pushq   %rsi
    iretq

/*
 * Real-mode AP trampoline, copied to a page below 1 MiB; SIPI starts it at
 * offset 0 with CS = page >> 4. It goes straight from real mode to long
 * mode (PE and PG set together) on the BSP's boot page tables.
 */
    .code16
    .globl tramp_start, tramp_end
tramp_start:
    cli
    mov     %cs, %ax
    mov     %ax, %ds
    lgdtl   tramp_gdtr - tramp_start
    mov     $0x20, %eax                     /* PAE */
    mov     %eax, %cr4
    movl    tramp_cr3 - tramp_start, %eax
    mov     %eax, %cr3
    mov     $0xC0000080, %ecx
    rdmsr
    or      $0x100, %eax
    wrmsr
    mov     $0x80000011, %eax               /* PG | ET | PE */
    mov     %eax, %cr0
    ljmpl   $KERNEL_CS, $ap_long64
    .align 4
tramp_gdtr:
    .word   gdt_end - gdt - 1
    .long   gdt
tramp_cr3:
    .long   boot_pml4
tramp_end:

/*
 * Interrupt stubs: 256 of them, 16 bytes apart from isr_stubs. Each pushes
 * an error code (a zero where the CPU does not push one) and its vector,
 * then isr_common saves the general registers and calls
 * isr_dispatch(IsrFrame *).
 */
    .code64
    .align 16
    .globl isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .align 16
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    pushq   $vec
    .else
    pushq   $0
    pushq   $vec
    .endif
    jmp     isr_common
    .set vec, vec + 1
    .endr

/*
 * Fast paths. Each ring-0 instruction is expensive on kvm_pvm (see above),
 * so the frequent interrupts do the minimum in assembly: count, EOI, iretq.
 * Offsets: Cpu.res at 16 (%gs points to the Cpu), GwosCpuResults.lapic_ticks
 * at 40, GwosResults.pit_ticks at 0x4030, net.irqs at 0x51a8,
 * net.irqs_idle at 0x51b0 and io_gp_traps at 0x4088 (checked in main.c).
 */
    .globl timer_stub, pit_stub, spurious_stub, gp_stub, net_stub
timer_stub:
    push    %rax
    mov     %gs:16, %rax
    incq    40(%rax)
    mov     $0xfee000b0, %eax
    movl    $0, (%rax)
    pop     %rax
    iretq

pit_stub:
    push    %rax
    incq    0x4030
    mov     $0xfee000b0, %eax
    movl    $0, (%rax)
    pop     %rax
    iretq

spurious_stub:
    iretq

/*
 * virtio-net INTx (level triggered): reading the ISR register clears it
 * and lowers the line, so it must come before the EOI, or the IOAPIC
 * would deliver the still-asserted line again at once.
 */
net_stub:
    push    %rax
    mov     vnet_isr_addr(%rip), %rax
    movzbl  (%rax), %eax
    incq    0x51a8
    test    %eax, %eax
    jnz     1f
    incq    0x51b0
1:  mov     $0xfee000b0, %eax
    movl    $0, (%rax)
    pop     %rax
    iretq

/*
 * #GP: ring-3 port I/O. kvm_pvm ignores IOPL 3, so the three I/O
 * instructions of the user I/O gate (uio_*) fault; do them here with the
 * faulting code's own registers and step over them. Anything else is a
 * real #GP for isr_dispatch. The CPU pushed an error code.
 */
gp_stub:
    cmpq    $uio_outsb_insn, 8(%rsp)
    je      1f
    cmpq    $uio_outb_insn, 8(%rsp)
    je      2f
    cmpq    $uio_inb_insn, 8(%rsp)
    je      3f
    pushq   $13
    jmp     isr_common
1:  lock incq 0x4088
    rep outsb
    addq    $2, 8(%rsp)
    add     $8, %rsp
    iretq
2:  lock incq 0x4088
    out     %al, %dx
    addq    $1, 8(%rsp)
    add     $8, %rsp
    iretq
3:  lock incq 0x4088
    in      %dx, %al
    addq    $1, 8(%rsp)
    add     $8, %rsp
    iretq

/*
 * The user I/O gate, callable from ring 3 (and ring 0):
 *   void uio_outsb(uint16_t port, const void *buf, uint64_t n);
 *   void uio_outb(uint16_t port, uint8_t v);
 *   uint8_t uio_inb(uint16_t port);
 */
    .globl uio_outsb, uio_outb, uio_inb
uio_outsb:
    mov     %rdx, %rcx
    mov     %edi, %edx
    cld
uio_outsb_insn:
    rep outsb
    ret
uio_outb:
    mov     %edi, %edx
    mov     %esi, %eax
uio_outb_insn:
    out     %al, %dx
    ret
uio_inb:
    mov     %edi, %edx
uio_inb_insn:
    in      %dx, %al
    movzbl  %al, %eax
    ret

isr_common:
    push    %r15
    push    %r14
    push    %r13
    push    %r12
    push    %r11
    push    %r10
    push    %r9
    push    %r8
    push    %rbp
    push    %rdi
    push    %rsi
    push    %rdx
    push    %rcx
    push    %rbx
    push    %rax
    mov     %rsp, %rdi
    cld
    call    isr_dispatch
    pop     %rax
    pop     %rbx
    pop     %rcx
    pop     %rdx
    pop     %rsi
    pop     %rdi
    pop     %rbp
    pop     %r8
    pop     %r9
    pop     %r10
    pop     %r11
    pop     %r12
    pop     %r13
    pop     %r14
    pop     %r15
    add     $16, %rsp
    iretq

/* ------------------------------------------------------------------ */
    .data
    .align 8
boot_magic: .long 0
boot_mbi:   .long 0
    .globl ap_stack_top
ap_stack_top: .quad 0

no_lm_msg: .asciz "gwos: error: this CPU has no long mode\n"

/*
 * GDT: null, kernel code 64, kernel data, user data, user code 64, then one
 * 16-byte TSS descriptor per vCPU (filled in by C).
 */
    .align 16
    .globl gdt, gdt_tss
gdt:
    .quad   0
    .quad   0x00af9a000000ffff
    .quad   0x00cf92000000ffff
    .quad   0x00cff2000000ffff
    .quad   0x00affa000000ffff
gdt_tss:
    .fill   MAX_CPUS * 2, 8, 0
gdt_end:

    .align 16
    .globl gdt_ptr
gdt_ptr:
    .word   gdt_end - gdt - 1
    .quad   gdt

/* ------------------------------------------------------------------ */
    .bss
    .align 4096
    .globl boot_pml4, boot_pd
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * PD_COUNT
    .globl kstacks
kstacks:    .skip 16384 * MAX_CPUS
    .section .note.GNU-stack, "", @progbits
