#!/usr/bin/env python3
"""Breaks a `perf` profile of the word_count bench down by symbol, category and caller.

Record and convert (see BENCHMARKS.md):

    perf record -F 1500 --call-graph dwarf,32768 -o ack-off.data -- $BIN --mode ack-off ...
    perf script -i ack-off.data --comm topo-worker -F comm,tid,period,ip,sym,dso --no-inline \
        > ack-off.txt
    python3 runtime/benches/perf_breakdown.py ack-off.txt

Percentages are of all samples given (with `--comm topo-worker`: of the runtime's worker
threads). "Categories" assign each sample to one bucket by its leaf symbol; "inclusive" counts a
sample for every listed frame on its stack; "by caller" names the first runtime, bench, channel or
hash-map frame above the leaf.
"""

import collections
import re
import signal
import sys

ALLOC = re.compile(
    r"^(malloc|_int_malloc|free|cfree.*|_int_free.*|malloc_consolidate|unlink_chunk.*|realloc"
    r"|_int_realloc|__libc_.*alloc|tcache.*|__rust_alloc|__rust_dealloc|__rust_realloc|__rdl_.*"
    r"|__rustc::__rust_.*|sysmalloc.*|systrim|alloc_perturb)$"
)
MEM = re.compile(r"__mem(move|cpy|set)")
HASHING = re.compile(r"stable_hash|xxh3|foldhash|hash_bytes|Hasher|::hash$")
INCLUSIVE = [
    ("Split::execute (bench bolt)", r"word_count::Split as"),
    ("Count::execute (bench bolt)", r"word_count::Count as"),
    ("BasicCollector/SpoutCollector::emit_inner", r"Collector(<M>)?::emit_inner"),
    ("Router::route", r"Router::route"),
    ("spout task (task::run_spout)", r"run_spout"),
    ("SpoutTask::on_notices", r"on_notices"),
    ("acker task (acker::run)", r"topo_runtime::acker::run"),
    ("Emitter::ack", r"Emitter::ack"),
    ("Emitter::flush", r"Emitter::flush"),
    ("flume (any frame)", r"^<?flume::"),
    ("drop of Tuple/Value", r"drop_in_place<.*(Tuple|Value)"),
    ("Vec growth (RawVec::grow_one)", r"RawVec<T,A>::grow_one"),
]


def samples(path):
    cur = None
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if cur:
                    yield cur
                cur = None
            elif not line[0].isspace():
                parts = line.split()
                period = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else 1
                cur = {"period": period, "frames": []}
            elif cur is not None:
                m = re.match(r"\s*([0-9a-f]+)\s+(.*)\s+\((.*)\)\s*$", line)
                if m:
                    sym = re.sub(r"\+0x[0-9a-f]+$", "", m.group(2))
                    cur["frames"].append((sym, m.group(3)))
    if cur:
        yield cur


def owner(frames):
    for sym, _ in frames:
        interesting = any(
            k in sym for k in ("topo_runtime", "word_count", "flume", "hashbrown")
        )
        if interesting and not MEM.search(sym) and not ALLOC.match(sym):
            return sym
    return frames[-1][0] if frames else "?"


def category(frames):
    leaf, dso = frames[0]
    syms = [s for s, _ in frames]
    if "kernel" in dso:
        if any("page_fault" in s for s in syms):
            return "kernel: page faults"
        if any("futex" in s for s in syms):
            return "kernel: futex (thread park/unpark)"
        return "kernel: other"
    if ALLOC.match(leaf):
        return "malloc/free"
    if MEM.search(leaf):
        return "memmove/memcpy"
    if "memcmp" in leaf:
        return "memcmp"
    if HASHING.search(leaf):
        return "hashing (xxh3 grouping, foldhash map)"
    if "hashbrown" in leaf:
        return "hash map probing (hashbrown)"
    if "flume" in leaf:
        return "flume channel"
    if "tokio" in leaf:
        return "tokio scheduler"
    if "clock_gettime" in leaf or "Instant" in leaf:
        return "clock (Instant::now)"
    return "other code (runtime, bench bolts)"


def main():
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # quiet under `| head`
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 25
    total = 0
    self_time = collections.Counter()
    cats = collections.Counter()
    incl = collections.Counter()
    mem_by = collections.Counter()
    alloc_by = collections.Counter()
    cmp_by = collections.Counter()
    grow_by = collections.Counter()
    for s in samples(path):
        frames = s["frames"]
        if not frames:
            continue
        w = s["period"]
        total += w
        leaf = frames[0][0]
        self_time[leaf] += w
        c = category(frames)
        cats[c] += w
        if c == "memmove/memcpy":
            mem_by[owner(frames)] += w
        elif c == "malloc/free":
            alloc_by[owner(frames)] += w
        elif c == "memcmp":
            cmp_by[owner(frames)] += w
        syms = [f for f, _ in frames]
        for name, pat in INCLUSIVE:
            if any(re.search(pat, f) for f in syms):
                incl[name] += w
        for i, f in enumerate(syms):
            if "grow_one" in f and i + 1 < len(syms):
                grow_by[syms[i + 1]] += w
                break
    if total == 0:
        sys.exit("no samples")

    def show(title, counter, n):
        print(f"-- {title}")
        for k, v in counter.most_common(n):
            print(f"{100.0 * v / total:6.2f}%  {k}")

    print(f"== {path}: {total / 1e9:.3f} s of samples")
    show("top symbols (self)", self_time, top)
    show("categories (by leaf symbol)", cats, 20)
    show("inclusive (sample has the frame on its stack)", incl, 20)
    show("memmove/memcpy by caller", mem_by, 8)
    show("malloc/free by caller", alloc_by, 8)
    show("memcmp by caller", cmp_by, 4)
    show("Vec growth by caller", grow_by, 6)


if __name__ == "__main__":
    main()
