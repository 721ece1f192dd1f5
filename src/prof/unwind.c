/*
 * unwind.c — the heap profiler's stack walker: DWARF call-frame rules,
 * read once per return address and cached.
 *
 * Every sampled allocation needs its call stack, and a program built -O2
 * keeps no frame pointers, so the stack can only be walked with the DWARF
 * call-frame information (.eh_frame) the compiler emits for exceptions.
 * libgcc's _Unwind_Backtrace does that in full generality: for every frame
 * it finds the FDE, decodes its CIE and runs the CFA program, about 1,500
 * instructions a frame, 10,000+ a sample.  At Go's default rate (one
 * sample per 512 KiB) a program allocating 500-byte blocks paid ~6 % of
 * its time there.
 *
 * But a sampled stack is made of a few hundred distinct call sites, each
 * seen again and again, and what a walk needs from a call site is three
 * numbers: where the frame's CFA is (the stack pointer or the frame pointer
 * plus an offset), and where, if anywhere, the frame saved its caller's
 * frame pointer.  So unwind_stack works out that rule once per return
 * address, from the FDE libgcc finds (_Unwind_Find_FDE), and keeps it in a
 * table of fixed size that entries are only ever added to; a walk of a
 * known stack is then a hash lookup and three loads a frame.
 *
 * Anything the rule cannot express (a CFA computed by an expression, as in
 * signal frames and PLT stubs, a frame pointer kept in another register, an
 * unusual return-address column) is recorded as such, and the whole sample
 * is walked by libgcc instead: never a wrong frame, at worst the old cost.
 * The walk ends where the CFI says the return address is undefined (the
 * outermost frame of every thread and of every goroutine, asm_amd64.S).
 *
 * x86-64 only; elsewhere unwind_stack is libgcc's walk.
 */
#define _GNU_SOURCE     /* dl_iterate_phdr */
#include "prof/unwind.h"

#include <link.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <unwind.h>

uint64_t unwind_fallbacks;

/* ---- libgcc's walk ------------------------------------------------------ */

struct trace {
    uintptr_t *pc;
    int n, max, skip;
};

static _Unwind_Reason_Code trace_frame(struct _Unwind_Context *ctx, void *arg)
{
    struct trace *t = arg;
    uintptr_t ip = (uintptr_t)_Unwind_GetIP(ctx);
    if (ip == 0 || t->n >= t->max)
        return _URC_END_OF_STACK;
    if (t->skip > 0)
        t->skip--;
    else
        t->pc[t->n++] = ip;
    return _URC_NO_REASON;
}

/* libgcc reports first the frame that called _Unwind_Backtrace (this one),
 * then our caller's: both are skipped. */
__attribute__((noinline)) int unwind_stack_libgcc(uintptr_t *out, int max)
{
    struct trace t = {out, 0, max, 2};
    _Unwind_Backtrace(trace_frame, &t);
    __asm__ volatile("" ::: "memory");   /* no tail call: this frame must exist */
    return t.n;
}

/* unwind_stack's answer from libgcc.  Inlined into it, so the frame that
 * unwind_stack_libgcc's skip leaves first (where its caller returns to) is
 * unwind_stack's, one more than wanted. */
static inline __attribute__((always_inline)) int walk_libgcc(uintptr_t *out, int max)
{
    uintptr_t all[128];
    int got = unwind_stack_libgcc(all, max + 1 < 128 ? max + 1 : 128);
    int n = 0;
    for (int i = 1; i < got; i++)
        out[n++] = all[i];
    return n;
}

/* ---- Fork ---------------------------------------------------------------- */

/* A walk reads the loader's tables: dl_iterate_phdr (and libgcc itself on
 * a glibc without _dl_find_object) holds the loader's lock meanwhile, and
 * fork does not take that lock, so a fork while another thread walks left
 * the child's copy locked for good: the child's first sampled allocation
 * then waited for ever (test_fork, one child in a few hundred).  Walks
 * count themselves, and a fork waits for those under way
 * (unwind_fork_prepare, from malloc's prepare handler); a walk that starts
 * while a fork is pending records no frames. */
static uint32_t walking;   /* walks under way */
static uint32_t forking;   /* forks waiting for them */

static bool walk_begin(void)
{
    __atomic_add_fetch(&walking, 1, __ATOMIC_SEQ_CST);
    if (__builtin_expect(__atomic_load_n(&forking, __ATOMIC_SEQ_CST) == 0, 1))
        return true;
    __atomic_sub_fetch(&walking, 1, __ATOMIC_SEQ_CST);
    return false;
}

