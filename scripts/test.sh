#!/usr/bin/env bash
# Builds kmstore and runs every test: the release build, an ASan+UBSan
# build, the OpenSSL faces against OpenSSL 3.5, 3.6 and 4.0 (each built
# once into a cache), and the libFuzzer targets for a bounded time.
# Usage: bash scripts/test.sh [BUILD_ROOT]   (default: ./build)
set -euo pipefail
cd "$(dirname "$0")/.."
root=${1:-build}
jobs=$(nproc)

bash scripts/deps.sh

section() { printf '\n==== %s ====\n' "$*"; }

section "build and test (RelWithDebInfo)"
cmake -S . -B "$root/release" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$root/release" -j "$jobs"
ctest --test-dir "$root/release" --output-on-failure -j "$jobs"

section "build and test (ASan + UBSan)"
cmake -S . -B "$root/asan" -DCMAKE_BUILD_TYPE=Debug -DKMSTORE_SANITIZE=ON >/dev/null
cmake --build "$root/asan" -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	ctest --test-dir "$root/asan" --output-on-failure -j "$jobs"

# Each built once from Debian's sources into /var/cache/kmstore.
for v in 3.5 3.6 4.0; do
	section "OpenSSL provider and engine against OpenSSL $v"
	bash scripts/openssl-test.sh "$v" "$root/openssl-$v"
done

section "fuzz targets (bounded runs)"
# fuzz_ppk_id compiles the libreswan series' PPK_ID check from the tree the
# release build's IKE tests patched (none when they were skipped)
ls_src=$(cd "$root" && pwd)/release/libreswan/src
[[ -f $ls_src/lib/libswan/ppk_uri_ppk_id.c ]] || ls_src=
CC=clang cmake -S . -B "$root/fuzz" -DCMAKE_BUILD_TYPE=Debug -DKMSTORE_FUZZ=ON \
	-DKMSTORE_LIBRESWAN_SRC="$ls_src" >/dev/null
cmake --build "$root/fuzz" -j "$jobs"
ctest --test-dir "$root/fuzz" --output-on-failure -R '^fuzz_'
