#!/bin/bash
# test_gc_shlib.sh — roots in shared libraries: a collected object whose
# only reference sits in a global of a shared library (one linked at start,
# one loaded later with dlopen) survives collections with its contents
# intact, and is collected once that global is cleared.  Runs against
# libgort.so and, with a static gort, against libgort.a.
#
#   bash tests/test_gc_shlib.sh BUILD
set -u -o pipefail

build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
lib=$(cd "$build" 2>/dev/null && pwd)/libgort.so
archive=$(cd "$build" 2>/dev/null && pwd)/libgort.a
if [ ! -f "$lib" ] || [ ! -f "$archive" ]; then
    echo "FAIL: $build/libgort.so or libgort.a not found (make lib)"
    exit 1
fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

# A library with a pointer-sized global in .data and one in .bss (static,
# so the dlopen'd copy keeps its own rather than binding to the first's).
cat > "$dir/roots.c" <<'EOF'
static void *lib_data_slot = (void *)1;
static void *lib_bss_slot;
void lib_set(int which, void *p) { if (which) lib_bss_slot = p; else lib_data_slot = p; }
void *lib_get(int which) { return which ? lib_bss_slot : lib_data_slot; }
EOF

cat > "$dir/main.c" <<'EOF'
#include <dlfcn.h>
#include <gort.h>
#include <stdio.h>
#include <string.h>

void lib_set(int which, void *p);
void *lib_get(int which);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "line %d: CHECK failed: %s\n", __LINE__, #c); return 1; } } while (0)

static __attribute__((noinline)) void scrub(void)
{
    volatile char b[32768];
    memset((char *)b, 0, sizeof b);
}

/* An object filled with a pattern, stored only through set(which, p). */
static __attribute__((noinline)) gort_weak *store(void (*set)(int, void *), int which)
{
    long *p = gort_new(64 * sizeof(long));
    for (int i = 0; i < 64; i++)
        p[i] = i * 7 + which;
    set(which, p);
    return gort_weak_make(p);
}

static void churn(void)
{
    for (int i = 0; i < 200000; i++) {
        void *volatile p = gort_new(48);
        (void)p;
    }
}

static int check_pattern(const long *p, int which)
{
    for (int i = 0; i < 64; i++)
        if (p[i] != i * 7 + which)
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    (void)argc;
    /* The dlopen'd copy of the library, under another name. */
    char path[4096];
    snprintf(path, sizeof path, "%s", argv[0]);
    char *slash = strrchr(path, '/');
    strcpy(slash + 1, "libroots2.so");
    void *h = dlopen(path, RTLD_NOW);
    CHECK(h != NULL);
    void (*set2)(int, void *) = (void (*)(int, void *))dlsym(h, "lib_set");
    void *(*get2)(int) = (void *(*)(int))dlsym(h, "lib_get");
    CHECK(set2 && get2);

    gort_weak *w[4];
    w[0] = store(lib_set, 0);
    w[1] = store(lib_set, 1);
    w[2] = store(set2, 0);
    w[3] = store(set2, 1);
    for (int round = 0; round < 3; round++) {
        churn();
        scrub();
        gort_gc();
    }
    CHECK(check_pattern(lib_get(0), 0) && check_pattern(lib_get(1), 1));
    CHECK(check_pattern(get2(0), 0) && check_pattern(get2(1), 1));
    for (int i = 0; i < 4; i++)
        CHECK(gort_weak_get(w[i]) != NULL);
    lib_set(0, NULL);
    lib_set(1, NULL);
    set2(0, NULL);
    set2(1, NULL);
    scrub();
    gort_gc();
    for (int i = 0; i < 4; i++)
        CHECK(gort_weak_get(w[i]) == NULL);
    printf("shared-library roots: kept while referenced, collected after\n");
    return 0;
}
EOF

fail=0
cc -O2 -fPIC -shared -o "$dir/libroots.so" "$dir/roots.c" || fail=1
cp "$dir/libroots.so" "$dir/libroots2.so"
cc -O2 -I"$top/include" -o "$dir/prog_so" "$dir/main.c" -L"$dir" -lroots "$lib" -ldl -Wl,-rpath,"$dir" || fail=1
cc -O2 -I"$top/include" -o "$dir/prog_a" "$dir/main.c" -L"$dir" -lroots "$archive" -ldl -lpthread -Wl,-rpath,"$dir" || fail=1
[ $fail = 0 ] || { echo "FAIL: could not build the test programs"; exit 1; }
for prog in prog_so prog_a; do
    for env in "GOMAXPROCS=2" "GODEBUG=gccheckmark=1"; do
        if env $env LD_LIBRARY_PATH="$(dirname "$lib")" timeout 60 "$dir/$prog"; then
            echo "ok   $prog $env"
        else
            echo "FAIL: $prog $env"
            fail=1
        fi
    done
done
exit $fail