static void walk_end(void)
{
    __atomic_sub_fetch(&walking, 1, __ATOMIC_SEQ_CST);
}

void unwind_fork_prepare(void)
{
    __atomic_add_fetch(&forking, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&walking, __ATOMIC_SEQ_CST) != 0)
        sched_yield();
}

void unwind_fork_parent(void)
{
    __atomic_sub_fetch(&forking, 1, __ATOMIC_SEQ_CST);
}

void unwind_fork_child(void)
{
    walking = 0;   /* the child has only the forking thread */
    forking = 0;
}

#if defined(__x86_64__)

/* ---- Frame rules --------------------------------------------------------- */

/* DWARF register numbers on x86-64. */
enum { DW_RBP = 6, DW_RSP = 7, DW_RA = 16 };

/* How to step from a frame to its caller, packed in one word:
 *   bits 0-31   CFA offset (signed)
 *   bits 32-47  offset from the CFA of the saved frame pointer (signed,
 *               0: not saved here, the caller's is still in the register)
 *   bit 48      the CFA is based on the frame pointer, not the stack pointer
 *   bit 49      outermost frame: the return address is undefined
 *   bit 50      not expressible: let libgcc walk this stack
 *   bit 63      always set, so that a valid rule is never 0 */
#define RULE_RBP ((uint64_t)1 << 48)
#define RULE_END ((uint64_t)1 << 49)
#define RULE_FAIL ((uint64_t)1 << 50)
#define RULE_SET ((uint64_t)1 << 63)

static inline int32_t rule_cfaoff(uint64_t r) { return (int32_t)(uint32_t)r; }
static inline int16_t rule_rbpoff(uint64_t r) { return (int16_t)(uint16_t)(r >> 32); }

/* The state of the CFA program as it runs. */
struct cfa_row {
    int reg;            /* DW_RSP or DW_RBP, else unsupported */
    int64_t off;
    int64_t rbp_off;    /* rbp saved at CFA + rbp_off; 0: not saved */
    int rbp_bad;        /* rbp saved some way the rule cannot express */
    int64_t ra_off;     /* the return address at CFA + ra_off */
    int ra_undef;
};

struct reader {
    const uint8_t *p, *end;
    int bad;
};

static uint64_t read_uleb(struct reader *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    while (r->p < r->end) {
        uint8_t b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            return v;
    }
    r->bad = 1;
    return 0;
}

static int64_t read_sleb(struct reader *r)
{
    uint64_t v = 0;
    unsigned shift = 0;
    uint8_t b = 0;
    while (r->p < r->end) {
        b = *r->p++;
        if (shift < 64)
            v |= (uint64_t)(b & 0x7f) << shift;
        shift += 7;
        if (!(b & 0x80))
            break;
    }
    if (r->p >= r->end && (b & 0x80))
        r->bad = 1;
    if (shift < 64 && (b & 0x40))
        v |= ~(uint64_t)0 << shift;
    return (int64_t)v;
}

static uint64_t read_fixed(struct reader *r, unsigned size)
{
    if ((size_t)(r->end - r->p) < size) {
        r->bad = 1;
        return 0;
    }
    uint64_t v = 0;
    for (unsigned i = 0; i < size; i++)
        v |= (uint64_t)r->p[i] << (8 * i);
    r->p += size;
    return v;
}

/* Skips a pointer of DWARF encoding enc (only its size matters here: the
 * function's start comes from _Unwind_Find_FDE already decoded). */
static void skip_encoded(struct reader *r, uint8_t enc)
{
    if (enc == 0xff)            /* DW_EH_PE_omit */
        return;
    switch (enc & 0x0f) {
    case 0x00: read_fixed(r, 8); break;          /* absptr */
    case 0x01: case 0x09: read_uleb(r); break;   /* (s)leb128 */
    case 0x02: case 0x0a: read_fixed(r, 2); break;
    case 0x03: case 0x0b: read_fixed(r, 4); break;
    case 0x04: case 0x0c: read_fixed(r, 8); break;
    default: r->bad = 1;
    }
}

/* Runs CFA instructions [p, end) from *row, up to the row for target
 * (relative to the code's start, loc counting from there too).  Returns 0
 * on anything unsupported. */
