#!/usr/bin/env bash
# Builds the Debian package of libreswan 5.2 with the kmstore ppk-uri=
# series, for Debian 12 (bookworm), into OUTDIR. As root (apt-get).
#
#   libreswan-patches/build-deb.sh [--dsc FILE] [--no-cache] OUTDIR
#
# The source package, the first that can be had:
#   --dsc FILE    a source package you have (Debian's, or one this script
#                 made before: OUTDIR/source/*.dsc)
#   Debian's      the newest libreswan 5.2-* of trixie and sid, fetched
#                 through the Debian archive of this machine's apt sources
#                 and verified all the way: InRelease (gpgv, archive
#                 keyring) -> Sources.xz (sha256) -> .dsc (sha256) -> each
#                 file the .dsc lists (sha256). Two build dependencies
#                 change: bookworm has no systemd-dev (its systemd package
#                 still ships systemd.pc, all the build takes from it), and
#                 libcurl4-gnutls-dev becomes libcurl4-openssl-dev (the two
#                 conflict: installing one removes the other, which kmstore
#                 and its CI build with; and the kmstore module brings the
#                 OpenSSL libcurl into pluto's process anyway).
#   ours          libreswan_5.2.orig.tar.gz (sha256 from the same verified
#                 index) with libreswan-patches/debian/, a minimal packaging
#                 laid out as Debian's; debian/copyright and Debian's PAM
#                 patch come from the tarball's packaging/debian/.
# The series (5.2/series) is added to debian/patches/kmstore/ as quilt
# patches, and dpkg-buildpackage builds the source and binary packages.
#
# The result is cached in $KMSTORE_CACHE/libreswan-deb/KEY (default
# /var/cache/kmstore), KEY being the sha256 of everything the build is made
# of: the source (.dsc, or orig tarball and debian/), the series, this
# script, the Debian release and architecture. --no-cache builds anyway.
#
# OUTDIR receives libreswan_*.deb; dbgsym/ its debug symbols; source/ the
# source package; libreswan-build.txt: the source used (and why the ones
# before it were not) and lintian's report. A build that lintian finds an
# error in fails (and is not cached).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
series_dir=$here/5.2
cache_root=${KMSTORE_CACHE:-/var/cache/kmstore}
cache=$cache_root/libreswan-deb
upstream=5.2
suites=(trixie sid)
maint='kmstore maintainers <maintainers@users.noreply.r-seed-d327fbca.example>'

say() { printf 'libreswan-deb: %s\n' "$*" >&2; }
die() { printf 'libreswan-deb: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }

dsc_arg='' use_cache=yes out=''
while [ $# -gt 0 ]; do
	case $1 in
	--dsc) dsc_arg=${2:?--dsc needs a file}; shift ;;
	--no-cache) use_cache=no ;;
	-h | --help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) [ -z "$out" ] || { usage >&2; exit 2; }; out=$1 ;;
	esac
	shift
