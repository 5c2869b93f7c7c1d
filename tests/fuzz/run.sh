#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] [HARNESS...]: builds the fuzz harnesses with clang-14 + libFuzzer +
# ASan/UBSan (everything instrumented: -fsanitize=fuzzer-no-link,address,undefined) in
# $FUZZ_BUILD (default build-fuzz) and runs each for SECONDS (default 60), starting from the
# committed seed corpus tests/fuzz/corpus/<harness>/ (new inputs go to $FUZZ_BUILD/corpus/,
# crashes to $FUZZ_BUILD/artifacts/). Exits non-zero on the first crash, leak, sanitizer report
# or timeout (>10 s per input). CI: `tests/fuzz/run.sh 60` (about 4 min plus the build);
# packages clang-14 and libclang-rt-14-dev (libFuzzer).
set -euo pipefail
SECS=${1:-60}
[ $# -gt 0 ] && shift
SRC=$(cd "$(dirname "$0")/../.." && pwd)
B=${FUZZ_BUILD:-$SRC/build-fuzz}
HARNESSES=("$@")
[ ${#HARNESSES[@]} -gt 0 ] || HARNESSES=(fuzz_downstream fuzz_h1_server fuzz_config fuzz_upstream_h1 fuzz_upstream_h2w
    fuzz_mem fuzz_h2_frame fuzz_h2_session)
CC=${FUZZ_CC:-clang-14}
command -v "$CC" >/dev/null || { echo "run.sh: $CC not found (apt-get install clang-14)"; exit 2; }

mkdir -p "$B"
cmake -S "$SRC" -B "$B" -DCMAKE_C_COMPILER="$CC" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DPX_FUZZ_LIBFUZZER=ON -DPX_BUILD_BENCH=OFF -DPX_WERROR=OFF \
    -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -fsanitize-ignorelist=$SRC/tests/fuzz/ubsan-ignorelist.txt" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >"$B/fuzz-cmake.log" 2>&1 ||
    { tail -n 30 "$B/fuzz-cmake.log"; exit 2; }
cmake --build "$B" -j"${JOBS:-2}" --target "${HARNESSES[@]}" >"$B/fuzz-build.log" 2>&1 ||
    { grep -E 'error' "$B/fuzz-build.log" | head -n 30; exit 2; }

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
rc=0
for h in "${HARNESSES[@]}"; do
    mkdir -p "$B/corpus/$h" "$B/artifacts/$h"
    echo "== $h: ${SECS}s"
    if "$B/$h" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$B/artifacts/$h/" "$B/corpus/$h" "$SRC/tests/fuzz/corpus/$h" \
        >"$B/$h.log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^stat::new_units_added|^stat::peak_rss_mb' \
            "$B/$h.log" | tr '\n' ' '
        echo
        echo "ok   $h"
    else
        tail -n 40 "$B/$h.log"
        echo "FAIL $h (artifacts in $B/artifacts/$h/)"
        rc=1
    fi
done
exit $rc
