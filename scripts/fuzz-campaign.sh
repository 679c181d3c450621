#!/usr/bin/env bash
# A long, repeatable libFuzzer campaign with coverage figures, for the
# security report. scripts/test.sh runs the fuzz targets for 20 s each as a
# smoke test; this runs them for as long as asked, one after another on one
# core, keeps each corpus between runs (so a campaign can be continued), and
# measures how much of each parser the final corpus reaches.
#
# Usage: bash scripts/fuzz-campaign.sh [-t SECONDS_PER_TARGET] [-o OUTDIR] [TARGET...]
#   -t  seconds of fuzzing per target (default 600)
#   -o  output directory (default build/fuzz-campaign)
#   TARGET  config, uri, ... or fuzz_config, ... (default: every fuzz_*
#           executable in the fuzz build, fuzz_ppk_id included when
#           KMSTORE_LIBRESWAN_SRC names a patched libreswan tree)
# Run it niced on a shared machine: nice -n 10 bash scripts/fuzz-campaign.sh
# It needs what scripts/deps.sh installs (clang, llvm-14's llvm-profdata and
# llvm-cov, jq); JOBS sets the build's parallelism [2].
#
# OUTDIR/build       the fuzz build (ASan + UBSan + libFuzzer), as test.sh
# OUTDIR/build-cov   the same with clang source-based coverage on top
# OUTDIR/corpus/T    T's corpus: the seeds, then what the fuzzer kept
# OUTDIR/artifacts/T crash-*, leak-*, timeout-*, oom-* inputs
# OUTDIR/T.log       the fuzzer's output; OUTDIR/coverage/T.txt llvm-cov's
# OUTDIR/summary.md  the table printed at the end
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
secs=600
out=build/fuzz-campaign
while getopts 't:o:h' opt; do
	case $opt in
	t) secs=$OPTARG ;;
	o) out=$OPTARG ;;
	*) sed -n 's/^# \{0,1\}//; 8,16p' "$0" >&2; exit 2 ;;
	esac
done
shift $((OPTIND - 1))
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=${JOBS:-2}
export CC=${CC:-clang}

section() { printf '\n==== %s ====\n' "$*"; }

# configure DIR [CMAKE_ARGS...]: only when DIR has no cache yet, or
# KMSTORE_LIBRESWAN_SRC differs from the one it was configured with.
configure() {
	local dir=$1 lsrc=()
	shift
	[ -n "${KMSTORE_LIBRESWAN_SRC:-}" ] &&
		lsrc=(-DKMSTORE_LIBRESWAN_SRC="$KMSTORE_LIBRESWAN_SRC")
	if [ -f "$dir/CMakeCache.txt" ] &&
		{ [ -z "${KMSTORE_LIBRESWAN_SRC:-}" ] ||
			grep -qxF "KMSTORE_LIBRESWAN_SRC:UNINITIALIZED=$KMSTORE_LIBRESWAN_SRC" "$dir/CMakeCache.txt" ||
			grep -qxF "KMSTORE_LIBRESWAN_SRC:PATH=$KMSTORE_LIBRESWAN_SRC" "$dir/CMakeCache.txt"; }; then
		return
	fi
	cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Debug -DKMSTORE_FUZZ=ON \
		"${lsrc[@]}" "$@" >/dev/null
}

# The fuzz_* executables a build holds, by name (fuzz_config ...).
built_targets() {
	find "$1" -path '*/CMakeFiles' -prune -o -type f -name 'fuzz_*' \
		-perm -u+x -printf '%f\n' | sort -u
}

exe() { find "$1" -path '*/CMakeFiles' -prune -o -type f -name "fuzz_$2" -perm -u+x -print | head -n1; }

