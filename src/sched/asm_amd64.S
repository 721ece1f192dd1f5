/*
 * asm_amd64.S — the goroutine context switch for x86-64 (System V ABI).
 *
 * gogo(from, to) saves what the ABI says a call preserves — rbx, rbp,
 * r12-r15, the SSE control/status word (MXCSR) and the x87 control word —
 * on the current stack, stores the stack pointer in from->sp, loads to->sp
 * and restores the same set from there, then returns on the new stack.
 * Nothing else needs saving: every other register is dead across a call.
 * A switch is therefore a few pushes and pops, no system call and no
 * signal mask work (glibc's swapcontext makes a sigprocmask call each time).
 *
 * Frame left on a stack that is not running (lowest address first):
 *     [sp+0]  MXCSR (4 bytes), x87 control word (2 bytes), two unused bytes
 *     [sp+8]  r15, r14, r13, r12, rbx, rbp
 *     [sp+56] return address
 * stack.c builds the same frame for a new goroutine with gostart as the
 * return address.
 */
    .text

    .globl  gogo
    .hidden gogo
    .type   gogo, @function
    .p2align 4
gogo:
    .cfi_startproc
    pushq   %rbp
    pushq   %rbx
    pushq   %r12
    pushq   %r13
    pushq   %r14
    pushq   %r15
    subq    $8, %rsp
    stmxcsr (%rsp)
    fnstcw  4(%rsp)
    /* Read each word back at the size it was stored, so the loads are
     * forwarded from the stores (one 8-byte load over both would wait for
     * them to reach the cache: ~15 cycles a switch). */
    movl    (%rsp), %edx            /* the control words now in force */
    movzwl  4(%rsp), %ecx
    movq    %rsp, (%rdi)            /* from->sp */
    movq    (%rsi), %rsp            /* to->sp */
    /* Loading a control word stalls the pipeline: only when it differs,
     * which is rare (most programs never change the FP environment). */
    cmpl    (%rsp), %edx
    jne     1f
    cmpw    4(%rsp), %cx
    jne     1f
2:  addq    $8, %rsp
    popq    %r15
    popq    %r14
    popq    %r13
    popq    %r12
    popq    %rbx
    popq    %rbp
    ret
1:  ldmxcsr (%rsp)
    fldcw   4(%rsp)
    jmp     2b
    .cfi_endproc
    .size   gogo, .-gogo

/* A new goroutine's first return lands here, with the stack pointer at the
 * top of its stack (16-byte aligned): call goroutine_start, which never
 * returns.  Unwinders stop here (the return address is undefined). */
    .globl  gostart
    .hidden gostart
    .type   gostart, @function
    .p2align 4
gostart:
    .cfi_startproc
    .cfi_undefined rip
    xorl    %ebp, %ebp
    call    goroutine_start
    ud2
    .cfi_endproc
    .size   gostart, .-gostart

    .section .note.GNU-stack,"",@progbits