static int run_cfa(const uint8_t *p, const uint8_t *end, uint64_t code_align,
                   int64_t data_align, uint64_t target, struct cfa_row *row,
                   const struct cfa_row *initial)
{
    struct reader r = {p, end, 0};
    struct cfa_row stack[8];
    int depth = 0;
    uint64_t loc = 0;
    while (r.p < r.end && !r.bad) {
        uint8_t op = *r.p++;
        uint8_t hi = op & 0xc0, lo = op & 0x3f;
        uint64_t reg, delta;
        int64_t off;
        if (hi == 0x40) {                       /* advance_loc */
            delta = lo * code_align;
            goto advance;
        }
        if (hi == 0x80) {                       /* offset */
            reg = lo;
            off = (int64_t)read_uleb(&r) * data_align;
            goto offset;
        }
        if (hi == 0xc0) {                       /* restore */
            reg = lo;
            goto restore;
        }
        switch (op) {
        case 0x00:                              /* nop */
            continue;
        case 0x02: delta = read_fixed(&r, 1) * code_align; goto advance;
        case 0x03: delta = read_fixed(&r, 2) * code_align; goto advance;
        case 0x04: delta = read_fixed(&r, 4) * code_align; goto advance;
        case 0x05:                              /* offset_extended */
            reg = read_uleb(&r);
            off = (int64_t)read_uleb(&r) * data_align;
            goto offset;
        case 0x11:                              /* offset_extended_sf */
            reg = read_uleb(&r);
            off = read_sleb(&r) * data_align;
            goto offset;
        case 0x2f:                              /* GNU_negative_offset_extended */
            reg = read_uleb(&r);
            off = -(int64_t)read_uleb(&r) * data_align;
            goto offset;
        case 0x06:                              /* restore_extended */
            reg = read_uleb(&r);
            goto restore;
        case 0x07:                              /* undefined */
            reg = read_uleb(&r);
            if (reg == DW_RA)
                row->ra_undef = 1;
            else if (reg == DW_RBP)
                row->rbp_bad = 1;
            continue;
        case 0x08:                              /* same_value */
            reg = read_uleb(&r);
            if (reg == DW_RBP) {
                row->rbp_off = 0;
                row->rbp_bad = 0;
            } else if (reg == DW_RA) {
                return 0;
            }
            continue;
        case 0x09:                              /* register */
            reg = read_uleb(&r);
            read_uleb(&r);
            if (reg == DW_RBP || reg == DW_RA)
                return 0;
            continue;
        case 0x0a:                              /* remember_state */
            if (depth == 8)
                return 0;
            stack[depth++] = *row;
            continue;
        case 0x0b:                              /* restore_state */
            if (depth == 0)
                return 0;
            *row = stack[--depth];
            continue;
        case 0x0c:                              /* def_cfa */
            row->reg = (int)read_uleb(&r);
            row->off = (int64_t)read_uleb(&r);
            continue;
        case 0x12:                              /* def_cfa_sf */
            row->reg = (int)read_uleb(&r);
            row->off = read_sleb(&r) * data_align;
            continue;
        case 0x0d:                              /* def_cfa_register */
            row->reg = (int)read_uleb(&r);
            continue;
        case 0x0e:                              /* def_cfa_offset */
            row->off = (int64_t)read_uleb(&r);
            continue;
        case 0x13:                              /* def_cfa_offset_sf */
            row->off = read_sleb(&r) * data_align;
            continue;
        case 0x10:                              /* expression */
        case 0x16:                              /* val_expression */
            reg = read_uleb(&r);
            delta = read_uleb(&r);
            if (reg == DW_RBP || reg == DW_RA || delta > (uint64_t)(r.end - r.p))
                return 0;
            r.p += delta;
            continue;
        case 0x14:                              /* val_offset */
        case 0x15:                              /* val_offset_sf */
            reg = read_uleb(&r);
            if (op == 0x14)
                read_uleb(&r);
            else
                read_sleb(&r);
            if (reg == DW_RBP || reg == DW_RA)
                return 0;
            continue;
        case 0x2e:                              /* GNU_args_size */
            read_uleb(&r);
            continue;
        default:                                /* def_cfa_expression, set_loc, ... */
            return 0;
        }
    advance:
        if (loc + delta > target)
            return !r.bad;
        loc += delta;
        continue;
    offset:
        if (reg == DW_RBP) {
            row->rbp_off = off;
            row->rbp_bad = 0;
        } else if (reg == DW_RA) {
            row->ra_off = off;
        }
        continue;
    restore:
        if (!initial)
            return 0;                   /* no restore inside the CIE */
        if (reg == DW_RBP) {
            row->rbp_off = initial->rbp_off;
            row->rbp_bad = initial->rbp_bad;
        } else if (reg == DW_RA) {
            row->ra_off = initial->ra_off;
            row->ra_undef = initial->ra_undef;
        }
        continue;
    }
    return !r.bad;
}

/* What libgcc's FDE search gives besides the FDE. */
struct dwarf_eh_bases {
    void *tbase;
    void *dbase;
    void *func;
};
extern const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

