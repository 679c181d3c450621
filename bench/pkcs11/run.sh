#!/usr/bin/env bash
# Runs the PKCS#11 benchmark: keys/s for "a key for use now" + "that key by
# ID", through NSS and the module vs through libkmstore directly, for a
# static profile and (when kme-sim is built) a QKD link between two KMEs
# on 127.0.0.1.
# Usage: bash bench/pkcs11/run.sh [BUILD_DIR] [ROUNDS]   (build/release, 2000)
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$PWD
build=${1:-build/release}
rounds=${2:-2000}
case $build in /*) ;; *) build=$top/$build ;; esac
module=$build/provider/pkcs11/kmstore-pkcs11.so
bench=$build/bench/pkcs11/pkcs11-bench
kmesim=$build/tests/kme-sim/kme-sim
for f in "$module" "$bench"; do
	[ -x "$f" ] || [ -f "$f" ] || { echo "run.sh: $f not built" >&2; exit 1; }
done

work=$(mktemp -d /tmp/kmstore-pkcs11-bench.XXXXXX)
. tests/lib/kme-env.sh
trap 'kme_env_stop; rm -rf "$work"' EXIT
conf=$work/bench.conf

head -c 32 /dev/urandom >"$work/static.key"
chmod 600 "$work/static.key"
cat >"$conf" <<EOF
[static]
type   = static
key-id = STATIC_PPK_1
key    = file:$work/static.key
EOF

qkd=no
if [ -x "$kmesim" ] && kme_env_start "$work/lab" "$kmesim" \
	tests/kme-sim/kme-sim-pki --quiet >/dev/null 2>&1; then
	qkd=yes
	# Both ends of the link in one configuration: generated at KME_A for
	# SAE_A, found by ID at KME_B for SAE_B.
	for end in west:KME_A_URL:sae-a:SAE_A:SAE_B east:KME_B_URL:sae-b:SAE_B:SAE_A; do
		IFS=: read -r name url cert local peer <<<"$end"
		cat >>"$conf" <<EOF

[qkd-$name]
type         = qkd
url          = ${!url}
local-sae-id = $local
peer-sae-id  = $peer
certificate  = $KME_DIR/pki/$cert.crt
private-key  = $KME_DIR/pki/$cert.key
ca           = $KME_DIR/pki/ca.crt
key-size     = 256
timeout      = 5
EOF
	done
fi
chmod 600 "$conf"

mkdir "$work/db"
certutil -N -d "sql:$work/db" --empty-password
echo | modutil -dbdir "sql:$work/db" -add kmstore -libfile "$module" \
	-string "config=$conf" -force >/dev/null

echo "one round = a key for use now + that key found by its ID (values compared);"
echo "ratio = NSS+module keys/s / libkmstore keys/s; us CPU: this process's CPU per"
echo "round (kme-sim's apart). Static: the module serves the search from the key it"
echo "holds, libkmstore reads the key file both times."
${PKCS11_BENCH_WRAPPER:-} "$bench" "$work/db" "$conf" static static "$rounds"
if [ "$qkd" = yes ]; then
	${PKCS11_BENCH_WRAPPER:-} "$bench" "$work/db" "$conf" qkd-west qkd-east "$((rounds / 4))"
else
	echo "qkd: kme-sim not built ($kmesim): skipped"
fi
