/*
 * binary_trees.c — the benchmarks-game binary-trees workload with plain
 * malloc/free: many short-lived 16-byte-payload nodes, freed tree by tree.
 *   binary_trees [depth=16]
 * Prints the game's checksum lines; run it under different allocators
 * with LD_PRELOAD and compare the time.
 */
#include <stdio.h>
#include <stdlib.h>

struct node {
    struct node *left, *right;
};

static struct node *make(int depth)
{
    struct node *n = malloc(sizeof *n);
    if (!n) {
        perror("malloc");
        exit(1);
    }
    if (depth > 0) {
        n->left = make(depth - 1);
        n->right = make(depth - 1);
    } else {
        n->left = n->right = NULL;
    }
    return n;
}

static long check(const struct node *n)
{
    return 1 + (n->left ? check(n->left) + check(n->right) : 0);
}

static void release(struct node *n)
{
    if (n->left) {
        release(n->left);
        release(n->right);
    }
    free(n);
}

int main(int argc, char **argv)
{
    int max = argc > 1 ? atoi(argv[1]) : 16;
    if (max < 6)
        max = 6;
    struct node *stretch = make(max + 1);
    printf("stretch tree of depth %d\t check: %ld\n", max + 1, check(stretch));
    release(stretch);
    struct node *longlived = make(max);
    for (int d = 4; d <= max; d += 2) {
        long iters = 1L << (max - d + 4), sum = 0;
        for (long i = 0; i < iters; i++) {
            struct node *t = make(d);
            sum += check(t);
            release(t);
        }
        printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
    }
    printf("long lived tree of depth %d\t check: %ld\n", max, check(longlived));
    release(longlived);
    return 0;
}
