#!/usr/bin/env bash
# Runs the OpenSSL provider and engine tests against an OpenSSL built from
# Debian's source packages, so that what the sources choose by feature test
# (EVP_SKEY from 3.5, OSSL_OBJECT_SKEY and no ENGINE in 4.0) runs, not only
# compiles.
#
#   bash scripts/openssl-test.sh 3.5|3.6|4.0 [BUILD_DIR]
#                                      (default: build/openssl-VERSION)
#
#   3.5  Debian trixie's openssl      3.6  sid's      4.0  experimental's
#
# 1. OpenSSL is built once into a cache outside the repository,
#    $KMSTORE_OPENSSL_CACHE (default /var/cache/kmstore/openssl-VERSION),
#    and reused from then on (no network). Its source is the orig tarball
#    of the suite's openssl source package, from the Debian archive that
#    this machine's apt sources name, each step verified: InRelease (gpgv,
#    the archive keyring) -> Sources.xz (sha256) -> .dsc (sha256) ->
#    orig tarball (sha256 listed in the .dsc). KMSTORE_OPENSSL_TARBALL=FILE
#    builds from a tarball you already have. The build is staged next to
#    the cache and renamed into place with its completion mark, under a
#    lock: an interrupted build never looks like a cache, and a complete
#    cache is never replaced (another run may be using it).
# 2. kmstore is configured against it in BUILD_DIR (headers, pkg-config,
#    an rpath to its lib directory) and only the OpenSSL faces, kme-sim
#    and their tests are built and run; see below for the one-libcrypto
#    rule that this needs.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	echo "usage: bash scripts/openssl-test.sh 3.5|3.6|4.0 [BUILD_DIR]" >&2
	exit 2
}
version=${1:-}
case $version in
3.5) suite=trixie ;;
3.6) suite=sid ;;
4.0) suite=experimental ;;
*) usage ;;
esac
build=${2:-build/openssl-$version}
cache=${KMSTORE_OPENSSL_CACHE:-/var/cache/kmstore/openssl-$version}
jobs=$(nproc)

say() { printf 'openssl-%s: %s\n' "$version" "$*"; }
die() { printf 'openssl-%s: error: %s\n' "$version" "$*" >&2; exit 1; }

# The main Debian archives of the apt sources: scripts/lib/apt-archives.sh.
. scripts/lib/apt-archives.sh

sha256_ok() { # SHA256 FILE
	echo "$1  $2" | sha256sum -c --quiet - >/dev/null 2>&1
}

# "sha256 size name" of the files a Checksums-Sha256 field lists, from a
# .dsc on stdin.
sha256_lines() {
	awk '/^Checksums-Sha256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && NF == 3 { print $1, $2, $3 }'
}

# Prints "dsc-sha256 directory/dsc" for every source package PACKAGE whose
# version starts with PREFIX that a (verified) Sources index lists, newest
# first, no upstream pre-release (~rc).
dscs_from_sources() { # SOURCES_XZ PACKAGE PREFIX
	debian_source_stanzas "$1" "$2" | awk -F '|' -v want="$3" '{
		split($1, h, " "); dsc = ""
		for (i = 2; i <= NF; i++) {
			split($i, w, " ")
			if (w[3] ~ /\.dsc$/) dsc = w[1] " " h[2] "/" w[3]
		}
		up = h[1]; sub(/-[^-]*$/, "", up)
		if (index(h[1], want) == 1 && up !~ /~/ && dsc != "")
			print h[1], dsc
	}' | sort -V -r -k1,1 | cut -d' ' -f2-
}

# The newest orig tarball of PACKAGE PREFIX* in SUITE that the pool still
# has, its .dsc checked against the index and the tarball against the .dsc.
download_source() { # DIR PACKAGE PREFIX SUITE -> prints the tarball path
	local dir=$1 pkg=$2 prefix=$3 suite=$4 index sha dsc orig line
	mirror=$(debian_archives | head -n 1) || true
	[[ -n $mirror ]] || die "no Debian archive URI found in /etc/apt/sources*"
	say "suite $suite from $mirror (the apt sources' archive), keyring $(debian_keyring)" >&2
	index=$(debian_sources_index "$mirror" "$suite" "$dir/index") ||
		die "no verified source index of $suite"
	# The pool keeps only some of the versions an index lists: try each,
	# newest first.
	while read -r sha dsc; do
		if ! debian_fetch "$mirror/$dsc" "$dir/${dsc##*/}" 2>/dev/null ||
			! sha256_ok "$sha" "$dir/${dsc##*/}"; then
			say "${dsc##*/}: not in the pool (or not matching); trying an older one" >&2
			continue
		fi
		line=$(sha256_lines <"$dir/${dsc##*/}" |
			awk -v p="$pkg" '$3 ~ "^" p "_[0-9.]+\\.orig\\.tar\\.(gz|xz)$"' | head -n 1)
		[[ -n $line ]] || die "${dsc##*/} lists no orig tarball"
		read -r sha _ orig <<<"$line"
		if debian_fetch "$mirror/${dsc%/*}/$orig" "$dir/$orig" 2>/dev/null &&
			sha256_ok "$sha" "$dir/$orig"; then
			say "$orig ($suite): sha256 $sha as ${dsc##*/} lists it" >&2
			printf '%s\n' "$dir/$orig"
			return 0
		fi
		say "$orig: not in the pool (or not matching its .dsc); trying an older one" >&2
		rm -f "$dir/$orig"
	done < <(dscs_from_sources "$index" "$pkg" "$prefix")
	die "no $pkg $prefix* source could be fetched from $mirror ($suite)"
}

