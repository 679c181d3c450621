#!/usr/bin/env python3
"""The runnable blocks of a Markdown guide, for tests/packages/install.sh.

A fenced block is runnable when its info string names where it runs after
the language, as docs/architecture.md describes:

    ```sh west             commands, run on west
    ```sh gateways         commands, run on west and on east
    ```ini east > FILE     the block is FILE's new content on east
    ```ini both >> FILE    the block is added to FILE (after a blank line)

also indented, inside a list item.

Usage: guide_blocks.py GUIDE OUTDIR
Writes OUTDIR/NNN.meta ("LINE TARGET OP PATH", OP run|write|append, PATH -
for run) and OUTDIR/NNN.body for each runnable block, in order.
"""
import os
import re
import sys

TARGETS = {"west", "east", "gateways", "kme"}
INFO = re.compile(r"^```(\w+)\s+(\w+)(?:\s*(>>|>)\s*(\S+))?\s*$")


def blocks(lines):
    """A fence may be indented (a block inside a list item): its body
    loses the same indentation."""
    in_block = False
    for number, line in enumerate(lines, 1):
        stripped = line.lstrip(" ")
        if not in_block:
            if stripped.startswith("```"):
                in_block, body, meta = True, [], None
                indent = len(line) - len(stripped)
                m = INFO.match(stripped)
                if m and m.group(2) in TARGETS:
                    op = {">": "write", ">>": "append", None: "run"}[m.group(3)]
                    meta = (number, m.group(2), op, m.group(4) or "-")
                elif stripped.strip() != "```" and len(stripped.split()) > 1:
                    sys.exit(f"line {number}: unknown target in {line!r}")
            continue
        if stripped.startswith("```"):
            in_block = False
            if meta:
                yield meta, body
        else:
            body.append(line[indent:] if line[:indent].strip() == "" else line)


def main():
    guide, out = sys.argv[1:]
    os.makedirs(out, exist_ok=True)
    with open(guide) as f:
        lines = f.read().split("\n")
    for i, (meta, body) in enumerate(blocks(lines), 1):
        with open(os.path.join(out, f"{i:03d}.meta"), "w") as f:
            f.write(" ".join(str(x) for x in meta) + "\n")
        with open(os.path.join(out, f"{i:03d}.body"), "w") as f:
            f.write("\n".join(body) + "\n")


if __name__ == "__main__":
    main()
