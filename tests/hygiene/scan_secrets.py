#!/usr/bin/env python3
"""scan_secrets.py - looks for keys in files: the secret-hygiene scanner.

  scan_secrets.py SECRETS_DIR [--shapes] PATH...

SECRETS_DIR holds one file per known key, its bytes in hex. Every PATH (a
file, or a directory scanned recursively) is searched for each key as:
  hex     lower and upper case, any 8-byte stretch (16 digits), also with
          blanks, colons, dots and dashes between the digits taken out
  base64  the whole key, standard and URL alphabet, and its first 16
          characters (a truncated print)
  raw     any 8-byte stretch of the bytes themselves
--shapes also flags, in text files, what looks like an unknown key: a
base64 run of 40 characters or more, or a hex run of 32 digits or more
(a 256-bit key is 44 and 64 of them); core dumps are not text.

Prints "clean PATH" or "LEAK PATH: what" per file; exit 1 if anything leaked.
"""
import base64
import os
import re
import sys

WINDOW = 8


def load_secrets(d):
    out = {}
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name)) as f:
            text = f.read().strip()
        if text:
            out[name] = bytes.fromhex(text)
    return out


def needles(key):
    """(form, bytes) pairs to look for."""
    n = []
    windows = [key[i:i + WINDOW] for i in range(0, max(1, len(key) - WINDOW + 1))]
    for w in windows:
        n.append(("hex", w.hex().encode()))
        n.append(("HEX", w.hex().upper().encode()))
        n.append(("raw", w))
    for enc, form in ((base64.b64encode, "base64"), (base64.urlsafe_b64encode, "base64url")):
        full = enc(key)
        n.append((form, full))
        n.append((form + " prefix", full[:16]))
        n.append((form + " unpadded", full.rstrip(b"=")))
    return n


SQUEEZE = re.compile(rb"[\s:.\-]")
B64_RUN = re.compile(rb"[A-Za-z0-9+/_-]{40,}={0,2}")
HEX_RUN = re.compile(rb"[0-9a-fA-F]{32,}")


def is_text(data):
    return b"\0" not in data[:65536]


def scan_file(path, secrets, shapes):
    with open(path, "rb") as f:
        data = f.read()
    found = []
    squeezed = SQUEEZE.sub(b"", data) if is_text(data) else b""
    for name, (key, ns) in secrets.items():
        for form, needle in ns:
            at = data.find(needle)
            if at >= 0:
                found.append(f"key {name} as {form} at offset {at}")
                break
            if form in ("hex", "HEX") and squeezed and needle in squeezed:
                found.append(f"key {name} as {form} with separators")
                break
    if shapes and is_text(data):
        for rx, what in ((B64_RUN, "base64"), (HEX_RUN, "hex")):
            m = rx.search(data)
            if m:
                found.append(f"a key-shaped {what} run: {m.group(0)[:24].decode()}...")
    return found


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    secrets = {k: (v, needles(v)) for k, v in load_secrets(argv[1]).items()}
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
