#!/usr/bin/env bash
# Runs the OpenSSL provider and engine tests against OpenSSL 3.5, so the
# EVP_SKEY (SKEYMGMT) code is tested and not only compiled.
#
#   bash scripts/openssl35.sh [BUILD_DIR]        (default: build/openssl35)
#
# 1. OpenSSL 3.5 is built once into a cache outside the repository,
#    $KMSTORE_OPENSSL35_CACHE (default /var/cache/kmstore/openssl-3.5), and
#    reused from then on (no network). Its source is the orig tarball of
#    Debian trixie's openssl package, fetched from the Debian archive that
#    this machine's apt sources name and verified: InRelease with gpgv and
#    the archive keyring -> Sources.xz (sha256) -> tarball (sha256).
#    KMSTORE_OPENSSL35_TARBALL=FILE uses a tarball you already have.
# 2. kmstore is configured against it in BUILD_DIR (headers, pkg-config,
#    an rpath to 3.5's lib directory) and only the OpenSSL faces, kme-sim
#    and their tests are built and run. Every object in a test process
#    (openssl or a test program, the provider, libkmstore, libcurl) then
#    shares 3.5's libcrypto.so.3 and libssl.so.3: one libcrypto per
#    process. libcurl was built against Debian's 3.0; OpenSSL 3.x keeps
#    binary compatibility within the major version, so that is sound,
#    whereas two libcryptos in one process would not be (both are
#    libcrypto.so.3, so the rpath decides which one a process gets).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/openssl35}
cache=${KMSTORE_OPENSSL35_CACHE:-/var/cache/kmstore/openssl-3.5}
suite=trixie
jobs=$(nproc)

say() { printf 'openssl35: %s\n' "$*"; }
die() { printf 'openssl35: error: %s\n' "$*" >&2; exit 1; }

# The main Debian archives of the apt sources: scripts/lib/apt-archives.sh.
. scripts/lib/apt-archives.sh

pick_archive() {
	debian_archives | head -n 1
}

