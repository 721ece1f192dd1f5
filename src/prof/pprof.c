/*
 * pprof.c — the heap profile in pprof's format (profile.proto, gzipped).
 *
 * The writer runs outside malloc (gort_heap_profile_write, the exit hook,
 * the interval thread) with the profiler's guard set, so it allocates
 * freely and those allocations are not sampled.  It holds none of the
 * profiler's locks: buckets are read through their never-freed list and
 * atomic counters.
 *
 * What it writes is Go's heap profile layout: sample types alloc_objects,
 * alloc_space, inuse_objects, inuse_space (the default), period type
 * space/bytes, period MemProfileRate, values unbiased per bucket.  Each
 * return address is resolved here, from the loaded objects
 * (dl_iterate_phdr: mappings, build ids) and their ELF symbol tables (read
 * from the files, so static functions of a program that exports nothing
 * have names too), with dladdr as the fallback; the mappings say so
 * (has_functions), and pprof shows the names with no binary at hand.  The
 * allocator's own frames at the top of each stack are dropped here.
 *
 * The gzip member is made of deflate "stored" blocks with a CRC-32: no
 * compression, no zlib.
 */
#define _GNU_SOURCE
#include "prof/pprof.h"
#include "prof/mprof.h"
#include "runtime/print.h"
#include "gort.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- Growing byte buffers and protobuf encoding ------------------------ */

struct buf {
    uint8_t *p;
    size_t len, cap;
    bool oom;
};


/* Doubles the capacity of an array of *cap elements of size elemsize
 * (first: initial); false when out of memory (the array is unchanged). */
static bool grow_array(void **arr, size_t *cap, size_t elemsize, size_t initial)
{
    size_t ncap = *cap ? *cap * 2 : initial;
    void *n = gort_realloc(*arr, ncap * elemsize);
    if (!n)
        return false;
    *arr = n;
    *cap = ncap;
    return true;
}

static void buf_put(struct buf *b, const void *data, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n)
            cap *= 2;
        uint8_t *p = gort_realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, data, n);
    b->len += n;
}

