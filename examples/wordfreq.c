/*
 * wordfreq.c — a small real program on gort: counts word frequencies in
 * text (a file, or generated text when none is given) with a chained hash
 * table of malloc'd strings that grows by realloc, prints the top words,
 * frees everything, and shows gort's memory statistics before and after.
 *
 *   wordfreq [file]
 *
 * Linked with -lgort (or run under LD_PRELOAD=libgort.so), every malloc
 * here is gort's; nothing in the program mentions gort except the
 * statistics calls.
 */
#include <ctype.h>
#include <gort.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    struct entry *next;
    long count;
    char word[];            /* flexible: one malloc per word */
};

struct table {
    struct entry **buckets;
    size_t nbuckets, nwords;
};

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void grow(struct table *t)
{
    size_t n = t->nbuckets ? t->nbuckets * 2 : 1024;
    struct entry **b = calloc(n, sizeof *b);
    if (!b) {
        perror("calloc");
        exit(1);
    }
    for (size_t i = 0; i < t->nbuckets; i++) {
        for (struct entry *e = t->buckets[i], *next; e; e = next) {
            next = e->next;
            size_t j = hash(e->word, strlen(e->word)) & (n - 1);
            e->next = b[j];
            b[j] = e;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void add(struct table *t, const char *w, size_t n)
{
    if (t->nwords >= t->nbuckets)
        grow(t);
    size_t i = hash(w, n) & (t->nbuckets - 1);
    for (struct entry *e = t->buckets[i]; e; e = e->next) {
        if (strlen(e->word) == n && memcmp(e->word, w, n) == 0) {
            e->count++;
            return;
        }
    }
    struct entry *e = malloc(sizeof *e + n + 1);
    if (!e) {
        perror("malloc");
        exit(1);
    }
    memcpy(e->word, w, n);
    e->word[n] = 0;
    e->count = 1;
    e->next = t->buckets[i];
    t->buckets[i] = e;
    t->nwords++;
}

/* Deterministic text: words drawn from a Zipf-like distribution. */
static char *generate(size_t *len)
{
    static const char *syll[] = {"ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po"};
    size_t cap = 1 << 16, n = 0;
    char *text = malloc(cap);
    uint64_t x = 88172645463325252ull;
    for (int k = 0; k < 600000; k++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        unsigned rank = (unsigned)(1.0 / ((double)(x % 1000000) / 1000000.0 + 0.0005));
        char word[64];
        int wl = 0;
        do {
            const char *s = syll[rank % 10];
            word[wl++] = s[0];
            word[wl++] = s[1];
            rank /= 10;
        } while (rank && wl < 60);
        if (n + (size_t)wl + 2 > cap) {
            cap *= 2;
            char *t = realloc(text, cap);
            if (!t) {
                perror("realloc");
                exit(1);
            }
            text = t;
        }
        memcpy(text + n, word, (size_t)wl);
        n += (size_t)wl;
        text[n++] = ' ';
    }
    *len = n;
    return text;
}

static int by_count(const void *a, const void *b)
{
    const struct entry *x = *(struct entry *const *)a, *y = *(struct entry *const *)b;
    if (x->count != y->count)
        return x->count < y->count ? 1 : -1;
    return strcmp(x->word, y->word);
}

static void show(const char *when)
{
    struct gort_memstats m;
    gort_memstats(&m);
    printf("%-8s HeapAlloc %8.1f KiB  HeapInuse %8.1f KiB  HeapIdle %9.1f KiB  "
           "HeapReleased %9.1f KiB  Mallocs %8llu  Frees %8llu\n",
           when, m.heap_alloc / 1024.0, m.heap_inuse / 1024.0, m.heap_idle / 1024.0,
           m.heap_released / 1024.0, (unsigned long long)m.mallocs,
           (unsigned long long)m.frees);
}

int main(int argc, char **argv)
{
    size_t len = 0;
    char *text;
    if (argc > 1) {
        FILE *f = fopen(argv[1], "rb");
        if (!f) {
            perror(argv[1]);
            return 1;
        }
        size_t cap = 1 << 16;
        text = malloc(cap);
        size_t got;
        while ((got = fread(text + len, 1, cap - len, f)) > 0) {
            len += got;
            if (len == cap) {
                cap *= 2;
                text = realloc(text, cap);
                if (!text) {
                    perror("realloc");
                    return 1;
                }
            }
        }
        fclose(f);
    } else {
        text = generate(&len);
    }
    show("start");
    struct table t = {0};
    for (size_t i = 0; i < len;) {
        while (i < len && !isalnum((unsigned char)text[i]))
            i++;
        size_t j = i;
        while (j < len && isalnum((unsigned char)text[j]))
            j++;
        if (j > i)
            add(&t, text + i, j - i);
        i = j;
    }
    show("counted");

    struct entry **all = malloc(t.nwords * sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < t.nbuckets; i++)
        for (struct entry *e = t.buckets[i]; e; e = e->next)
            all[k++] = e;
    qsort(all, k, sizeof *all, by_count);
    printf("%zu distinct words in %zu bytes; the most frequent:\n", k, len);
    for (size_t i = 0; i < k && i < 8; i++)
        printf("  %-12s %ld\n", all[i]->word, all[i]->count);
    for (size_t i = 0; i < k; i++)
        free(all[i]);
    free(all);
    free(t.buckets);
    free(text);
    show("freed");
    malloc_trim(0);
    show("trimmed");
    return 0;
}
