#!/usr/bin/env python3
"""command_lines.py - the kmstore command lines the documents show.

  command_lines.py FILE...

Markdown: code spans and code-block lines; man pages: .B lines and the
lines of EXAMPLES; each a `kmstore` (after an optional prompt such as
`west# `) followed by a command word (profiles, status, key, check, help)
among its words. Synopses ([--json]) and option references (`kmstore
--config`) are not command lines. Prints each as a JSON array of words
(shell quoting resolved, comments and pipes cut off), once.
"""
import json
import re
import shlex
import sys

COMMANDS = {"profiles", "status", "key", "check", "help"}
PROMPT = re.compile(r"^(?:\w+# |# |\$ )")


def roff_text(line):
    line = re.sub(r"\\f[BIRP]", "", line)
    for a, b in (("\\-", "-"), ("\\(aq", "'"), ("\\e", "\\"), ("\\&", "")):
        line = line.replace(a, b)
    return line


def candidates(path):
    text = open(path, encoding="utf-8").read()
    if path.endswith(".md"):
        for span in re.findall(r"`([^`\n]+)`", text):
            yield span
        block = False
        for line in text.splitlines():
            if line.startswith("```"):
                block = not block
            elif block:
                yield line
    else:
        section = ""
        for line in text.splitlines():
            if line.startswith(".SH"):
                section = line[3:].strip().strip('"')
            elif line.startswith((".B ", ".BI ")):
                yield roff_text(line.split(" ", 1)[1]).replace('"', "")
            elif section == "EXAMPLES" and not line.startswith("."):
                yield roff_text(line)


def command_line(text):
    text = PROMPT.sub("", text.strip())
    if not text.startswith("kmstore ") or "[" in text:
        return None
    text = text.split(" | ")[0]
    try:
        words = shlex.split(text, comments=True)
    except ValueError:
        return None
    if any("(" in w or ")" in w for w in words):
        return None  # a line of output ("kmstore key (HMAC, 256 bits)")
    return words if COMMANDS & set(words[1:]) else None


def main(paths):
    seen = []
    for p in paths:
        for c in candidates(p):
            words = command_line(c)
            if words and words not in seen:
                seen.append(words)
                print(json.dumps(words))


if __name__ == "__main__":
    main(sys.argv[1:])
