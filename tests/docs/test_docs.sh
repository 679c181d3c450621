#!/usr/bin/env bash
# test_docs.sh - the documentation agrees with the programs:
#   - every command, option and exit status in kmstore(1) is in
#     `kmstore --help`, and the reverse; options likewise for kme-sim(1),
#     kme-sim-pki and kmstore-nss-register (kmstore-pkcs11(8));
#   - every man page renders with groff -man -ww without a warning, and
#     with man -l;
#   - every ```ini block of docs/guide.md and docs/kmstore.md and every
#     example of kmstore.conf(5) passes `kmstore check`, once the files it
#     names exist (paths are moved under a temporary directory; key files
#     get random bytes, certificates come from kme-sim-pki);
#   - man page references and local Markdown links lead somewhere;
#   - kmstore(1)'s check value by hand prints kmstore's;
#   - every kmstore command line the documents show parses and runs.
# Usage: test_docs.sh KMSTORE KME_SIM SOURCE_DIR   (KMSTORED: kmstored)
set -euo pipefail

KMSTORE=${1:?usage: test_docs.sh KMSTORE KME_SIM SOURCE_DIR}
KME_SIM=${2:?usage: test_docs.sh KMSTORE KME_SIM SOURCE_DIR}
SRC=${3:?usage: test_docs.sh KMSTORE KME_SIM SOURCE_DIR}
MAN=$SRC/docs/man
T=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-docs-XXXXXX")
trap 'rm -rf "$T"' EXIT
unset KMSTORE_CONF
umask 077

. "$SRC/tests/lib/tap.sh"

