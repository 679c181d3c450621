#!/usr/bin/env bash
# Runs bench/keyfetch against two kme-sim KMEs on 127.0.0.1: libkmstore and
# the OpenSSL provider (one thread and THREADS), and curl.
# Usage: bash bench/run-keyfetch.sh [BUILD_DIR] [N] [THREADS] [TURNS]
#        (build/release, 500, 4, 15: half a minute)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
n=${2:-500}
threads=${3:-4}
runs=${4:-15}
work=$(mktemp -d /tmp/keyfetch.XXXXXX)
. tests/lib/kme-env.sh
trap 'kme_env_stop; rm -rf "$work"' EXIT
# Each turn takes n keys per thread and face; curl 2n at most; the warm-up
# and the static line few.
kme_env_start "$work" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki \
	--pool-size $((runs * (1 + threads) * 2 * n + 2 * n + 100))
# One configuration: west's and east's QKD profiles, and the static one.
kme_env_both_sites "$work/keyfetch.conf" static
# For the first seconds after a configuration is written the provider reads
# it again at each open (kms_store_cache: a coarse clock could hide a second
# write); measure the steady state, as a deployment sees it.
sleep 3
"$build/bench/keyfetch" -n "$n" -j "$threads" -r "$runs" \
	-p "$build/provider/openssl" "$work/keyfetch.conf"
