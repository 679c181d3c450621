#!/usr/bin/env bash
# Installs the Debian 12 packages that kmstore's build, tests and demo use
# (the last line: libreswan's namespace test runner, for
# libreswan-patches/testing/run.sh).
# Idempotent: asks apt only for what is missing.
set -euo pipefail

packages=(
	build-essential cmake pkgconf clang libclang-rt-14-dev llvm-14
	libssl-dev openssl libcurl4-openssl-dev curl libjson-c-dev
	libmicrohttpd-dev libgnutls28-dev libcmocka-dev libsystemd-dev
	python3 valgrind perl gpgv xz-utils ca-certificates
	libnss3-dev libnss3-tools libp11-kit-dev p11-kit p11-kit-modules
	opensc gnutls-bin jq groff-base man-db strace
	libc-ares-dev python3-dnspython libnghttp2-dev
	sudo python3-pexpect iptables iputils-ping diffstat gawk
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if ((${#missing[@]})); then
	echo "deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