done
[ -n "$out" ] || { usage >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "run it as root (apt-get build-dep)"
[ -z "$dsc_arg" ] || dsc_arg=$(readlink -f "$dsc_arg")
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

# shellcheck source=../scripts/lib/apt-archives.sh
. "$top/scripts/lib/apt-archives.sh"

apt_ensure dpkg-dev debhelper lintian curl gpgv xz-utils python3 debian-archive-keyring

work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
notes=$work/notes
: >"$notes"
note() { printf '%s\n' "$*" | tee -a "$notes" >&2; }

sha_ok() { echo "$1  $2" | sha256sum -c --quiet - >/dev/null 2>&1; } # SHA256 FILE

# Series lines: "NNNN-name.patch [fix]"; '#' starts a comment.
series_patches() { sed -e 's/#.*//' "$series_dir/series" | awk 'NF { print $1 }'; }

# --- the source ---------------------------------------------------------------

# fetch_dsc URL_DIR DSC SHA256 DIR: the .dsc and every file it lists into
# DIR, each checked; 1 with a note naming the first file that failed.
fetch_dsc() {
	local base=$1 name=$2 sha=$3 dir=$4 f_sha f_size f_name
	if ! debian_fetch "$base/$name" "$dir/$name"; then
		note "  $name: not served by the archive (HTTP ${DEBIAN_FETCH_HTTP:-none})"
		return 1
	fi
	sha_ok "$sha" "$dir/$name" || { note "  $name: sha256 differs from the index"; return 1; }
	while read -r f_sha f_size f_name; do
		[ -n "$f_name" ] || continue
		if [ -f "$dir/$f_name" ] && sha_ok "$f_sha" "$dir/$f_name"; then continue; fi
		if [ "${f_name%.orig.tar.gz}" != "$f_name" ] && [ -f "$cache_root/libreswan/$f_name" ] &&
			sha_ok "$f_sha" "$cache_root/libreswan/$f_name"; then
			cp "$cache_root/libreswan/$f_name" "$dir/"
			continue
		fi
		if ! debian_fetch "$base/$f_name" "$dir/$f_name"; then
			note "  $f_name ($f_size bytes, listed by $name): not served by the archive (HTTP ${DEBIAN_FETCH_HTTP:-none})"
			return 1
		fi
		sha_ok "$f_sha" "$dir/$f_name" || { note "  $f_name: sha256 differs from $name"; return 1; }
	done < <(awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 } s' "$dir/$name")
}

# resolve: sets src_kind (dsc|ours), and dsc (a verified .dsc) or orig (a
# verified orig tarball); the reasons go to the notes.
resolve() {
	local archive suite idx ver dir files sha name orig_sha='' cand
	if [ -n "$dsc_arg" ]; then
		[ -f "$dsc_arg" ] || die "$dsc_arg: no such file"
		src_kind=dsc dsc=$dsc_arg
		note "source: $(basename "$dsc") (given with --dsc)"
		return
	fi
	archive=$(debian_archives | head -n 1)
	[ -n "$archive" ] || die "no Debian archive in the apt sources (/etc/apt/sources*)"
	cand=$work/candidates
	: >"$cand"
	for suite in "${suites[@]}"; do
		idx=$(debian_sources_index "$archive" "$suite" "$cache/index") || { note "index of $suite: unavailable"; continue; }
		debian_source_stanzas "$idx" libreswan | awk -v s="$suite" -v u="$upstream" \
			'index($1, u "-") == 1 { print s " " $0 }' >>"$cand"
	done
	[ -s "$cand" ] || die "no libreswan $upstream-* in the source indices of ${suites[*]} at $archive"
	# newest first; a version in two suites is tried once
	while read -r suite ver files; do
		dir=${files%%|*} files=${files#*|}
		while IFS=' ' read -r sha _ name; do
			case $name in
			*.dsc) note "Debian's libreswan $ver ($suite, $dir/$name):"
				mkdir -p "$work/dsc-$ver"
				if fetch_dsc "$archive/$dir" "$name" "$sha" "$work/dsc-$ver"; then
					src_kind=dsc dsc=$work/dsc-$ver/$name
					note "source: Debian's libreswan $ver ($suite)"
					return
				fi ;;
			"libreswan_$upstream.orig.tar.gz") orig_sha=$sha orig_dir=$dir ;;
			esac
		done < <(tr '|' '\n' <<<"$files")
	done < <(sort -k2,2Vr "$cand" | awk '!seen[$2]++')
	[ -n "$orig_sha" ] || die "the indices list no libreswan_$upstream.orig.tar.gz"
	orig=$work/libreswan_$upstream.orig.tar.gz
	if [ -f "$cache_root/libreswan/${orig##*/}" ] && sha_ok "$orig_sha" "$cache_root/libreswan/${orig##*/}"; then
		cp "$cache_root/libreswan/${orig##*/}" "$orig"
	elif ! debian_fetch "$archive/$orig_dir/${orig##*/}" "$orig" || ! sha_ok "$orig_sha" "$orig"; then
		die "could not fetch ${orig##*/} with sha256 $orig_sha from $archive"
	fi
	src_kind=ours orig_sha256=$orig_sha
	note "source: libreswan_$upstream.orig.tar.gz (sha256 $orig_sha) with libreswan-patches/debian/ (Debian's source package could not be had)"
}