/* Works out pc's rule from its FDE. */
static uint64_t rule_compute(uintptr_t pc)
{
    struct dwarf_eh_bases bases;
    const uint8_t *fde = _Unwind_Find_FDE((void *)pc, &bases);
    if (!fde)
        return RULE_SET | RULE_FAIL;
    /* The FDE: length, CIE pointer (backwards from this field), start and
     * range, augmentation data, instructions. */
    uint32_t fdelen = (uint32_t)fde[0] | (uint32_t)fde[1] << 8 | (uint32_t)fde[2] << 16 |
                      (uint32_t)fde[3] << 24;
    if (fdelen == 0 || fdelen == 0xffffffffu)
        return RULE_SET | RULE_FAIL;
    const uint8_t *fde_end = fde + 4 + fdelen;
    struct reader f = {fde + 4, fde_end, 0};
    uint32_t cie_off = (uint32_t)read_fixed(&f, 4);
    const uint8_t *cie = fde + 4 - cie_off;
    uint32_t cielen = (uint32_t)cie[0] | (uint32_t)cie[1] << 8 | (uint32_t)cie[2] << 16 |
                      (uint32_t)cie[3] << 24;
    if (cielen == 0 || cielen == 0xffffffffu)
        return RULE_SET | RULE_FAIL;
    /* The CIE: id, version, augmentation, alignments, return column,
     * augmentation data, initial instructions. */
    struct reader c = {cie + 8, cie + 4 + cielen, 0};
    uint8_t version = (uint8_t)read_fixed(&c, 1);
    const char *aug = (const char *)c.p;
    while (c.p < c.end && *c.p)
        c.p++;
    c.p++;
    uint64_t code_align = read_uleb(&c);
    int64_t data_align = read_sleb(&c);
    uint64_t ra_col = version == 1 ? read_fixed(&c, 1) : read_uleb(&c);
    uint8_t fde_enc = 0;
    int has_z = aug[0] == 'z';
    if (aug[0] && !has_z)
        return RULE_SET | RULE_FAIL;      /* an old augmentation we do not know */
    if (has_z) {
        uint64_t auglen = read_uleb(&c);
        const uint8_t *augend = c.p + auglen;
        for (const char *a = aug + 1; *a && !c.bad; a++) {
            if (*a == 'R') {
                fde_enc = (uint8_t)read_fixed(&c, 1);
            } else if (*a == 'L') {
                read_fixed(&c, 1);
            } else if (*a == 'P') {
                uint8_t penc = (uint8_t)read_fixed(&c, 1);
                skip_encoded(&c, penc & 0x7f);
            } else {
                return RULE_SET | RULE_FAIL;   /* 'S' (a signal frame) and others */
            }
        }
        if (augend > c.end)
            return RULE_SET | RULE_FAIL;
        c.p = augend;
    }
    if (c.bad || ra_col != DW_RA)
        return RULE_SET | RULE_FAIL;
    struct cfa_row row = {.reg = DW_RSP, .off = 8, .ra_off = -8};
    if (!run_cfa(c.p, c.end, code_align, data_align, UINT64_MAX, &row, NULL))
        return RULE_SET | RULE_FAIL;
    struct cfa_row initial = row;
    /* The FDE's start and range, then its augmentation data. */
    skip_encoded(&f, fde_enc);
    skip_encoded(&f, fde_enc & 0x0f);
    if (has_z) {
        uint64_t auglen = read_uleb(&f);
        if (f.bad || auglen > (uint64_t)(f.end - f.p))
            return RULE_SET | RULE_FAIL;
        f.p += auglen;
    }
    if (f.bad || pc < (uintptr_t)bases.func)
        return RULE_SET | RULE_FAIL;
    if (!run_cfa(f.p, fde_end, code_align, data_align, pc - (uintptr_t)bases.func, &row,
                 &initial))
        return RULE_SET | RULE_FAIL;
    if (row.ra_undef)
        return RULE_SET | RULE_END;
    if ((row.reg != DW_RSP && row.reg != DW_RBP) || row.rbp_bad || row.ra_off != -8 ||
        row.off < 0 || row.off > INT32_MAX || row.rbp_off < INT16_MIN || row.rbp_off > INT16_MAX)
        return RULE_SET | RULE_FAIL;
    return RULE_SET | (row.reg == DW_RBP ? RULE_RBP : 0) |
           (uint64_t)(uint16_t)(int16_t)row.rbp_off << 32 | (uint32_t)(int32_t)row.off;
}

/* ---- The cache ----------------------------------------------------------- */

