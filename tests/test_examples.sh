#!/bin/bash
# The examples build and run: wordfreq counts words on gort, frees
# everything, and its statistics show the heap emptied again.
#   tests/test_examples.sh BUILD
set -eu
build=$1
make -s -C "$(dirname "$0")/.." "$build/examples/wordfreq" BUILD="$build" >/dev/null 2>&1 ||
    make -s -C "$(dirname "$0")/.." examples >/dev/null
out=$("$build/examples/wordfreq")
echo "$out" | grep -q "distinct words in" || { echo "wordfreq: no word count"; echo "$out"; exit 1; }
# After freeing, HeapAlloc is a few KiB at most, and Mallocs - Frees is small.
freed=$(echo "$out" | awk '$1 == "freed" {print $3}')
awk -v f="$freed" 'BEGIN { exit !(f + 0 < 64) }' || { echo "wordfreq: HeapAlloc $freed KiB after freeing"; exit 1; }
echo "wordfreq ok (HeapAlloc after freeing: $freed KiB)"