# OpenSSL 4 is libcrypto.so.4: with the system's libcurl (built for
# libcrypto.so.3) libkmstore would bring a second OpenSSL into every process
# that loads the provider, and libkmstore sets options on curl's SSL_CTX. A
# system with OpenSSL 4 has a libcurl built for it, so the cache gets one:
# the library only (HTTP and HTTPS), from sid's curl source package.
build_curl() { # STAGE
	local stage=$1 src
	if [[ -n ${KMSTORE_CURL_TARBALL:-} ]]; then
		curl_tarball=$KMSTORE_CURL_TARBALL
	else
		curl_tarball=$(download_source "$work" curl "" sid)
	fi
	say "building libcurl from $(basename "$curl_tarball") against it"
	tar -xf "$curl_tarball" -C "$work"
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'curl-*' | head -n 1)
	[[ -n $src ]] || die "the tarball holds no curl-* directory"
	# pkg-config finds the staged OpenSSL, its paths under the stage.
	(cd "$src" && PKG_CONFIG_LIBDIR="$stage$cache/lib/pkgconfig" \
		PKG_CONFIG_SYSROOT_DIR="$stage" ./configure --prefix="$cache" \
		--with-openssl --disable-static --disable-manual --disable-docs \
		--without-libpsl --without-zlib --without-brotli --without-zstd \
		--without-nghttp2 --without-libidn2 --without-librtmp \
		--without-libssh2 --disable-ldap --disable-ldaps \
		LDFLAGS="-Wl,-rpath,$cache/lib -Wl,--disable-new-dtags" \
		>"$work/curl-configure.log" 2>&1) ||
		{ tail -n 30 "$work/curl-configure.log"; die "curl's configure failed"; }
	{ make -C "$src/lib" -j"$jobs" &&
		make -C "$src/lib" install DESTDIR="$stage" &&
		make -C "$src/include" install DESTDIR="$stage" &&
		make -C "$src" install-pkgconfigDATA DESTDIR="$stage"; } >"$work/curl-make.log" 2>&1 ||
		{ tail -n 30 "$work/curl-make.log"; die "libcurl's build failed"; }
}

# Everything the build needs to be rebuilt from is in the cache's marks.
build_openssl() {
	local tarball src started stage
	started=$SECONDS
	work=$(mktemp -d "${TMPDIR:-/tmp}/kmstore-openssl-$version.XXXXXX")
	stage=$(mktemp -d "$(dirname "$cache")/.$(basename "$cache").stage.XXXXXX")
	trap 'rm -rf "$work" "$stage"' EXIT
	if [[ -n ${KMSTORE_OPENSSL_TARBALL:-} ]]; then
		tarball=$KMSTORE_OPENSSL_TARBALL
	else
		tarball=$(download_source "$work" openssl "$version." "$suite")
	fi
	say "building $(basename "$tarball") into $cache (once; a few minutes on 2 cores)"
	tar -xzf "$tarball" -C "$work"
	src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name "openssl-$version*" | head -n 1)
	[[ -n $src ]] || die "the tarball holds no openssl-$version* directory"
	# The rpath lets the openssl program find its own libraries.
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
	make -C "$src" install_sw DESTDIR="$stage" "${only[@]}" >"$work/install.log" 2>&1 ||
		{ tail -n 30 "$work/install.log"; die "make install_sw failed"; }
	[[ -e $stage$cache/lib/libcrypto.so.3 ]] || build_curl "$stage"
	# Its rpath names the cache, where it is not yet.
	staged() { LD_LIBRARY_PATH="$stage$cache/lib" "$stage$cache/bin/openssl" "$@"; }
	staged version >/dev/null || die "the built openssl program does not run"
	{
		echo "openssl: $(basename "$tarball") ($suite) sha256 $(sha256sum <"$tarball" | cut -c1-64)"
		[[ -z ${curl_tarball:-} ]] ||
			echo "libcurl: $(basename "$curl_tarball") (sid) sha256 $(sha256sum <"$curl_tarball" | cut -c1-64)"
		echo "built in $((SECONDS - started)) s on $(date -u +%F)"
	} >"$stage$cache/.kmstore-source"
	# The mark of a complete cache is its first line; the old 3.5 script
	# wrote the same.
	staged version >"$stage$cache/.kmstore-complete" ||
		die "cannot write the completion mark"
	# rename(2) in the same directory: the cache appears whole or not at all.
	mv -T "$stage$cache" "$cache"
	say "built $(head -n 1 "$cache/.kmstore-complete") in $((SECONDS - started)) s"
	rm -rf "$work" "$stage"
	trap - EXIT
}