resolve

# --- the cache ----------------------------------------------------------------

key=$(
	if [ "$src_kind" = dsc ]; then
		echo "dsc $(sha256sum <"$dsc" | cut -c1-64)"
	else
		echo "orig $orig_sha256"
		(cd "$here" && find debian -type f -print0 | sort -z | xargs -0 sha256sum)
	fi
	for p in $(series_patches); do sha256sum "$series_dir/$p" | sed "s:$series_dir/::"; done
	sha256sum "$0" | cut -c1-64
	echo "debian $(cat /etc/debian_version) $(dpkg --print-architecture)"
)
key=$(sha256sum <<<"$key" | cut -c1-64)
entry=$cache/$key

# deliver: a cache entry (lintian found no error in it) into OUTDIR.
deliver() {
	mkdir -p "$out/dbgsym" "$out/source"
	cp "$entry"/*.deb "$out/"
	cp "$entry"/dbgsym/* "$out/dbgsym/" 2>/dev/null || true
	cp "$entry"/source/* "$out/source/"
	cp "$entry/libreswan-build.txt" "$out/"
}

# Entries unused for 30 days go (a used one is touched).
find "$cache" -mindepth 1 -maxdepth 1 -type d -name '[0-9a-f]*' -mtime +30 -exec rm -rf {} + 2>/dev/null || true
if [ $use_cache = yes ] && [ -f "$entry/.complete" ]; then
	touch "$entry"
	say "cached: $entry ($(sed -n 's/^built: //p' "$entry/libreswan-build.txt"))"
	deliver
	exit 0
fi

# --- the tree -----------------------------------------------------------------

build=$work/build
mkdir -p "$build"
if [ "$src_kind" = dsc ]; then
	(cd "$build" && dpkg-source -x "$dsc" tree >"$work/dpkg-source.log" 2>&1) ||
		{ cat "$work/dpkg-source.log" >&2; die "dpkg-source -x $(basename "$dsc") failed"; }
	for f in $(awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 } s { print $3 }' "$dsc"); do
		case $f in *.orig.tar.*) cp "$(dirname "$dsc")/$f" "$build/" ;; esac
	done
	tree=$build/tree
	base_version=$(cd "$tree" && dpkg-parsechangelog -S Version)
	# raised with libreswan-patches/debian/changelog's, for each new series
	version=$base_version+kmstore3
	# bookworm: systemd (252) ships systemd.pc, there is no systemd-dev;
	# the OpenSSL libcurl, as kmstore's (see the top)
	python3 - "$tree/debian/control" <<'EOF'
import re, sys
path = sys.argv[1]
text = open(path).read()
def fix(m):
    deps = re.sub(r",?\s*systemd-dev(\s*\[[^]]*\])?(?=\s*(,|$))", "", m.group(1))
    return deps.replace("libcurl4-gnutls-dev", "libcurl4-openssl-dev")
new = re.sub(r"(?m)(^Build-Depends:(?:.*\n)(?:[ \t].*\n)*)", fix, text, count=1)
open(path, "w").write(new)
EOF
	changes="  * Debian's libreswan $base_version rebuilt for Debian 12 (bookworm) with the
    kmstore ppk-uri= series in debian/patches/kmstore/.
  * Build-Depends: no systemd-dev (bookworm's systemd ships systemd.pc);
    libcurl4-openssl-dev for libcurl4-gnutls-dev (kmstore builds with it,
    and its PKCS#11 module brings that libcurl into pluto anyway)."
else
	tree=$build/libreswan-$upstream
	mkdir -p "$tree"
	cp "$orig" "$build/"
	tar -xzf "$orig" -C "$tree" --strip-components=1
	cp -a "$here/debian" "$tree/debian"
	# upstream's description of its licences, without the files that 5.2
	# no longer has, and upstream's PAM file for Debian
	python3 - "$tree" <<'EOF'
import fnmatch, os, re, sys
tree = sys.argv[1]
files = [os.path.relpath(os.path.join(d, f), tree)
         for d, _, names in os.walk(tree) for f in names]
kept = []
for para in open(os.path.join(tree, "packaging/debian/copyright")).read().split("\n\n"):
    m = re.match(r"Files:(.*(?:\n[ \t].*)*)", para)
    if not m:
        kept.append(para)
        continue
    patterns = [p for p in m.group(1).split()
                if any(fnmatch.fnmatchcase(f, p) for f in files)]
    if patterns:
        kept.append("Files:\n " + "\n ".join(patterns) + para[m.end():])
used = {m.group(1).strip() for p in kept if p.startswith("Files:")
        for m in [re.search(r"(?m)^License:(.*)$", p)] if m}
kept = [p for p in kept if not p.startswith("License:")
        or p.split("\n")[0][8:].strip() in used]
open(os.path.join(tree, "debian/copyright"), "w").write("\n\n".join(kept))
EOF
	mkdir -p "$tree/debian/patches"
	cp "$tree/packaging/debian/patches/0002-debian-pam.d-pluto.patch" "$tree/debian/patches/"
	echo 0002-debian-pam.d-pluto.patch >>"$tree/debian/patches/series"
	version=$(cd "$tree" && dpkg-parsechangelog -S Version)
	changes=''
fi

mkdir -p "$tree/debian/patches/kmstore"
for p in $(series_patches); do
	cp "$series_dir/$p" "$tree/debian/patches/kmstore/"
	echo "kmstore/$p" >>"$tree/debian/patches/series"
done
if [ -n "$changes" ]; then
	{
		printf 'libreswan (%s) bookworm; urgency=medium\n\n%s\n\n -- %s  %s\n\n' \
			"$version" "$changes" "$maint" "$(date -R)"
		cat "$tree/debian/changelog"
	} >"$work/changelog"
	mv "$work/changelog" "$tree/debian/changelog"
fi
note "version: $version; series: $(series_patches | wc -l) patches in debian/patches/kmstore/"

# --- build ----------------------------------------------------------------------

say "build dependencies (apt-get build-dep)"
apt_build_dep "$tree" "$work/build-dep.log" ||
	{ tail -n 20 "$work/build-dep.log" >&2; die "apt-get build-dep failed"; }
say "building libreswan $version (dpkg-buildpackage, a few minutes)"
started=$SECONDS
if ! (cd "$tree" && dpkg-buildpackage -us -uc >"$work/build.log" 2>&1); then
	tail -n 40 "$work/build.log" >&2
	mkdir -p "$cache/failed" && cp "$work/build.log" "$cache/failed/build-$key.log"
	die "dpkg-buildpackage failed; log: $cache/failed/build-$key.log"
fi
note "built: libreswan $version in $((SECONDS - started)) s"

lint_rc=0
lintian -I "$build"/*.changes >"$work/lintian.txt" 2>&1 || lint_rc=$?
stage=$work/entry
mkdir -p "$stage/dbgsym" "$stage/source"
for f in "$build"/*.deb; do
	case $f in *-dbgsym_*) mv "$f" "$stage/dbgsym/" ;; *) mv "$f" "$stage/" ;; esac
done
for f in "$build"/*.dsc "$build"/*.debian.tar.* "$build"/*.orig.tar.*; do
	[ ! -f "$f" ] || install -m 644 "$f" "$stage/source/"
done
{
	cat "$notes"
	echo "lintian (exit $lint_rc):"
	grep -v '^running with root privileges' "$work/lintian.txt" | sed 's/^/  /'
} >"$stage/libreswan-build.txt"
if [ $lint_rc -ne 0 ]; then
	mkdir -p "$cache/failed" && cp "$stage/libreswan-build.txt" "$cache/failed/lintian-$key.txt"
	die "lintian reports errors, or failed (exit $lint_rc): $cache/failed/lintian-$key.txt"
fi
touch "$stage/.complete"
rm -rf "$entry"
mv -T "$stage" "$entry" 2>/dev/null || say "another build stored $entry meanwhile"
say "cached: $entry"
deliver