static void put_varint(struct buf *b, uint64_t v)
{
    uint8_t tmp[10];
    int n = 0;
    do {
        tmp[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    buf_put(b, tmp, (size_t)n);
}

enum { WIRE_VARINT = 0, WIRE_BYTES = 2 };

static void put_key(struct buf *b, int field, int wire)
{
    put_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

/* A varint field; zero is proto3's default and is left out. */
static void put_u64(struct buf *b, int field, uint64_t v)
{
    if (v == 0)
        return;
    put_key(b, field, WIRE_VARINT);
    put_varint(b, v);
}

static void put_bytes(struct buf *b, int field, const void *data, size_t n)
{
    put_key(b, field, WIRE_BYTES);
    put_varint(b, n);
    buf_put(b, data, n);
}

/* A sub-message: encoded into tmp, which is then emptied. */
static void put_msg(struct buf *b, int field, struct buf *tmp)
{
    if (tmp->oom)
        b->oom = true;
    put_bytes(b, field, tmp->p, tmp->len);
    tmp->len = 0;
}

/* ---- The string table -------------------------------------------------- */

struct strtab {
    struct buf out;          /* the encoded string_table fields */
    char **keys;             /* open addressing: owned copies */
    int64_t *idx;
    size_t cap, n;
    bool oom;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* The index of s in the table, adding it if new. */
static int64_t str_index(struct strtab *t, const char *s)
{
    if (t->n * 2 >= t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 256;
        char **keys = gort_calloc(cap, sizeof *keys);
        int64_t *idx = gort_calloc(cap, sizeof *idx);
        if (!keys || !idx) {
            gort_free(keys);
            gort_free(idx);
            t->oom = true;
            return 0;
        }
        for (size_t i = 0; i < t->cap; i++)
            if (t->keys[i]) {
                size_t j = str_hash(t->keys[i]) & (cap - 1);
                while (keys[j])
                    j = (j + 1) & (cap - 1);
                keys[j] = t->keys[i];
                idx[j] = t->idx[i];
            }
        gort_free(t->keys);
        gort_free(t->idx);
        t->keys = keys;
        t->idx = idx;
        t->cap = cap;
    }
    size_t j = str_hash(s) & (t->cap - 1);
    for (; t->keys[j]; j = (j + 1) & (t->cap - 1))
        if (strcmp(t->keys[j], s) == 0)
            return t->idx[j];
    size_t len = strlen(s);
    char *copy = gort_malloc(len + 1);
    if (!copy) {
        t->oom = true;
        return 0;
    }
    memcpy(copy, s, len + 1);
    t->keys[j] = copy;
    t->idx[j] = (int64_t)t->n++;
    put_bytes(&t->out, 6, s, len);   /* Profile.string_table */
    return t->idx[j];
}

static void strtab_free(struct strtab *t)
{
    for (size_t i = 0; i < t->cap; i++)
        gort_free(t->keys[i]);
    gort_free(t->keys);
    gort_free(t->idx);
    gort_free(t->out.p);
}

/* ---- Loaded objects and their symbols ---------------------------------- */

struct sym {
    uint64_t addr, size;     /* file (link-time) addresses */
    const char *name;        /* into the mapped file */
};

struct module {
    char *path;
    uintptr_t bias;          /* load address - link address */
    uintptr_t start, limit;  /* the executable segment, as loaded */
    uint64_t offset;         /* its file offset */
    char buildid[96];
    bool loaded;             /* symbols looked for */
    struct sym *syms;
    size_t nsyms;
    void *map;
    size_t maplen;
    bool all_named;          /* every location in it has a function */
    bool used;
    uint64_t id;             /* the Mapping id */
};

struct modlist {
    struct module *m;
    size_t n, cap;
    bool oom;
};

static void hexbytes(char *out, size_t room, const uint8_t *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < room; i++) {
        out[k++] = hex[p[i] >> 4];
        out[k++] = hex[p[i] & 15];
    }
    out[k] = 0;
}

static int add_module(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct modlist *l = arg;
    const char *name = info->dlpi_name;
    char exe[4096];
    if (!name || !*name) {
        if (l->n != 0)
            return 0;   /* only the first nameless object is the program */
        ssize_t k = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (k <= 0)
            return 0;
        exe[k] = 0;
        name = exe;
    }
    char buildid[96] = "";
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_NOTE)
            continue;
        const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
        const uint8_t *end = p + ph->p_memsz;
        while (p + sizeof(ElfW(Nhdr)) <= end) {
            const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
            const uint8_t *nm = p + sizeof *nh;
            const uint8_t *desc = nm + ((nh->n_namesz + 3) & ~3u);
            if (desc + nh->n_descsz > end)
                break;
            if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 && memcmp(nm, "GNU", 4) == 0)
                hexbytes(buildid, sizeof buildid, desc, nh->n_descsz);
            p = desc + ((nh->n_descsz + 3) & ~3u);
        }
    }
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        if (l->n == l->cap && !grow_array((void **)&l->m, &l->cap, sizeof *l->m, 32)) {
            l->oom = true;
            return 1;
        }
        struct module *m = &l->m[l->n];
        memset(m, 0, sizeof *m);
        size_t len = strlen(name);
        m->path = gort_malloc(len + 1);
        if (!m->path) {
            l->oom = true;
            return 1;
        }
        memcpy(m->path, name, len + 1);
        uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
        m->bias = info->dlpi_addr;
        m->start = (info->dlpi_addr + ph->p_vaddr) & ~(pg - 1);
        m->limit = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
        m->offset = ph->p_offset & ~(uint64_t)(pg - 1);
        memcpy(m->buildid, buildid, sizeof buildid);
        m->all_named = true;
        l->n++;
    }
    return 0;
}