/* Open addressing, entries added once and never changed: a slot's key goes
 * from 0 to 1 (claimed, being written) to the key, published after the
 * rule, so a reader that sees the key sees its rule.  Full, it simply stops
 * caching.  8192 slots (128 KiB, touched only by programs that sample)
 * hold the call sites of large programs. */
#define RULE_SLOTS 8192
#define RULE_PROBES 16

static struct {
    uintptr_t key;      /* the return address and unload generation */
    uint64_t rule;
} rules[RULE_SLOTS];

/* How many shared objects the process has unloaded so far: a return
 * address's rule is cached under it too, so code loaded where unloaded
 * code was never inherits its rules (glibc counts, and the first object's
 * report carries the count; about 12 ns, once a walk). */
static int count_unloads(struct dl_phdr_info *info, size_t size, void *arg)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof info->dlpi_subs)
        *(unsigned long long *)arg = info->dlpi_subs;
    return 1;
}

static uintptr_t unload_generation(void)
{
    unsigned long long subs = 0;
    dl_iterate_phdr(count_unloads, &subs);
    return (uintptr_t)subs;
}

static inline uint64_t rule_lookup(uintptr_t pc, uintptr_t gen)
{
    /* Return addresses fit in 48 bits; the generation goes above them. */
    uintptr_t key = pc ^ (gen << 48);
    uint32_t h = (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 51);
    for (int i = 0; i < RULE_PROBES; i++) {
        uint32_t k = (h + (uint32_t)i) & (RULE_SLOTS - 1);
        uintptr_t cur = __atomic_load_n(&rules[k].key, __ATOMIC_ACQUIRE);
        if (cur == key)
            return __atomic_load_n(&rules[k].rule, __ATOMIC_RELAXED);
        if (cur == 0)
            break;
    }
    uint64_t rule = rule_compute(pc);
    for (int i = 0; i < RULE_PROBES; i++) {
        uint32_t k = (h + (uint32_t)i) & (RULE_SLOTS - 1);
        uintptr_t cur = 0;
        if (__atomic_compare_exchange_n(&rules[k].key, &cur, 1, 0, __ATOMIC_ACQUIRE,
                                        __ATOMIC_RELAXED)) {
            __atomic_store_n(&rules[k].rule, rule, __ATOMIC_RELAXED);
            __atomic_store_n(&rules[k].key, key, __ATOMIC_RELEASE);
            break;
        }
        if (cur == key)
            break;      /* another thread is adding the same one */
    }
    return rule;
}

/* ---- The walk ------------------------------------------------------------ */

/* A frame larger than this is taken for a broken rule: stop there. */
#define MAX_FRAME ((uintptr_t)64 << 20)

__attribute__((noinline)) int unwind_stack(uintptr_t *out, int max)
{
    uintptr_t pc, sp, fp;
    /* Where we are: the rule for this very instruction describes this
     * frame (nothing moves the stack pointer within the asm). */
    __asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
                     : "=r"(pc), "=r"(sp), "=r"(fp));
    int n = 0, skip = 1;        /* the first return address is our caller's */
    uintptr_t lookup = pc;      /* an exact pc here, a return address - 1 after */
    if (!walk_begin())
        return 0;
    uintptr_t gen = unload_generation();
    while (n < max) {
        uint64_t rule = rule_lookup(lookup, gen);
        if (rule & RULE_FAIL)
            goto libgcc;
        if (rule & RULE_END)
            break;
        uintptr_t cfa = ((rule & RULE_RBP) ? fp : sp) + (uintptr_t)(intptr_t)rule_cfaoff(rule);
        if (cfa <= sp || cfa - sp > MAX_FRAME || (cfa & 7))
            break;
        int16_t rbpoff = rule_rbpoff(rule);
        if (rbpoff)
            fp = *(const uintptr_t *)(cfa + (uintptr_t)(intptr_t)rbpoff);
        uintptr_t ra = *(const uintptr_t *)(cfa - 8);
        if (ra == 0)
            break;
        sp = cfa;
        if (skip > 0)
            skip--;
        else
            out[n++] = ra;
        lookup = ra - 1;
    }
    walk_end();
    __asm__ volatile("" ::: "memory");   /* no tail call: this frame must exist */
    return n;
libgcc:
    __atomic_fetch_add(&unwind_fallbacks, 1, __ATOMIC_RELAXED);
    n = walk_libgcc(out, max);
    walk_end();
    return n;
}

#else

__attribute__((noinline)) int unwind_stack(uintptr_t *out, int max)
{
    if (!walk_begin())
        return 0;
    int n = walk_libgcc(out, max);
    walk_end();
    return n;
}

#endif
