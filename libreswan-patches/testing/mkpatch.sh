#!/usr/bin/env bash
# Writes the series' testing patch from the test cases kept here: one
# place for each case, patches generated from it.
#
#   libreswan-patches/testing/mkpatch.sh [--libreswan V] [--check]
#
#   --libreswan V   the series libreswan-patches/V/ [5.2]
#   --check         write nothing: exit 1 (showing the difference) when the
#                   patch in the series is not what this would write
#
# The patch adds testing/guestbin/* and testing/pluto/ikev2-ppk-uri-*/ of
# this directory (for a case, its files, with CASE/V/ over them) to
# libreswan's tree, and each case to testing/pluto/TESTLIST after the
# release's last ikev2-ppk- entry. It is git format-patch output of a
# commit on the release's own TESTLIST (from build.sh --print-source),
# made with fixed names and dates, so the same cases give the same file.
# Its name is the series line ending in -testing-ikev2-ppk-uri-cases.patch
# (a new one goes last, numbered after the others).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
name_tail=-testing-ikev2-ppk-uri-cases.patch

say() { printf 'mkpatch: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

version=5.2 check=no
while [ $# -gt 0 ]; do
	case $1 in
	--libreswan) version=${2:?--libreswan needs a version}; shift ;;
	--check) check=yes ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
	shift
done
series=$repo/libreswan-patches/$version
[ -f "$series/series" ] || die "no series for libreswan $version ($series/series)"
command -v git >/dev/null || die "git is needed"

# the release's TESTLIST
source=$("$repo/libreswan-patches/build.sh" --libreswan "$version" --print-source) ||
	die "no libreswan $version source (build.sh --print-source)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
w=$tmp/tree
mkdir -p "$w/testing/pluto"
if [ -d "$source" ]; then
	cp "$source/testing/pluto/TESTLIST" "$w/testing/pluto/"
else
	tar -xzf "$source" -C "$tmp" --wildcards '*/testing/pluto/TESTLIST'
	mv "$tmp"/*/testing/pluto/TESTLIST "$w/testing/pluto/"
fi

export GIT_AUTHOR_NAME="kmstore developers" GIT_AUTHOR_EMAIL=kmstore@localhost
export GIT_COMMITTER_NAME=$GIT_AUTHOR_NAME GIT_COMMITTER_EMAIL=$GIT_AUTHOR_EMAIL
export GIT_AUTHOR_DATE="2026-12-04T12:00:00Z" GIT_COMMITTER_DATE="2026-12-04T12:00:00Z"
g() { git -C "$w" -c core.autocrlf=false -c user.useConfigOnly=false "$@"; }
g init -q
g add -A
g commit -q -m "libreswan $version"

# --- the cases ----------------------------------------------------------------

cases=$(cd "$here/pluto" && ls -d ikev2-ppk-uri-* | sort)
[ -n "$cases" ] || die "no cases in $here/pluto"
mkdir -p "$w/testing/guestbin"
cp -p "$here/guestbin/"* "$w/testing/guestbin/"
for c in $cases; do
	mkdir "$w/testing/pluto/$c"
	find "$here/pluto/$c" -mindepth 1 -maxdepth 1 -type f -exec cp -p {} "$w/testing/pluto/$c/" \;
	[ ! -d "$here/pluto/$c/$version" ] || cp -p "$here/pluto/$c/$version/"* "$w/testing/pluto/$c/"
done
awk -v cases="$cases" '
	{ lines[NR] = $0 }
	$2 ~ /^ikev2-ppk-/ { last = NR }
	END {
		if (!last) { print "no ikev2-ppk- line in TESTLIST" > "/dev/stderr"; exit 1 }
		n = split(cases, c, "\n")
		for (i = 1; i <= NR; i++) {
			print lines[i]
			if (i == last)
				for (j = 1; j <= n; j++)
					printf "kvmplutotest\t%s\t\tgood\n", c[j]
		}
	}' "$w/testing/pluto/TESTLIST" >"$tmp/TESTLIST"
mv "$tmp/TESTLIST" "$w/testing/pluto/TESTLIST"
g add -A
g commit -q -s -F - <<'EOF'
testing: ikev2-ppk-uri-*: test cases for ppk-uri=

Test cases for PPKs taken from a PKCS#11 token with ppk-uri=, with
the kmstore PKCS#11 module and its ETSI GS QKD 014 KME simulator
(kme-sim):

  01-qkd                QKD keys: a new key per IKE SA, the same
                        PPK_ID on both ends
  02-static-interop     a static key through ppk-uri= against a PPKS
                        entry in ipsec.secrets, both directions
  03-unknown-ppk-id     an unknown PPK_ID: ppk=insist fails,
                        ppk=propose goes on with NO_PPK_AUTH
  04-kme-down           the responder's KME does not answer: insist
                        fails within the fetch's timeout, and another
                        connection comes up
  05-intermediate-qkd   intermediate=yes with a QKD key
  06-reauth             reauth=yes: each new IKE SA takes a new QKD
                        key, or the same static key
  07-rekey-ike          an IKE SA rekey takes no PPK (RFC 8784)

guestbin/kme-sim.sh starts kme-sim on east (KME_A and KME_B with
counted key IDs, so the PPK_IDs in the output are the same at every
run); guestbin/kmstore-prep.sh writes each host's kmstore.conf and
registers the module in pluto's NSS database.  west, east and the
module need kme-sim, kme-sim-pki, kmstore and kmstore-nss-register
installed.

The IKE SAs have no Child SA (impair omit_v2_ike_auth_child), so the
cases pass unchanged on a kernel without ESP; the expected output
comes from runs with nsrun --ns.

Signed-off-by: kmstore developers <kmstore@localhost>
EOF

# --- the patch in the series --------------------------------------------------

file=$(sed -e 's/#.*//' "$series/series" | awk '{ print $1 }' | grep -e "$name_tail\$" | head -n 1 || true)
if [ -z "$file" ]; then
	last=$(sed -e 's/#.*//' "$series/series" | awk 'NF { print $1 }' | sed -n 's/^\([0-9]\{4\}\)-.*/\1/p' | sort -n | tail -n 1)
	file=$(printf '%04d%s' $((10#${last:-0} + 1)) "$name_tail")
fi
g format-patch -q --zero-commit --no-numbered --no-signature --stdout -1 >"$tmp/patch"

if [ $check = yes ]; then
	if [ ! -f "$series/$file" ]; then
		say "$version/series has no $file: run $0 --libreswan $version"
		exit 1
	fi
	if ! diff -u "$series/$file" "$tmp/patch" >"$tmp/diff"; then
		head -n 60 "$tmp/diff" >&2
		say "$version/$file is not what the cases in $here give: run $0 --libreswan $version"
		exit 1
	fi
	grep -qx "$file" <(sed -e 's/#.*//' "$series/series" | awk '{ print $1 }') ||
		{ say "$version/series does not list $file"; exit 1; }
	say "$version/$file matches the cases"
	exit 0
fi
cp "$tmp/patch" "$series/$file"
grep -qx "$file" <(sed -e 's/#.*//' "$series/series" | awk '{ print $1 }') || echo "$file" >>"$series/series"
say "wrote $series/$file"