keyring() {
	local k
	k=$(awk 'tolower($1) == "signed-by:" { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[[ -n $k && -f $k ]] || k=/usr/share/keyrings/debian-archive-keyring.gpg
	printf '%s\n' "$k"
}

fetch() { # URL FILE
	curl -fsS --retry 2 --connect-timeout 20 --max-time 300 -o "$2" "$1"
}

# Prints "sha256 size dir/file" for every openssl 3.5.x orig tarball that
# the (verified) Sources index lists, newest first.
tarballs_from_sources() { # SOURCES_FILE
	awk -v RS= -F '\n' '
	$1 == "Package: openssl" {
		ver = ""; dir = ""; in_sha = 0; sha = ""
		for (i = 1; i <= NF; i++) {
			if ($i ~ /^Version: /) ver = substr($i, 10)
			else if ($i ~ /^Directory: /) dir = substr($i, 12)
			else if ($i ~ /^Checksums-Sha256:/) in_sha = 1
			else if (in_sha && $i ~ /^ /) {
				split(substr($i, 2), w, " ")
				if (w[3] ~ /^openssl_3\.5\.[0-9]+\.orig\.tar\.gz$/) sha = w[1] " " w[2] " " w[3]
			} else in_sha = 0
		}
		if (ver ~ /^3\.5\./ && sha != "") {
			split(sha, w, " ")
			print ver, w[1], w[2], dir "/" w[3]
		}
	}' "$1" | sort -V -r -k1,1 | cut -d' ' -f2-
}

download_source() { # DIR -> prints the tarball path
	local dir=$1 mirror ring sums sha size path
	mirror=$(pick_archive) || true
	[[ -n $mirror ]] || die "no Debian archive URI found in /etc/apt/sources*"
	ring=$(keyring)
	say "mirror $mirror (from the apt sources), keyring $ring" >&2
	fetch "$mirror/dists/$suite/InRelease" "$dir/InRelease"
	gpgv --keyring "$ring" --output "$dir/Release" "$dir/InRelease" 2>/dev/null ||
		die "InRelease of $suite: signature not valid for $ring"
	sums=$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/source/Sources.xz" { print $1; exit }' "$dir/Release")
	[[ -n $sums ]] || die "Release of $suite lists no main/source/Sources.xz"
	fetch "$mirror/dists/$suite/main/source/Sources.xz" "$dir/Sources.xz"
	echo "$sums  $dir/Sources.xz" | sha256sum -c --quiet - || die "Sources.xz: sha256 mismatch"
	xz -dc "$dir/Sources.xz" >"$dir/Sources"
	while read -r sha size path; do
		say "trying $path ($size bytes, sha256 $sha)" >&2
		if fetch "$mirror/$path" "$dir/${path##*/}" 2>/dev/null &&
			echo "$sha  $dir/${path##*/}" | sha256sum -c --quiet - 2>/dev/null; then
			printf '%s\n' "$dir/${path##*/}"
			return 0
		fi
		say "not available or not matching; trying an older one" >&2
		rm -f "$dir/${path##*/}"
	done < <(tarballs_from_sources "$dir/Sources")
	die "no openssl 3.5 orig tarball could be fetched from $mirror"
}

build_openssl() {
	local tarball src started
	started=$SECONDS
	work=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-openssl35.XXXXXX")
	trap 'rm -rf "$work"' EXIT
	if [[ -n ${KMSTORE_OPENSSL35_TARBALL:-} ]]; then
		tarball=$KMSTORE_OPENSSL35_TARBALL
		say "using $tarball (sha256 $(sha256sum <"$tarball" | cut -c1-64))"
	else
		tarball=$(download_source "$work")
	fi
	say "building $(basename "$tarball") into $cache (once; 3 to 4 minutes on 2 cores)"
	tar -xzf "$tarball" -C "$work"
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'openssl-3.5*' | head -n 1)
	[[ -n $src ]] || die "the tarball holds no openssl-3.5* directory"
	# The rpath lets the 3.5 openssl binary find its own libraries.
	(cd "$src" && ./Configure no-docs no-tests --prefix="$cache" --libdir=lib \
		'-Wl,-rpath,$(LIBRPATH)' >"$work/configure.log" 2>&1) ||
		{ tail -n 30 "$work/configure.log"; die "Configure failed"; }
	# Only what the tests use: the shared libraries and the openssl program.
	# OpenSSL compiles every object twice (static and shared libraries);
	# leaving out the static ones, the legacy provider and the engines
	# halves the build.
	local only=(LIBS="apps/libapps.a providers/libcommon.a providers/libdefault.a"
		MODULES= INSTALL_LIBS= INSTALL_ENGINES= INSTALL_MODULES=)
	make -C "$src" -j"$jobs" "${only[@]}" >"$work/make.log" 2>&1 ||
		{ tail -n 30 "$work/make.log"; die "make failed"; }
	# Staged, then moved: an interrupted build never looks like a cache.
	make -C "$src" install_sw DESTDIR="$work/stage" "${only[@]}" >"$work/install.log" 2>&1 ||
		{ tail -n 30 "$work/install.log"; die "make install_sw failed"; }
	mkdir -p "$(dirname "$cache")"
	rm -rf "$cache"
	mv "$work/stage$cache" "$cache"
	"$cache/bin/openssl" version >"$cache/.kmstore-complete"
	say "built $(cat "$cache/.kmstore-complete") in $((SECONDS - started)) s"
	rm -rf "$work"
}

if [[ -f $cache/.kmstore-complete && -x $cache/bin/openssl ]]; then
	say "reusing $cache: $(cat "$cache/.kmstore-complete")"
else
	build_openssl
fi

ossl=$cache/bin/openssl
say "configuring kmstore in $build against $("$ossl" version)"
# DT_RPATH (not RUNPATH): it also applies to the libraries' own
# dependencies, so libcurl's libssl.so.3 is 3.5's too. Nothing exports
# LD_LIBRARY_PATH: the test tools that are the system's (openssl in the
# PKI script) must keep the system's libraries.
rpath_flags="-Wl,--disable-new-dtags"
export PKG_CONFIG_PATH=$cache/lib/pkgconfig
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DKMSTORE_OPENSSL_PROGRAM="$ossl" -DCMAKE_BUILD_RPATH="$cache/lib" \
	-DCMAKE_EXE_LINKER_FLAGS="$rpath_flags" -DCMAKE_SHARED_LINKER_FLAGS="$rpath_flags" \
	-DCMAKE_MODULE_LINKER_FLAGS="$rpath_flags" >/dev/null
targets=$(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(kmstore-provider\|kmstore-engine\|kme-sim\|test_openssl_[a-z0-9_]*\|test_engine_[a-z0-9_]*\)\b.*/\1/p')
say "building $(echo $targets)"
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $targets >/dev/null
say "running the provider and engine tests with $ossl"
ctest --test-dir "$build" --output-on-failure -R '^(openssl|engine)_'
