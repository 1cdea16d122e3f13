/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * idle: the smallest Multiboot v1 test guest. Prints "idle: ready" on COM1
 * and halts with interrupts off for ever; with the word "exit" on its
 * command line it then leaves through the debug-exit port instead. Stays
 * in 32-bit protected mode, touches nothing but its own image.
 */
    .include "guest.inc"

    MULTIBOOT_HEADER MB_HDR_MEMINFO

    .text
    .code32
    .globl _start
_start:
    cli
    cld
    mov     $stack_top, %esp
    mov     %eax, %edi                  /* boot magic */

    mov     $msg_ready, %esi
    call    puts

    /* Look for the word "exit" among "<kernel> <append string>". */
    cmp     $MB_BOOT_MAGIC, %edi
    jne     halt
    testl   $MBI_F_CMDLINE, MBI_FLAGS(%ebx)
    jz      halt
    mov     MBI_CMDLINE(%ebx), %esi
    test    %esi, %esi
    jz      halt
1:  cmpb    $' ', (%esi)                /* skip blanks */
    jne     2f
    inc     %esi
    jmp     1b
2:  cmpb    $0, (%esi)
    je      halt
    cmpl    $0x74697865, (%esi)         /* "exit" */
    jne     3f
    movzbl  4(%esi), %eax
    test    %al, %al
    jz      do_exit
    cmp     $' ', %al
    je      do_exit
3:  inc     %esi                        /* skip the rest of the word */
    movzbl  (%esi), %eax
    test    %al, %al
    jz      halt
    cmp     $' ', %al
    je      1b
    jmp     3b

do_exit:
    mov     $msg_exit, %esi
    call    puts
    xor     %eax, %eax                  /* exit status (0 << 1) | 1 = 1 */
    mov     $DEBUG_EXIT_PORT, %dx
    out     %al, %dx
    /* No debug-exit device: halt like the default case. */
halt:
    cli
    hlt
    jmp     halt

/* esi = NUL-terminated string; clobbers eax, ecx, edx, esi. */
puts:
1:  lodsb
    test    %al, %al
    jz      4f
    mov     %al, %ah
    mov     $COM1_LSR, %dx
    mov     $COM1_SPIN, %ecx
2:  in      %dx, %al
    test    $LSR_THRE, %al
    jnz     3f
    loop    2b
3:  mov     %ah, %al
    mov     $COM1, %dx
    out     %al, %dx
    jmp     1b
4:  ret

    .section .rodata
msg_ready:  .asciz "idle: ready\n"
msg_exit:   .asciz "idle: exit\n"

    .bss
    .balign 16
stack:      .skip 4096
stack_top:
