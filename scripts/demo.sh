#!/usr/bin/env bash
# The main job: a live demonstration of kmstore on this machine.
#
# Two sites, west and east, each with its own kmstore.conf and its own KME
# (kme-sim, ETSI GS QKD 014 over HTTPS with mutual TLS on 127.0.0.1). West
# asks its KME for a new key, as an IKE initiator does; east retrieves the
# same key from its KME by the key ID west would send as the PPK_ID; both
# print the key check value, which matches, while the key stays secret.
# Usage: bash scripts/demo.sh [BUILD_DIR]   (default: build/release)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
build=${1:-build/release}

bash scripts/deps.sh
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j "$(nproc)" >/dev/null

kmstore=$top/$build/kmstore/kmstore
kmesim=$top/$build/tests/kme-sim/kme-sim
work=$(mktemp -d /tmp/kmstore-demo.XXXXXX)
. tests/lib/kme-env.sh
trap 'kme_env_stop; rm -rf "$work"' EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "A test PKI and two KMEs joined by a simulated QKD link"
kme_env_start "$work" "$kmesim" "$top/tests/kme-sim/kme-sim-pki" --pool-size 100
cat "$work/ready"

step "West's configuration"
sed -n '1,20p' "$work/west.conf"

step "Both sites validate their configuration"
run "$kmstore" --config "$work/west.conf" check
run "$kmstore" --config "$work/east.conf" check

step "The profiles each site has"
run "$kmstore" --config "$work/west.conf" profiles

step "West asks KME_A about the link to SAE_B"
run "$kmstore" --config "$work/west.conf" status qkd

step "West (initiator) gets a new key: enc_keys at KME_A"
"$kmstore" --config "$work/west.conf" --json key qkd >"$work/west.json"
cat "$work/west.json"
id=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key_id"])' "$work/west.json")
west_kcv=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["check_value"])' "$work/west.json")

step "East (responder) gets the key with that ID: dec_keys at KME_B"
run "$kmstore" --config "$work/east.conf" key "kmstore:profile=qkd;key-id=$id" | tee "$work/east.txt"
east_kcv=$(awk '$1 == "check-value" { print $2 }' "$work/east.txt")

step "Check values"
echo "west $west_kcv  east $east_kcv"
if [ "$west_kcv" != "$east_kcv" ]; then
	echo "MISMATCH: the two sites hold different keys" >&2
	exit 1
fi
echo "match: both sites hold the same 256-bit key, which was never printed"

step "A QKD key is delivered once: a second dec_keys for it is refused"
if "$kmstore" --config "$work/east.conf" key qkd --key-id "$id"; then
	echo "unexpected: the key was delivered twice" >&2
	exit 1
fi

step "The static profile: the same key ID and key on both sites"
run "$kmstore" --config "$work/west.conf" key static
run "$kmstore" --config "$work/east.conf" key "kmstore:profile=static;key-id=STATIC_PPK_1"

step "Done"
echo "kmstore $("$kmstore" --version | cut -d' ' -f2): static and QKD PPKs served, keys matched by check value."
