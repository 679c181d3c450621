#!/usr/bin/env python3
"""check_exposition.py - reads a Prometheus text exposition (0.0.4) on
stdin and checks what a scraper relies on: every sample's family has one
HELP and one TYPE line before it, names and labels are well formed, values
are numbers, counters end in _total, histograms have increasing le buckets
ending in +Inf equal to _count. Exit 0, or 1 with the first problem."""
import re
import sys

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
SAMPLE = re.compile(r"^(" + NAME + r")(\{(.*)\})? (\S+)$")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def fail(line_no, why):
    print(f"line {line_no}: {why}")
    sys.exit(1)


def main():
    helps, types = {}, {}
    buckets = {}
    counts = {}
    for n, line in enumerate(sys.stdin.read().splitlines(), 1):
        if not line:
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if len(parts) < 4 or not re.fullmatch(NAME, parts[2]):
                fail(n, "bad HELP/TYPE line")
            seen = helps if parts[1] == "HELP" else types
            if parts[2] in seen:
                fail(n, f"a second {parts[1]} for {parts[2]}")
            seen[parts[2]] = parts[3]
            if parts[1] == "TYPE" and parts[3] not in ("counter", "gauge", "histogram"):
                fail(n, f"unknown type {parts[3]}")
            continue
        m = SAMPLE.match(line)
        if not m:
            fail(n, f"not a sample: {line}")
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        family = re.sub(r"_(bucket|sum|count)$", "", name) if name not in types else name
        if family not in types or family not in helps:
            fail(n, f"{name} has no HELP/TYPE before it")
        if types[family] == "counter" and not family.endswith("_total"):
            fail(n, f"counter {family} does not end in _total")
        pos, pairs = 0, {}
        while pos < len(labels):
            lm = LABEL.match(labels, pos)
            if not lm:
                fail(n, f"bad labels: {labels}")
            pairs[lm.group(1)] = lm.group(2)
            pos = lm.end()
        try:
            v = float(value)
        except ValueError:
            fail(n, f"bad value {value}")
        if types[family] == "histogram":
            key = (family, tuple(sorted((k, x) for k, x in pairs.items() if k != "le")))
            if name.endswith("_bucket"):
                le = float("inf") if pairs.get("le") == "+Inf" else float(pairs["le"])
                prev = buckets.setdefault(key, [])
                if prev and (le <= prev[-1][0] or v < prev[-1][1]):
                    fail(n, "histogram buckets not increasing")
                prev.append((le, v))
            elif name.endswith("_count"):
                counts[key] = v
    for key, bs in buckets.items():
        if not bs or bs[-1][0] != float("inf"):
            print(f"{key[0]}: no +Inf bucket")
            sys.exit(1)
        if counts.get(key) != bs[-1][1]:
            print(f"{key[0]}: _count is not the +Inf bucket")
            sys.exit(1)
    print(f"ok: {len(types)} families")


if __name__ == "__main__":
    main()
