/*
 * asm_arm64.S — the goroutine context switch for AArch64 (AAPCS64).
 *
 * gogo(from, to) saves what a call preserves — x19-x28, the frame pointer
 * x29, the link register x30, the low halves of v8-v15 (d8-d15) and the
 * floating-point control register FPCR — in a 176-byte frame on the
 * current stack, stores sp in from->sp, loads to->sp, restores the same set
 * and returns through x30.  stack.c builds the same frame for a new
 * goroutine with x30 = gostart.
 *
 * Frame (offsets from sp): x19..x28 at 0..72, x29 at 80, x30 at 88,
 * d8..d15 at 96..152, FPCR at 160, padding to 176.
 */
    .text

    .globl  gogo
    .hidden gogo
    .type   gogo, %function
    .p2align 4
gogo:
    sub     sp, sp, #176
    stp     x19, x20, [sp, #0]
    stp     x21, x22, [sp, #16]
    stp     x23, x24, [sp, #32]
    stp     x25, x26, [sp, #48]
    stp     x27, x28, [sp, #64]
    stp     x29, x30, [sp, #80]
    stp     d8, d9, [sp, #96]
    stp     d10, d11, [sp, #112]
    stp     d12, d13, [sp, #128]
    stp     d14, d15, [sp, #144]
    mrs     x9, fpcr
    str     x9, [sp, #160]
    mov     x9, sp
    str     x9, [x0]                /* from->sp */
    ldr     x9, [x1]                /* to->sp */
    mov     sp, x9
    ldr     x9, [sp, #160]
    msr     fpcr, x9
    ldp     x19, x20, [sp, #0]
    ldp     x21, x22, [sp, #16]
    ldp     x23, x24, [sp, #32]
    ldp     x25, x26, [sp, #48]
    ldp     x27, x28, [sp, #64]
    ldp     x29, x30, [sp, #80]
    ldp     d8, d9, [sp, #96]
    ldp     d10, d11, [sp, #112]
    ldp     d12, d13, [sp, #128]
    ldp     d14, d15, [sp, #144]
    add     sp, sp, #176
    ret
    .size   gogo, .-gogo

/* A new goroutine's first return lands here with sp at the top of its
 * stack: call goroutine_start, which never returns. */
    .globl  gostart
    .hidden gostart
    .type   gostart, %function
    .p2align 4
gostart:
    mov     x29, #0
    bl      goroutine_start
    brk     #0
    .size   gostart, .-gostart

    .section .note.GNU-stack,"",%progbits