static int sym_cmp(const void *a, const void *b)
{
    const struct sym *x = a, *y = b;
    return x->addr < y->addr ? -1 : x->addr > y->addr;
}

/* Reads the function symbols of m's file: .symtab where the file has one,
 * else .dynsym. */
static void load_symbols(struct module *m)
{
    m->loaded = true;
    int fd = open(m->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size < (off_t)sizeof(ElfW(Ehdr))) {
        close(fd);
        return;
    }
    size_t len = (size_t)st.st_size;
    uint8_t *f = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f == MAP_FAILED)
        return;
    m->map = f;
    m->maplen = len;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)f;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        eh->e_shoff + (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr)) > len)
        return;
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(f + eh->e_shoff);
    const ElfW(Shdr) *tab = NULL;
    for (int pass = 0; pass < 2 && !tab; pass++)
        for (int i = 0; i < eh->e_shnum; i++)
            if (sh[i].sh_type == (pass == 0 ? SHT_SYMTAB : SHT_DYNSYM)) {
                tab = &sh[i];
                break;
            }
    if (!tab || tab->sh_link >= eh->e_shnum || tab->sh_entsize != sizeof(ElfW(Sym)))
        return;
    const ElfW(Shdr) *strs = &sh[tab->sh_link];
    if (tab->sh_offset + tab->sh_size > len || strs->sh_offset + strs->sh_size > len ||
        strs->sh_size == 0)
        return;
    const ElfW(Sym) *syms = (const ElfW(Sym) *)(f + tab->sh_offset);
    const char *names = (const char *)(f + strs->sh_offset);
    size_t n = tab->sh_size / sizeof *syms, k = 0;
    m->syms = gort_malloc((n ? n : 1) * sizeof *m->syms);
    if (!m->syms)
        return;
    for (size_t i = 0; i < n; i++) {
        const ElfW(Sym) *s = &syms[i];
        if (ELF64_ST_TYPE(s->st_info) != STT_FUNC || s->st_value == 0 ||
            s->st_shndx == SHN_UNDEF || s->st_name >= strs->sh_size)
            continue;
        /* The string table must end in a NUL for the names to be safe. */
        if (names[strs->sh_size - 1] != 0)
            break;
        m->syms[k++] = (struct sym){s->st_value, s->st_size, names + s->st_name};
    }
    qsort(m->syms, k, sizeof *m->syms, sym_cmp);
    m->nsyms = k;
}