# The llvm tools of clang's own version (Debian: llvm-N, with clang-N).
llvm_tool() {
	local major
	major=$("$CC" --version | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
	if command -v "$1-$major" >/dev/null; then
		echo "$1-$major"
	elif command -v "$1" >/dev/null && "$1" --version | grep -q "LLVM version $major\."; then
		echo "$1"
	else
		echo "fuzz-campaign: no $1 for clang $major (Debian: apt-get install llvm-$major)" >&2
		exit 1
	fi
}

# The source files whose coverage stands for target T's parser.
parser_files() {
	case $1 in
	config) echo "$src/kmstore/src/store.c" ;;
	uri) echo "$src/kmstore/src/uri.c" ;;
	base64) echo "$src/kmstore/src/encoding.c" ;;
	etsi_json) echo "$src/kmstore/src/etsi014_json.c" ;;
	daemon_request | daemon_reply) echo "$src/kmstore/src/wire.c" ;;
	pkcs11_template) ls "$src"/provider/pkcs11/*.c ;;
	ppk_id) # whatever the target compiles from the libreswan tree
		[ -n "${KMSTORE_LIBRESWAN_SRC:-}" ] &&
			covered_files "$1" | grep -F -e "${KMSTORE_LIBRESWAN_SRC%/}/" \
				-e "$(cd "$KMSTORE_LIBRESWAN_SRC" && pwd -P)/" | grep '\.c$' ;;
	*) covered_files "$1" | grep -v -e '/tests/fuzz/' -e '^/usr/' ;;
	esac
}

# Every source file in T's coverage mapping, by absolute path.
covered_files() {
	"$llvm_cov" export -summary-only "${cov_objects[@]}" \
		-instr-profile="$out/coverage/$1.profdata" | jq -r '.data[0].files[].filename'
}

# fuzz T: runs the target for $secs seconds on its corpus; prints
# "seconds executions exec/s cov ft corpus-files crashes".
fuzz() {
	local t=$1 bin corpus=$out/corpus/$1 art=$out/artifacts/$1 log=$out/$1.log
	local start rc=0 elapsed execs eps cov ft files crashes
	bin=$(exe "$out/build" "$t")
	mkdir -p "$corpus" "$art"
	[ -d "$src/tests/fuzz/corpus/$t" ] && cp -n "$src/tests/fuzz/corpus/$t"/* "$corpus"/
	touch "$art/.stamp"
	start=$(date +%s)
	"$bin" -max_total_time="$secs" -timeout=5 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$art/" "$corpus" >"$log" 2>&1 || rc=$?
	elapsed=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	cov=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n1 | awk '{ print $2 }')
	ft=$(grep -o 'cov: [0-9]* ft: [0-9]*' "$log" | tail -n1 | awk '{ print $4 }')
	files=$(find "$corpus" -type f | wc -l)
	crashes=$(find "$art" -type f -newer "$art/.stamp" \
		\( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) \
		-printf '%f\n' | sed 's/-.*//' | sort | uniq -c | awk '{ printf "%s%s %s", s, $1, $2; s = ", " }')
	[ -z "$crashes" ] && [ "$rc" -ne 0 ] && crashes="exit $rc, no artifact"
	echo "$elapsed ${execs:--} ${eps:--} ${cov:--} ${ft:--} $files ${crashes:-none}"
}

