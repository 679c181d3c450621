#!/usr/bin/env python3
"""scan_secrets.py - looks for keys in files: the secret-hygiene scanner.

  scan_secrets.py SECRETS_DIR [--shapes] PATH...
  scan_secrets.py SECRETS_DIR --pid PID

SECRETS_DIR holds one file per known key, its bytes in hex. Every PATH (a
file, or a directory scanned recursively), or the writable memory of the
live process PID (/proc/PID/mem: heap, stacks, anonymous and data
mappings), is searched for any piece of a key:
  raw     any 8-byte stretch of the key's bytes
  hex     any 8-byte stretch (16 digits), lower or upper case, also with
          blanks, colons, dots and dashes between the digits taken out
  base64  any 12 characters of the key's base64 (9 bytes), standard and URL
          alphabet, at each of the three alignments a piece of the key can
          have when it is encoded on its own
so any 16-byte window of a key, in any of the three forms, is found (and
smaller ones). --shapes also flags, in text files, what looks like an
unknown key: a base64 run of 40 characters or more, or a hex run of 32
digits or more (a 256-bit key is 44 and 64 of them); core dumps and memory
are not text.

Prints "clean WHAT" or "LEAK WHAT: what" per file (or mapping); exit 1 if
anything leaked.
"""
import base64
import os
import re
import sys

RAW = 8    # bytes
HEX = 16   # digits
B64 = 12   # characters


def load_secrets(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name)) as f:
            text = f.read().strip()
        if text:
            out[name] = bytes.fromhex(text)
    return out


def windows(text, n):
    return {text[i:i + n] for i in range(0, max(1, len(text) - n + 1))}


class Needles:
    """Every window of one key, in each form."""

    def __init__(self, key):
        self.raw = sorted(windows(key, RAW)) if len(key) >= RAW else [key]
        self.hex = windows(key.hex().encode(), HEX)
        self.b64 = set()
        for skip in range(3):
            for enc in (base64.b64encode, base64.urlsafe_b64encode):
                self.b64 |= windows(enc(key[skip:]).rstrip(b"="), B64)


SQUEEZE = re.compile(rb"[\s:.\-]")
HEX_RUN = re.compile(rb"[0-9a-fA-F]{%d,}" % HEX)
B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{%d,}" % B64)
B64_SHAPE = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}")
HEX_SHAPE = re.compile(rb"[0-9a-fA-F]{32,}")


def in_runs(rx, data, n, found, lower=False):
    """Offset of the first run of rx in data holding a window in found."""
    for m in rx.finditer(data):
        run = m.group(0).lower() if lower else m.group(0)
        for i in range(len(run) - n + 1):
            if run[i:i + n] in found:
                return m.start() + i
    return -1


def is_text(data):
    return b"\0" not in data[:65536]


def search(data, secrets, squeeze):
    found = []
    squeezed = SQUEEZE.sub(b"", data) if squeeze and is_text(data) else b""
    for name, nd in secrets.items():
        for w in nd.raw:
            at = data.find(w)
            if at >= 0:
                found.append(f"key {name} as raw bytes at offset {at}")
                break
        else:
            at = in_runs(HEX_RUN, data, HEX, nd.hex, lower=True)
            if at >= 0:
                found.append(f"key {name} as hex at offset {at}")
            elif squeezed and in_runs(HEX_RUN, squeezed, HEX, nd.hex, lower=True) >= 0:
                found.append(f"key {name} as hex with separators")
            else:
                at = in_runs(B64_RUN, data, B64, nd.b64)
                if at >= 0:
                    found.append(f"key {name} as base64 at offset {at}")
    return found


def scan_file(path, secrets, shapes):
    with open(path, "rb") as f:
        data = f.read()
    found = search(data, secrets, True)
    if shapes and is_text(data):
        for rx, what in ((B64_SHAPE, "base64"), (HEX_SHAPE, "hex")):
            m = rx.search(data)
            if m:
                found.append(f"a key-shaped {what} run: {m.group(0)[:24].decode()}...")
    return found


def scan_pid(pid, secrets):
    """(mapping, findings) for every writable private mapping of pid."""
    out = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            f = line.split()
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            path = f[5] if len(f) > 5 else "[anon]"
            if f[1][0:2] != "rw" or path.startswith("[v"):  # [vvar], [vsyscall]
                continue
            if hi - lo > 1 << 30:  # a sanitizer's shadow, not data
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except OSError:
                continue
            found = search(data, secrets, False)
            if found:
                out.append((f"{path} {f[0]}", found))
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    secrets = {k: Needles(v) for k, v in load_secrets(argv[1]).items()}
    if argv[2] == "--pid" and len(argv) == 4:
        leaks = scan_pid(int(argv[3]), secrets)
        for where, found in leaks:
            print(f"LEAK pid {argv[3]} {where}: " + "; ".join(found))
        if not leaks:
            print(f"clean pid {argv[3]}")
        return 1 if leaks else 0
    shapes = "--shapes" in argv
    paths = [p for p in argv[2:] if p != "--shapes"]
    files = []
    for p in paths:
        if os.path.isdir(p):
            for root, _, names in os.walk(p):
                files += [os.path.join(root, n) for n in sorted(names)]
        elif os.path.exists(p):
            files.append(p)
        else:
            print(f"LEAK {p}: missing (nothing scanned)")
            return 1
    leaked = False
    for f in files:
        found = scan_file(f, secrets, shapes)
        if found:
            leaked = True
            print(f"LEAK {f}: " + "; ".join(found))
        else:
            print(f"clean {f}")
    print(f"# {len(files)} files, {len(secrets)} keys", file=sys.stderr)
    return 1 if leaked else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
