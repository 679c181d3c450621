#!/usr/bin/env bash
# Runs bench/keyfetch against two kme-sim KMEs on 127.0.0.1.
# Usage: bash bench/run-keyfetch.sh [BUILD_DIR] [N]   (build/release, 200)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build/release}
n=${2:-200}
work=$(mktemp -d /tmp/keyfetch.XXXXXX)
. tests/lib/kme-env.sh
trap 'kme_env_stop; rm -rf "$work"' EXIT
kme_env_start "$work" "$build/tests/kme-sim/kme-sim" tests/kme-sim/kme-sim-pki \
	--pool-size $((4 * n + 100))
"$build/bench/keyfetch" -n "$n" "$work/west.conf" "$work/east.conf"