# roff_items PAGE SECTION: the tag line of every .TP item of a section,
# without roff markup (fonts, macro names, quotes, \- escapes).
roff_items() {
	awk -v want="$2" '
		/^\.SH / { sec = $0; sub(/^\.SH +/, "", sec); gsub(/"/, "", sec); gsub(/\\-/, "-", sec); next }
		sec != want { next }
		tag { print; tag = 0; next }
		/^\.TP/ { tag = 1 }
	' "$1" | sed -E 's/^\.[A-Z]+ +//; s/\\f[BIRP]//g; s/\\-/-/g; s/\\&//g; s/"//g'
}

# roff_section PAGE SECTION: the lines of a section, markup removed.
roff_section() {
	awk -v want="$2" '
		/^\.SH / { sec = $0; sub(/^\.SH +/, "", sec); gsub(/"/, "", sec); gsub(/\\-/, "-", sec); next }
		sec == want { print }
	' "$1" | sed -E 's/^\.[A-Z]+ +//; s/\\f[BIRP]//g; s/\\-/-/g; s/\\&//g; s/"//g'
}

# options: the -x and --xx words of stdin, one per line, sorted.
options() {
	grep -oE -- '(^|[ ,[|])--?[A-Za-z][A-Za-z0-9-]*' | sed -E 's/^[ ,[|]//' | sort -u
}

# help_section TEXT TITLE: the lines of a --help section ("Commands:")
# up to the next blank line.
help_section() {
	awk -v t="$2" '$0 == t { on = 1; next } on && /^$/ { exit } on' <<<"$1"
}

# same WHAT A B: the two lists are equal; otherwise say what differs.
same() {
	if [ "$2" = "$3" ]; then
		tap_ok "$1"
	else
		tap_not_ok "$1" \
			"only in the man page: $(comm -23 <(sort <<<"$2") <(sort <<<"$3") | tr '\n' ' ')" \
			"only in --help:       $(comm -13 <(sort <<<"$2") <(sort <<<"$3") | tr '\n' ' ')"
	fi
}

# --- kmstore(1) against kmstore --help ---
help=$("$KMSTORE" --help)
same "kmstore(1) COMMANDS = kmstore --help commands" \
	"$(roff_items "$MAN/kmstore.1" COMMANDS | awk '{ print $1 }' | sort -u)" \
	"$(help_section "$help" "Commands:" | grep -E '^  [a-z]' | awk '{ print $1 }' | sort -u)"
same "kmstore(1) OPTIONS = kmstore --help options" \
	"$(roff_items "$MAN/kmstore.1" OPTIONS | options)" \
	"$(help_section "$help" "Options:" | grep -E '^  -' | sed -E 's/^  //; s/   .*//' | options)"
same "kmstore(1) EXIT STATUS = kmstore --help exit statuses" \
	"$(roff_items "$MAN/kmstore.1" "EXIT STATUS" | awk '{ print $1 }' | sort -n)" \
	"$(help_section "$help" "Exit status:" | grep -E '^  [0-9]' | awk '{ print $1 }' | sort -n)"
synopsis=$(roff_section "$MAN/kmstore.1" SYNOPSIS | tr '\n' ' ')
missing=
for c in $(help_section "$help" "Commands:" | grep -E '^  [a-z]' | awk '{ print $1 }'); do
	[[ " $synopsis " == *" $c "* ]] || missing="$missing $c"
done
expect_eq "" "$missing" "every kmstore command appears in the SYNOPSIS of kmstore(1)"

# --- kmstored(8) against kmstored --help ---
if [ -n "${KMSTORED:-}" ]; then
	help=$("$KMSTORED" --help)
	same "kmstored(8) OPTIONS = kmstored --help options" \
		"$(roff_items "$MAN/kmstored.8" OPTIONS | options)" \
		"$(help_section "$help" "Options:" | grep -E '^  -' | sed -E 's/^  //; s/   .*//' | options)"
fi

# --- kme-sim(1) against kme-sim --help, and kme-sim-pki --help ---
help=$("$KME_SIM" --help)
same "kme-sim(1) OPTIONS = kme-sim --help options" \
	"$(roff_items "$MAN/kme-sim.1" OPTIONS | options)" \
	"$(grep -E '^  -' <<<"$help" | sed -E 's/^  //; s/   .*//' | options)"
pki_help=$(bash "$SRC/tests/kme-sim/kme-sim-pki" --help)
same "kme-sim(1) SYNOPSIS of kme-sim-pki = kme-sim-pki --help options" \
	"$(roff_section "$MAN/kme-sim.1" SYNOPSIS | sed -n '/^kme-sim-pki/,$p' | options)" \
	"$(sed -n '1,/^$/p' <<<"$pki_help" | options)"

# --- kmstore-nss-register in kmstore-pkcs11(8) ---
reg_help=$(bash "$SRC/scripts/nss-register.sh" --help)
same "kmstore-pkcs11(8) REGISTRATION = kmstore-nss-register --help options" \
	"$(roff_items "$MAN/kmstore-pkcs11.8" REGISTRATION | options | grep -vx -- '-h')" \
	"$( { options <<<"$reg_help"; echo --help; } | sort -u)"

# --- every page renders ---
pages=$(ls "$MAN"/*.[1-8])
for page in $pages; do
	name=$(basename "$page")
	if head -1 "$page" | grep -q '^\.so '; then
		target=$MAN/$(head -1 "$page" | sed -E 's/^\.so +man[0-9]\///')
		if [ -f "$target" ]; then tap_ok "$name links to an existing page"
		else tap_not_ok "$name links to an existing page" "no $target"; fi
		continue
	fi
	if ! command -v groff >/dev/null; then
		tap_ok "$name: skipped rendering, groff is not installed (Debian: groff-base)"
		continue
	fi
	warnings=$(groff -man -Tutf8 -ww -z "$page" 2>&1 || echo "groff failed")
	expect_eq "" "$warnings" "$name renders with groff -man -ww without warnings"
	if command -v man >/dev/null; then
		out=$(MANWIDTH=80 man -l "$page" 2>&1 >/dev/null) && rc=0 || rc=$?
		expect_eq "0:" "$rc:$out" "$name renders with man -l"
	fi
done

# --- references between pages, and local links in the Markdown ---
bad=
for ref in $(cat $pages | grep -E '^\.BR (kmstore|kme)' | sed -E 's/^\.BR +//; s/\\-/-/g' |
	awk '{ print $1 $2 }' | grep -oE '^[a-z.-]+\([0-9]\)' | sort -u); do
	f=$MAN/${ref%%(*}.${ref//[^0-9]/}
	[ -f "$f" ] || bad="$bad $ref"
done
expect_eq "" "$bad" "every kmstore or kme-sim page a man page refers to exists"
bad=
for md in "$SRC"/README.md "$SRC"/docs/*.md; do
	for link in $(grep -oE '\]\([^)#:]+(#[^)]*)?\)' "$md" | sed -E 's/^\]\(//; s/[#)].*//'); do
		[ -e "$(dirname "$md")/$link" ] || bad="$bad $(basename "$md"):$link"
	done
done
expect_eq "" "$bad" "every local link in README.md and docs/*.md leads to a file"

# --- configuration examples pass kmstore check ---
pki=$T/pki
if ! bash "$SRC/tests/kme-sim/kme-sim-pki" "$pki" >"$T/pki.log" 2>&1; then
	tap_not_ok "test PKI made with kme-sim-pki" "$(cat "$T/pki.log")"
	tap_done
	exit
fi

# check_example NAME FILE: moves the paths the example names under a
# directory of its own, makes those files and the users and groups it
# names, runs kmstore check.
n_examples=0
check_example() {
	local dir=$T/ex$((++n_examples)) out rc
	mkdir -p "$dir/conf"
	python3 - "$2" "$dir" "$pki" 2>"$dir/prepare.log" <<'EOF' || { tap_not_ok "$1: example could be prepared" "$(cat "$dir/prepare.log" 2>/dev/null)"; return; }
import grp, os, pwd, re, shutil, sys
src, root, pki = sys.argv[1:]
conf_dir = os.path.join(root, "conf")
sources = {"certificate": "sae-a.crt", "private-key": "sae-a.key", "ca": "ca.crt"}
out = []
# The users and groups of allow-users and allow-groups that this host
# lacks, made as the files are: entries added to copies of /etc/passwd
# and /etc/group, which the check then sees (check looks them up).
added = {"passwd": [], "group": []}
for line in open(src).read().split("\n"):
    m = re.match(r"^\s*allow-(users|groups)\s*=\s*([^#;]*)", line)
    for w in re.split(r"[\s,]+", m.group(2)) if m else []:
        users = m.group(1) == "users"
        if not w or w.isdigit():
            continue
        try:
            (pwd.getpwnam if users else grp.getgrnam)(w)
        except KeyError:
            n = 42420 + len(added["passwd"]) + len(added["group"])
            added["passwd" if users else "group"].append(
                "%s:x:%d:%d::/nonexistent:/usr/sbin/nologin" % (w, n, n) if users
                else "%s:x:%d:" % (w, n))
for db, lines in added.items():
    if lines:
        shutil.copyfile("/etc/" + db, os.path.join(root, db))
        with open(os.path.join(root, db), "a") as f:
            f.write("\n".join(lines) + "\n")
for line in open(src).read().split("\n"):
    m = re.match(r"^(\s*)([a-z0-9-]+)(\s*=\s*)(\S+)(.*)$", line)
    if m:
        name, value = m.group(2), m.group(4)
        kind = None
        if name == "key" and value.startswith("file:"):
            kind, path, prefix = "key", value[5:], "file:"
        elif name in sources:
            kind, path, prefix = name, value, ""
        if kind:
            # absolute paths move under root; relative ones stay relative
            # to the configuration file, which lives in root/conf.
            new = root + path if path.startswith("/") else path
            real = new if new.startswith("/") else os.path.join(conf_dir, new)
            os.makedirs(os.path.dirname(real), exist_ok=True)
            if not os.path.exists(real):
                if kind == "key":
                    with open(real, "wb") as f:
                        f.write(os.urandom(32))
                else:
                    shutil.copyfile(os.path.join(pki, sources[kind]), real)
                os.chmod(real, 0o600 if kind in ("key", "private-key") else 0o644)
            line = m.group(1) + name + m.group(3) + prefix + new + m.group(5)
    out.append(line)
dst = os.path.join(conf_dir, "kmstore.conf")
with open(dst, "w") as f:
    f.write("\n".join(out))
os.chmod(dst, 0o600)
EOF
	local nss=()
	if [ -e "$dir/passwd" ] || [ -e "$dir/group" ]; then
		# in a mount namespace of its own, with the copies over /etc's
		[ -e "$dir/passwd" ] || cp /etc/passwd "$dir/passwd"
		[ -e "$dir/group" ] || cp /etc/group "$dir/group"
		printf 'passwd: files\ngroup: files\n' >"$dir/nsswitch.conf"
		nss=(unshare -m sh -c 'for f in passwd group nsswitch.conf; do mount --bind "$0/$f" "/etc/$f" || exit 125; done; exec "$@"' "$dir")
	fi
	set +e
	out=$("${nss[@]}" "$KMSTORE" --config "$dir/conf/kmstore.conf" check 2>&1)
	rc=$?
	set -e
	if [ "$rc" -eq 125 ] && [ ${#nss[@]} -gt 0 ]; then
		tap_ok "# SKIP $1: it names users or groups this host lacks, and no mount namespace (root) to add them"
	elif [ "$rc" -eq 0 ]; then
		tap_ok "$1 passes kmstore check"
	else
		tap_not_ok "$1 passes kmstore check" "exit $rc: $out" "example:"
		sed 's/^/#     /' "$2"
	fi
}

# Markdown: ```ini blocks are kmstore.conf examples (use another info
# string for other INI-like files, e.g. ```text for openssl.cnf), also
# when a runnable block's target follows (```ini west > FILE).
for md in "$SRC/docs/guide.md" "$SRC/docs/kmstore.md"; do
	[ -f "$md" ] || { tap_not_ok "$(basename "$md") exists"; continue; }
	count=$(grep -cE '^```ini( |$)' "$md" || true)
	if [ "$count" -eq 0 ]; then
		tap_not_ok "$(basename "$md") has ini examples"
		continue
	fi
	for i in $(seq "$count"); do
		awk -v want="$i" '
			/^```ini( |$)/ { n++; if (n == want) { on = 1; next } }
			on && /^```/ { exit }
			on { print }
		' "$md" >"$T/example"
		line=$(grep -nE '^```ini( |$)' "$md" | sed -n "${i}p" | cut -d: -f1)
		check_example "$(basename "$md"):$line" "$T/example"
	done
done

# The guide's runnable blocks (tests/packages/install.sh runs them) name
# machines the test knows.
if out=$(python3 "$SRC/tests/packages/guide_blocks.py" "$SRC/docs/guide.md" "$T/guide-blocks" 2>&1) &&
	ls "$T/guide-blocks"/*.meta >/dev/null 2>&1; then
	tap_ok "guide.md: $(ls "$T/guide-blocks"/*.meta | wc -l) runnable blocks, each for a known machine"
else
	tap_not_ok "guide.md: runnable blocks for known machines" "$out"
fi

# kmstore.conf(5): every .nf/.fi block of EXAMPLES.
count=0
while :; do
	awk -v want="$((count + 1))" '
		/^\.SH / { sec = ($0 ~ /^\.SH +EXAMPLES/) ; next }
		sec && /^\.nf/ { n++; if (n == want) { on = 1; next } }
		on && /^\.fi/ { exit }
		on { print }
	' "$MAN/kmstore.conf.5" | sed -E 's/\\-/-/g; s/\\e/\\/g; s/\\\(aq/'"'"'/g; s/\\&//g' >"$T/example"
	[ -s "$T/example" ] || break
	count=$((count + 1))
	check_example "kmstore.conf.5 EXAMPLES #$count" "$T/example"
done
if [ "$count" -gt 0 ]; then tap_ok "kmstore.conf.5 has $count examples"
else tap_not_ok "kmstore.conf.5 has examples"; fi

# --- the check value by hand (kmstore(1), "Key check value") ---
# The block runs as printed (roff escapes undone, KEYFILE a key file) and
# must print what kmstore prints, for the smallest and largest keys.
awk '/^\.SS +"?Key check value/ { on = 1; next }
	on && /^\.S[HS] / { exit }
	on && /^\.nf/ { blk = 1; next }
	blk && /^\.fi/ { exit }
	blk { print }' "$MAN/kmstore.1" | sed -E 's/\\-/-/g; s/\\e/\\/g' >"$T/kcv.sh"
if ! grep -q KEYFILE "$T/kcv.sh"; then
	tap_not_ok "kmstore(1) shows the check value by hand" "no block naming KEYFILE under Key check value"
elif ! command -v xxd >/dev/null || ! command -v openssl >/dev/null; then
	tap_ok "# SKIP the check value by hand: xxd or openssl is not installed"
else
	for size in 16 256; do
		head -c "$size" /dev/urandom >"$T/kcv-$size.key"
		printf '[kcv]\ntype = static\nkey-id = KCV\nkey = file:%s\n' "$T/kcv-$size.key" >"$T/kcv.conf"
		chmod 600 "$T/kcv.conf"
		want=$("$KMSTORE" -c "$T/kcv.conf" --json key kcv 2>/dev/null |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["check_value"])')
		got=$(KEYFILE=$T/kcv-$size.key bash -c "$(sed 's/KEYFILE/"$KEYFILE"/g' "$T/kcv.sh")" 2>&1) || true
		expect_eq "$want" "$got" "kmstore(1)'s check value by hand = kmstore's ($size-byte key)"
	done
fi

# --- every kmstore command line the documents show runs ---
# (tests/docs/command_lines.py finds them.) Each runs as shown against a
# configuration whose static profiles have the names the documents use
# (P, PROFILE, west-east-qkd, ...), FILE standing for that configuration:
# it may fail for want of the key or KME it names (exit 5, 7, 8), but it
# must parse (not exit 2, as `kmstore key --reveal` once did) and not
# crash. `kmstore key kmstore:` is the guide's example of a usage error.
cmds=$T/command-lines
python3 "$SRC/tests/docs/command_lines.py" "$SRC"/docs/*.md "$SRC/README.md" "$MAN"/*.[0-9] >"$cmds"
head -c 32 /dev/urandom >"$T/doc.key"
for name in $(python3 -c 'import json,re,sys
names = set()
for l in open(sys.argv[1]):
    w = json.loads(l)
    names |= set(re.findall(r"profile=([^;]+)", " ".join(w)))
    for i, x in enumerate(w[:-1]):
        if x in ("key", "status") and not w[i + 1].startswith(("-", "kmstore:")):
            names.add(w[i + 1])
print("\n".join(sorted(names)))' "$cmds"); do
	printf '[%s]\ntype = static\nkey-id = PPK_ID_1\nkey = file:%s\n\n' "$name" "$T/doc.key"
done >"$T/doc.conf"
chmod 600 "$T/doc.conf"
n=0
while IFS= read -r json; do
	mapfile -t argv < <(python3 -c 'import json,sys; [print(w) for w in json.loads(sys.argv[1])]' "$json")
	for i in "${!argv[@]}"; do [ "${argv[i]}" = FILE ] && argv[i]=$T/doc.conf; done
	set +e
	KMSTORE_CONF=$T/doc.conf "$KMSTORE" "${argv[@]:1}" >"$T/cmd.out" 2>"$T/cmd.err"
	rc=$?
	set -e
	n=$((n + 1))
	want_usage=0
	[ "$json" = '["kmstore", "key", "kmstore:"]' ] && want_usage=1
	if [ $want_usage = 1 ] && [ $rc = 2 ]; then
		tap_ok "documented: ${argv[*]} (a usage error, as the guide says)"
	elif [ $want_usage = 0 ] && [ $rc != 2 ] && [ $rc -lt 128 ]; then
		tap_ok "documented: ${argv[*]} (exit $rc)"
	else
		tap_not_ok "documented: ${argv[*]}" "exit $rc: $(head -c 300 "$T/cmd.err")"
	fi
done <"$cmds"
[ "$n" -ge 10 ] && tap_ok "$n documented command lines found" ||
	tap_not_ok "the documents show kmstore command lines" "only $n found"

tap_done