# Marked complete, and (OpenSSL 4) with its libcurl.
complete() {
	[[ -f $cache/.kmstore-complete && -x $cache/bin/openssl ]] &&
		[[ -e $cache/lib/libcrypto.so.3 || -e $cache/lib/libcurl.so.4 ]]
}

if complete; then
	say "reusing $cache: $(head -n 1 "$cache/.kmstore-complete")"
else
	mkdir -p "$(dirname "$cache")"
	exec {lock}>"$cache.lock"
	if ! flock -n "$lock"; then
		say "waiting for another build of $cache"
		flock "$lock"
	fi
	if complete; then
		say "built meanwhile by another run: $(head -n 1 "$cache/.kmstore-complete")"
	else
		# Without its mark it is not a cache: a build of an old script
		# that was cut short (ours are in .stage directories), or one
		# without the libcurl that OpenSSL 4 needs.
		if [[ -e $cache ]]; then
			say "removing the incomplete $cache"
			rm -rf "$cache"
		fi
		rm -rf "$(dirname "$cache")/.$(basename "$cache").stage."*
		build_openssl
	fi
	exec {lock}>&-
fi

ossl=$cache/bin/openssl
say "configuring kmstore in $build against $("$ossl" version)"
# DT_RPATH (not RUNPATH): it also applies to the libraries' own
# dependencies, so libcurl's libssl is this OpenSSL's too. Nothing exports
# LD_LIBRARY_PATH: the test tools that are the system's (openssl in the PKI
# script) must keep the system's libraries. pkg-config finds this OpenSSL
# (and for 4.0 its libcurl) first.
rpath_flags="-Wl,--disable-new-dtags"
export PKG_CONFIG_PATH=$cache/lib/pkgconfig
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DKMSTORE_OPENSSL_PROGRAM="$ossl" -DCMAKE_BUILD_RPATH="$cache/lib" \
	-DCMAKE_EXE_LINKER_FLAGS="$rpath_flags" -DCMAKE_SHARED_LINKER_FLAGS="$rpath_flags" \
	-DCMAKE_MODULE_LINKER_FLAGS="$rpath_flags" >"$build.cmake.log" 2>&1 ||
	{ cat "$build.cmake.log"; die "cmake failed"; }
targets=$(cmake --build "$build" --target help | sed -n 's/^\.\.\. \(kmstore-provider\|kmstore-engine\|kme-sim\|test_openssl_[a-z0-9_]*\|test_engine_[a-z0-9_]*\)\b.*/\1/p')
say "building $(echo $targets)"
# The build chooses by feature test; what these versions have is known:
# 3.x has engines, 4.0 removed them (and the build must not fail).
if [[ $version == 3.* ]]; then
	grep -qx kmstore-engine <<<"$targets" || die "OpenSSL $version has engines, but the engine is not built"
else
	! grep -qx kmstore-engine <<<"$targets" || die "OpenSSL $version has no engines, but the engine is built"
	say "no ENGINE in OpenSSL $version: the engine is left out"
fi
# shellcheck disable=SC2086
cmake --build "$build" -j "$jobs" --target $targets >"$build.build.log" 2>&1 ||
	{ tail -n 40 "$build.build.log"; die "build failed"; }
# One libcrypto in every process that loads the provider: this one.
cryptos=$(ldd "$build/provider/openssl/kmstore.so" | awk '/libcrypto\.so/ { print $3 }' | sort -u)
[[ $(wc -l <<<"$cryptos") -eq 1 && $cryptos == "$cache/lib/"* ]] ||
	die "the provider would load these libcryptos: $(echo $cryptos) (want one, in $cache/lib)"
say "running the provider and engine tests with $ossl"
ctest --test-dir "$build" --output-on-failure -R '^(openssl|engine)_'
