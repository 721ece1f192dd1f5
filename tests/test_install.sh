#!/bin/bash
# make install PREFIX=… puts the library, header and gort.pc where a user's
# build finds them: a program built with `pkg-config --cflags --libs gort`
# (static and shared) runs on gort.
#   tests/test_install.sh BUILD
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
make -s -C "$root" install PREFIX="$tmp/prefix" >/dev/null
for f in lib/libgort.so lib/libgort.a include/gort.h lib/pkgconfig/gort.pc; do
    [ -f "$tmp/prefix/$f" ] || { echo "missing $f after make install"; exit 1; }
done
grep -q "^prefix=$tmp/prefix\$" "$tmp/prefix/lib/pkgconfig/gort.pc" ||
    { echo "gort.pc does not name the install prefix"; cat "$tmp/prefix/lib/pkgconfig/gort.pc"; exit 1; }
export PKG_CONFIG_PATH=$tmp/prefix/lib/pkgconfig
cat > "$tmp/uses_gort.c" <<'C'
#include <gort.h>
#include <stdio.h>
#include <stdlib.h>
int main(void)
{
    struct gort_memstats before, after;
    gort_memstats(&before);
    void *p = malloc(100);          /* plain malloc must be gort's */
    gort_memstats(&after);
    free(p);
    if (after.mallocs != before.mallocs + 1) {
        printf("malloc is not gort's\n");
        return 1;
    }
    printf("ok\n");
    return 0;
}
C
# Shared: -lgort with the installed library on the run path.
cc $(pkg-config --cflags gort) "$tmp/uses_gort.c" -o "$tmp/shared" $(pkg-config --libs gort)
out=$(LD_LIBRARY_PATH=$tmp/prefix/lib "$tmp/shared")
[ "$out" = ok ] || { echo "shared build: $out"; exit 1; }
# Static: the archive.
cc $(pkg-config --cflags gort) "$tmp/uses_gort.c" -o "$tmp/static" \
    "$tmp/prefix/lib/libgort.a" -lpthread
out=$("$tmp/static")
[ "$out" = ok ] || { echo "static build: $out"; exit 1; }
make -s -C "$root" uninstall PREFIX="$tmp/prefix" >/dev/null
[ ! -e "$tmp/prefix/lib/libgort.so" ] || { echo "uninstall left libgort.so"; exit 1; }
echo "install, pkg-config (shared and static), uninstall: ok"
