#!/usr/bin/env python3
"""pywork.py — a CPython workload heavy in dicts, strings and lists, for
benchmarking malloc.  Run it with PYTHONMALLOC=malloc so that every object
CPython creates comes from malloc rather than from pymalloc's arenas.

    PYTHONMALLOC=malloc python3 bench/pywork.py [scale=1.0]

Prints "checksum: N", computed from the data only (no hash() or id()), so it
is the same under every allocator and every PYTHONHASHSEED.
"""
import sys
import zlib


def words(n, seed):
    """n pseudo-random lowercase words of 3-14 letters (an LCG, not random)."""
    x = seed
    out = []
    for _ in range(n):
        x = (x * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        length = 3 + (x >> 33) % 12
        w = []
        y = x
        for _ in range(length):
            w.append(chr(97 + y % 26))
            y //= 26
            if y == 0:
                y = x >> 7
        out.append("".join(w))
    return out


def round_(n, seed):
    ws = words(n, seed)
    # word counts in a dict, records as dicts in a list, an index of lists
    counts = {}
    for w in ws:
        counts[w] = counts.get(w, 0) + 1
    records = [{"id": i, "name": w, "tag": w[:3], "len": len(w), "vals": [i, len(w), i % 7]}
               for i, w in enumerate(ws)]
    index = {}
    for r in records:
        index.setdefault(r["tag"], []).append(r)
    # string building and splitting
    lines = [",".join((r["name"], str(r["id"]), r["tag"].upper())) for r in records]
    text = "\n".join(lines)
    parsed = [ln.split(",") for ln in text.split("\n")]
    # sorting, slicing, set and tuple churn
    parsed.sort(key=lambda p: (p[2], p[0]))
    groups = {tag: sorted(set(r["name"] for r in rs)) for tag, rs in index.items()}
    pairs = sorted(((len(v), k) for k, v in groups.items()), reverse=True)[:50]
    # drop half the records and rebuild (frees and reallocations)
    records = [r for r in records if r["id"] % 2 == 0]
    for r in records:
        r["vals"].extend(range(r["len"] % 5))
        r["name"] = r["name"] * 2
    h = zlib.crc32(text.encode())
    h = zlib.crc32(repr(pairs).encode(), h)
    h = zlib.crc32(repr(parsed[: 100]).encode(), h)
    h = zlib.crc32(str(sum(len(r["name"]) + len(r["vals"]) for r in records)).encode(), h)
    h = zlib.crc32(str(len(counts)).encode(), h)
    return h


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(round(8 * scale)))
    per_round = 60000
    h = 0
    keep = []          # a few rounds' results stay alive: the heap grows and shrinks
    for i in range(rounds):
        h = zlib.crc32(str(round_(per_round, 12345 + i)).encode(), h)
        keep.append(words(20000, i))
        if len(keep) > 3:
            keep.pop(0)
    print("checksum:", h)


if __name__ == "__main__":
    main()