# coverage T: runs the coverage build of T once over its corpus, merges the
# profiles and writes llvm-cov's report of T's parser files; prints
# "lines% regions%" over those files.
coverage() {
	local t=$1 bin dir=$out/coverage/$1 files
	bin=$(exe "$out/build-cov" "$t")
	rm -rf "$dir" && mkdir -p "$dir"
	# %m: one file per instrumented module (the PKCS#11 module and
	# libkmstore.so have their own profile runtime beside the program's).
	ASAN_OPTIONS=detect_leaks=0 LLVM_PROFILE_FILE="$dir/%p-%m.profraw" \
		"$bin" -runs=0 -timeout=5 -rss_limit_mb=2048 -detect_leaks=0 \
		"$out/corpus/$t" >"$dir/run.log" 2>&1 || echo "fuzz-campaign: $t: coverage run failed, see $dir/run.log" >&2
	"$llvm_profdata" merge -sparse "$dir"/*.profraw -o "$dir.profdata"
	cov_objects=("$bin")
	for so in "$out"/build-cov/provider/pkcs11/kmstore-pkcs11.so "$out"/build-cov/kmstore/libkmstore.so; do
		[ -f "$so" ] && cov_objects+=(-object "$so")
	done
	mapfile -t files < <(parser_files "$t")
	: >"$dir.files.md"
	if ((${#files[@]} == 0)); then
		echo "- -"
		return
	fi
	"$llvm_cov" report "${cov_objects[@]}" -instr-profile="$dir.profdata" \
		"${files[@]}" >"$dir.txt"
	"$llvm_cov" export -summary-only "${cov_objects[@]}" \
		-instr-profile="$dir.profdata" "${files[@]}" >"$dir.json"
	# Per file, for the summary; then the total over T's parser files.
	jq -r --arg t "$t" --arg src "$src/" '.data[0].files[] |
		"| \($t) | \(.filename | ltrimstr($src)) | \(.summary.lines.percent * 100 | round / 100) | \(.summary.regions.percent * 100 | round / 100) |"' \
		"$dir.json" >"$dir.files.md"
	jq -r '.data[0].totals | "\(.lines.percent * 100 | round / 100) \(.regions.percent * 100 | round / 100)"' "$dir.json"
}

section "fuzz build ($out/build)"
# The tree as built (a shared tree may move on while the campaign runs).
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- 2>/dev/null || rev+=+dirty
configure "$out/build"
cmake --build "$out/build" -j "$jobs"

if (($# == 0)); then
	mapfile -t targets < <(built_targets "$out/build" | sed 's/^fuzz_//')
else
	targets=("${@#fuzz_}")
fi
for t in "${targets[@]}"; do
	[ -n "$(exe "$out/build" "$t")" ] || { echo "fuzz-campaign: no fuzz_$t in $out/build" >&2; exit 1; }
done

section "coverage build ($out/build-cov)"
# The top-level CMakeLists adds -fsanitize=fuzzer-no-link,address,undefined
# after CMAKE_C_FLAGS, so the coverage build keeps the sanitizers; source-
# based coverage works beside them, and the line counts are the same.
configure "$out/build-cov" \
	-DCMAKE_C_FLAGS="-fprofile-instr-generate -fcoverage-mapping" \
	-DCMAKE_EXE_LINKER_FLAGS="-fprofile-instr-generate" \
	-DCMAKE_SHARED_LINKER_FLAGS="-fprofile-instr-generate" \
	-DCMAKE_MODULE_LINKER_FLAGS="-fprofile-instr-generate"
cov_build=("${targets[@]/#/fuzz_}")
[[ " ${targets[*]} " == *" pkcs11_template "* ]] && cov_build+=(kmstore-pkcs11)
cmake --build "$out/build-cov" -j "$jobs" --target "${cov_build[@]}"
llvm_profdata=$(llvm_tool llvm-profdata)
llvm_cov=$(llvm_tool llvm-cov)

rows=()
for t in "${targets[@]}"; do
	section "fuzz_$t: ${secs}s"
	read -r elapsed execs eps cov ft files crashes < <(fuzz "$t")
	echo "$elapsed s, $execs runs, $eps exec/s, cov $cov ft $ft, $files files, crashes: $crashes"
	read -r lines regions < <(coverage "$t")
	echo "parser coverage: lines $lines %, regions $regions % ($out/coverage/$t.txt)"
	rows+=("| $t | $elapsed | $execs | $eps | $cov | $ft | $files | $lines (regions $regions) | $crashes |")
done

section "summary ($out/summary.md)"
{
	echo "Fuzz campaign $(date -u +%Y-%m-%dT%H:%MZ), ${secs}s per target, source $rev, $("$CC" --version | head -n1)"
	echo
	echo "| target | seconds | executions | exec/s | cov (edges) | ft | corpus files | parser file line coverage % | crashes |"
	echo "|---|---|---|---|---|---|---|---|---|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "Line and region coverage (%) of each target's parser files, by its final corpus"
	echo "(the table above gives the total over a target's files; llvm-cov report in coverage/<target>.txt):"
	echo
	echo "| target | file | lines % | regions % |"
	echo "|---|---|---|---|"
	for t in "${targets[@]}"; do cat "$out/coverage/$t.files.md"; done
} | tee "$out/summary.md"