/* The name of the function holding addr in m, or NULL. */
static const char *lookup_symbol(struct module *m, uintptr_t addr)
{
    if (!m->loaded)
        load_symbols(m);
    uint64_t a = addr - m->bias;
    size_t lo = 0, hi = m->nsyms;
    while (lo < hi) {   /* the first symbol above a */
        size_t mid = (lo + hi) / 2;
        if (m->syms[mid].addr <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    /* Among symbols at the same address prefer one with a size that
     * covers a (aliases: malloc / gort_malloc both do). */
    for (size_t i = lo; i-- > 0;) {
        const struct sym *s = &m->syms[i];
        if (a < s->addr + s->size)
            return s->name;
        if (s->size != 0 || i + 1 < lo)
            break;
        return s->name;   /* the nearest, sizeless */
    }
    Dl_info di;
    if (dladdr((void *)addr, &di) && di.dli_sname && di.dli_saddr)
        return di.dli_sname;
    return NULL;
}

/* The function holding return address pc (NULL if unnamed) and, in
 * *modp, the loaded object it lies in (NULL if none). */
static const char *symbolize(struct modlist *mods, uintptr_t pc, struct module **modp)
{
    uintptr_t addr = pc - 1;   /* inside the call instruction */
    struct module *mod = NULL;
    for (size_t m = 0; m < mods->n; m++)
        if (addr >= mods->m[m].start && addr < mods->m[m].limit) {
            mod = &mods->m[m];
            break;
        }
    *modp = mod;
    const char *name = mod ? lookup_symbol(mod, addr) : NULL;
    if (!name) {
        Dl_info di;
        if (dladdr((void *)addr, &di) && di.dli_sname && di.dli_saddr)
            name = di.dli_sname;
    }
    return name;
}

static void modlist_free(struct modlist *mods)
{
    for (size_t m = 0; m < mods->n; m++) {
        gort_free(mods->m[m].path);
        gort_free(mods->m[m].syms);
        if (mods->m[m].map)
            munmap(mods->m[m].map, mods->m[m].maplen);
    }
    gort_free(mods->m);
    mods->m = NULL;
    mods->n = 0;
}

/* ---- Locations --------------------------------------------------------- */

struct loc {
    uintptr_t pc;
    struct module *mod;      /* NULL: in no loaded object */
    uint64_t func;           /* Function id, 0: no name */
    bool gort;               /* one of the allocator's own frames */
};

/* Whether name is one of gort's allocation entry points or helpers (the
 * frames between a program's call and mprof_malloc), suffixes such as
 * ".part.0" or ".cold" aside. */
static bool gort_name(const char *name)
{
    static const char *const prefix[] = {"gort_", "malloc_", "mprof_"};
    for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
        if (strncmp(name, prefix[i], strlen(prefix[i])) == 0)
            return true;
    static const char *const exact[] = {"malloc", "calloc", "realloc", "reallocarray",
                                        "posix_memalign", "aligned_alloc", "memalign",
                                        "valloc", "pvalloc", "free", "cfree"};
    size_t n = strcspn(name, ".");
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strlen(exact[i]) == n && strncmp(name, exact[i], n) == 0)
            return true;
    return false;
}

struct pctab {
    struct loc *locs;        /* in id order: id = index + 1 */
    size_t n, cap;
    uint32_t *slots;         /* open addressing over pc: index + 1 */
    size_t nslots;
    bool oom;
};

static uint64_t pc_hash(uintptr_t pc)
{
    return (uint64_t)pc * 0x9e3779b97f4a7c15ull;
}

/* The Location id of pc, made if new. */
static uint32_t pc_index(struct pctab *t, uintptr_t pc)
{
    if (t->n * 2 >= t->nslots) {
        size_t ns = t->nslots ? t->nslots * 2 : 1024;
        uint32_t *slots = gort_calloc(ns, sizeof *slots);
        if (!slots) {
            t->oom = true;
            return 0;
        }
        for (size_t i = 0; i < t->n; i++) {
            size_t j = (pc_hash(t->locs[i].pc) >> 20) & (ns - 1);
            while (slots[j])
                j = (j + 1) & (ns - 1);
            slots[j] = (uint32_t)(i + 1);
        }
        gort_free(t->slots);
        t->slots = slots;
        t->nslots = ns;
    }
    size_t j = (pc_hash(pc) >> 20) & (t->nslots - 1);
    for (; t->slots[j]; j = (j + 1) & (t->nslots - 1))
        if (t->locs[t->slots[j] - 1].pc == pc)
            return t->slots[j];
    if (t->n == t->cap && !grow_array((void **)&t->locs, &t->cap, sizeof *t->locs, 1024)) {
        t->oom = true;
        return 0;
    }
    t->locs[t->n] = (struct loc){.pc = pc};
    t->slots[j] = (uint32_t)(t->n + 1);
    return (uint32_t)++t->n;
}

/* ---- gzip -------------------------------------------------------------- */

static uint32_t crc_table[256];

uint32_t pprof_crc32(const uint8_t *p, size_t n)
{
    if (__atomic_load_n(&crc_table[1], __ATOMIC_ACQUIRE) == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            __atomic_store_n(&crc_table[i], c, __ATOMIC_RELAXED);
        }
        __atomic_thread_fence(__ATOMIC_RELEASE);
    }
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

#define STORED_MAX 65535

size_t pprof_gzip_bound(size_t n)
{
    return 10 + n + 5 * (n / STORED_MAX + 1) + 8;
}

size_t pprof_gzip(const uint8_t *data, size_t n, uint8_t *out)
{
    /* Header: magic, deflate, no flags, no mtime, no extra flags, OS unknown. */
    static const uint8_t hdr[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255};
    size_t k = 0;
    memcpy(out, hdr, sizeof hdr);
    k += sizeof hdr;
    size_t off = 0;
    do {
        size_t len = n - off > STORED_MAX ? STORED_MAX : n - off;
        out[k++] = off + len == n;   /* BFINAL on the last; BTYPE 00 stored */
        out[k++] = (uint8_t)len;
        out[k++] = (uint8_t)(len >> 8);
        out[k++] = (uint8_t)~len;
        out[k++] = (uint8_t)(~len >> 8);
        memcpy(out + k, data + off, len);
        k += len;
        off += len;
    } while (off < n);
    uint32_t crc = pprof_crc32(data, n), isize = (uint32_t)n;
    for (int i = 0; i < 4; i++)
        out[k++] = (uint8_t)(crc >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[k++] = (uint8_t)(isize >> (8 * i));
    return k;
}

/* ---- The profile ------------------------------------------------------- */

static int write_all(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int64_t round_i64(double v)
{
    return (int64_t)(v + 0.5);
}

struct snap {
    const struct mprof_bucket *b;
    uint64_t allocs, frees, alloc_bytes, free_bytes;
};

int pprof_write_heap(int fd)
{
    int64_t rate = gort_memprofile_rate();
    int rc = -1, err = ENOMEM;
    struct modlist mods = {0};
    struct pctab pcs = {0};
    struct strtab st = {0};
    struct buf prof = {0}, tmp = {0}, tmp2 = {0};
    struct snap *snaps = NULL;
    uint32_t *ids = NULL;
    uint8_t *gz = NULL;
    size_t nb = 0;

    /* Buckets, and their counters as of now. */
    for (const struct mprof_bucket *b = mprof_buckets(); b; b = b->allnext)
        nb++;
    snaps = gort_malloc((nb ? nb : 1) * sizeof *snaps);
    ids = gort_malloc(MPROF_MAXSTACK * sizeof *ids);
    if (!snaps || !ids)
        goto out;
    size_t i = 0;
    for (const struct mprof_bucket *b = mprof_buckets(); b && i < nb; b = b->allnext, i++) {
        struct snap *s = &snaps[i];
        s->b = b;
        s->allocs = __atomic_load_n(&b->allocs, __ATOMIC_RELAXED);
        s->alloc_bytes = __atomic_load_n(&b->alloc_bytes, __ATOMIC_RELAXED);
        s->frees = __atomic_load_n(&b->frees, __ATOMIC_RELAXED);
        s->free_bytes = __atomic_load_n(&b->free_bytes, __ATOMIC_RELAXED);
        for (uint32_t k = 0; k < b->nstk; k++)
            pc_index(&pcs, b->stk[k]);
    }
    nb = i;

    /* The loaded objects, and each location's object and name. */
    dl_iterate_phdr(add_module, &mods);
    if (mods.oom || pcs.oom)
        goto out;
    struct module *gortmod = NULL;
    for (size_t m = 0; m < mods.n; m++)
        if ((uintptr_t)&mprof_malloc >= mods.m[m].start && (uintptr_t)&mprof_malloc < mods.m[m].limit)
            gortmod = &mods.m[m];
    /* A shared libgort: all of its frames are the allocator's.  Linked into
     * the program: the allocator's frames are known by name. */
    bool gort_shared = gortmod && gortmod != &mods.m[0];

    str_index(&st, "");
    int64_t s_alloc_objects = str_index(&st, "alloc_objects"), s_count = str_index(&st, "count");
    int64_t s_alloc_space = str_index(&st, "alloc_space"), s_bytes = str_index(&st, "bytes");
    int64_t s_inuse_objects = str_index(&st, "inuse_objects");
    int64_t s_inuse_space = str_index(&st, "inuse_space"), s_space = str_index(&st, "space");

    /* Functions, one per distinct name; written as they are first met. */
    uint64_t nfunc = 0;
    struct strtab fnames = {0};   /* name -> function id - 1, via idx */
    for (size_t k = 0; k < pcs.n; k++) {
        struct loc *l = &pcs.locs[k];
        const char *name = symbolize(&mods, l->pc, &l->mod);
        if (l->mod)
            l->mod->used = true;
        if (!name) {
            if (l->mod)
                l->mod->all_named = false;
            l->gort = gort_shared && l->mod == gortmod;
            continue;
        }
        l->gort = l->mod && l->mod == gortmod && (gort_shared || gort_name(name));
        size_t before = fnames.n;
        int64_t fi = str_index(&fnames, name);
        l->func = (uint64_t)fi + 1;
        if (fnames.n != before) {
            int64_t sname = str_index(&st, name);
            put_u64(&tmp, 1, ++nfunc);          /* Function.id */
            put_u64(&tmp, 2, (uint64_t)sname);  /* name */
            put_u64(&tmp, 3, (uint64_t)sname);  /* system_name */
            put_msg(&prof, 5, &tmp);
        }
    }
    err = ENOMEM;
    if (fnames.oom) {
        strtab_free(&fnames);
        goto out;
    }
    strtab_free(&fnames);

    /* Sample types, as Go's heap profile has them. */
    int64_t types[4][2] = {{s_alloc_objects, s_count}, {s_alloc_space, s_bytes},
                           {s_inuse_objects, s_count}, {s_inuse_space, s_bytes}};
    for (int t = 0; t < 4; t++) {
        put_u64(&tmp, 1, (uint64_t)types[t][0]);
        put_u64(&tmp, 2, (uint64_t)types[t][1]);
        put_msg(&prof, 1, &tmp);
    }

    /* Samples: a bucket each, the allocator's frames dropped. */
    for (size_t k = 0; k < nb; k++) {
        const struct snap *s = &snaps[k];
        const struct mprof_bucket *b = s->b;
        uint32_t first = 0, n = 0;
        while (first < b->nstk && pcs.locs[pc_index(&pcs, b->stk[first]) - 1].gort)
            first++;
        if (first == b->nstk)
            first = 0;
        for (uint32_t f = first; f < b->nstk; f++)
            ids[n++] = pc_index(&pcs, b->stk[f]);
        double ac, ab, ic, ib;
        mprof_scale(s->allocs, s->alloc_bytes, rate, &ac, &ab);
        mprof_scale(s->allocs - s->frees, s->alloc_bytes - s->free_bytes, rate, &ic, &ib);
        put_key(&tmp, 1, WIRE_BYTES);           /* Sample.location_id, packed */
        size_t plen = 0;
        for (uint32_t f = 0; f < n; f++)
            for (uint64_t v = ids[f]; ; v >>= 7) {
                plen++;
                if (v < 0x80)
                    break;
            }
        put_varint(&tmp, plen);
        for (uint32_t f = 0; f < n; f++)
            put_varint(&tmp, ids[f]);
        int64_t vals[4] = {round_i64(ac), round_i64(ab), round_i64(ic), round_i64(ib)};
        for (int v = 0; v < 4; v++)
            put_varint(&tmp2, (uint64_t)vals[v]);
        put_msg(&tmp, 2, &tmp2);                /* Sample.value, packed */
        put_u64(&tmp2, 1, (uint64_t)s_bytes);   /* Go's "bytes" label: block size */
        put_u64(&tmp2, 3, b->size);
        put_msg(&tmp, 3, &tmp2);
        put_msg(&prof, 2, &tmp);
    }

    /* Mappings: each executable segment of an object a location lies in. */
    uint64_t nmap = 0;
    for (size_t m = 0; m < mods.n; m++) {
        struct module *md = &mods.m[m];
        if (!md->used && m != 0)
            continue;
        md->id = ++nmap;
        put_u64(&tmp, 1, md->id);
        put_u64(&tmp, 2, md->start);
        put_u64(&tmp, 3, md->limit);
        put_u64(&tmp, 4, md->offset);
        put_u64(&tmp, 5, (uint64_t)str_index(&st, md->path));
        put_u64(&tmp, 6, md->buildid[0] ? (uint64_t)str_index(&st, md->buildid) : 0);
        put_u64(&tmp, 7, md->used && md->all_named);   /* has_functions */
        put_msg(&prof, 3, &tmp);
    }

    /* Locations. */
    for (size_t k = 0; k < pcs.n; k++) {
        const struct loc *l = &pcs.locs[k];
        put_u64(&tmp, 1, k + 1);
        put_u64(&tmp, 2, l->mod ? l->mod->id : 0);
        put_u64(&tmp, 3, l->pc - 1);
        if (l->func) {
            put_u64(&tmp2, 1, l->func);
            put_msg(&tmp, 4, &tmp2);            /* Line{function_id} */
        }
        put_msg(&prof, 4, &tmp);
    }

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    put_u64(&prof, 9, (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec);
    put_u64(&tmp, 1, (uint64_t)s_space);
    put_u64(&tmp, 2, (uint64_t)s_bytes);
    put_msg(&prof, 11, &tmp);                   /* period_type */
    put_u64(&prof, 12, (uint64_t)(rate > 0 ? rate : 0));
    put_u64(&prof, 14, (uint64_t)s_inuse_space); /* default_sample_type */
    if (st.oom || st.out.oom || prof.oom || tmp.oom || tmp2.oom || pcs.oom)
        goto out;
    buf_put(&prof, st.out.p, st.out.len);       /* the string table, last */
    if (prof.oom)
        goto out;

    gz = gort_malloc(pprof_gzip_bound(prof.len));
    if (!gz)
        goto out;
    size_t gzlen = pprof_gzip(prof.p, prof.len, gz);
    rc = write_all(fd, gz, gzlen);
    err = errno;

out:
    modlist_free(&mods);
    gort_free(pcs.locs);
    gort_free(pcs.slots);
    strtab_free(&st);
    gort_free(prof.p);
    gort_free(tmp.p);
    gort_free(tmp2.p);
    gort_free(snaps);
    gort_free(ids);
    gort_free(gz);
    if (rc != 0)
        errno = err;
    return rc;
}

/* ---- Stacks for the leak checker -------------------------------------- */

void pprof_print_stack(const uintptr_t *pcs, size_t n)
{
    struct modlist mods = {0};
    dl_iterate_phdr(add_module, &mods);
    bool top = true;
    uint64_t depth = 0;
    for (size_t i = 0; i < n; i++) {
        struct module *mod;
        const char *name = symbolize(&mods, pcs[i], &mod);
        /* The allocator's own frames above the program's call. */
        if (top && name && gort_name(name))
            continue;
        top = false;
        printbuf b = {.len = 0};
        pb_str(&b, "    #");
        pb_u64(&b, depth++);
        pb_str(&b, " ");
        pb_hex(&b, pcs[i]);
        pb_str(&b, " ");
        pb_str(&b, name ? name : "?");
        if (mod && mod->path) {
            const char *base = strrchr(mod->path, '/');
            pb_str(&b, " (");
            pb_str(&b, base ? base + 1 : mod->path);
            pb_str(&b, ")");
        }
        pb_str(&b, "\n");
        pb_flush(&b);
    }
    modlist_free(&mods);
}
