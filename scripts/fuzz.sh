#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang + ASan + UBSan) and runs each for a bounded time from
# its committed seed corpus. Usage: bash scripts/fuzz.sh [seconds per target, default 30]
# Longer runs: build/fuzz/fuzz_npy -max_total_time=3600 fuzz/corpus/npy   (any target the same way)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
if ! command -v clang++ >/dev/null 2>&1 || [ ! -e /usr/lib/llvm-14/lib/clang/14.0.6/lib/linux/libclang_rt.fuzzer-x86_64.a ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq clang libclang-rt-14-dev >/dev/null
fi
CXX=clang++ cmake -S fuzz -B build/fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
cmake --build build/fuzz -j "$(nproc)"
status=0
for bin in build/fuzz/fuzz_*; do
  name=$(basename "$bin"); short=${name#fuzz_}
  case $short in index_load) short=index ;; esac  # seeds: build/fuzz/make_index_seeds fuzz/corpus/index
  corpus="fuzz/corpus/$short"
  mkdir -p "$corpus"
  work=$(mktemp -d)
  if "$bin" -artifact_prefix="$work/" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work" "$corpus" >"$work.log" 2>&1; then
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$work.log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz $name: ok, $execs executions in ${secs}s, no finding"
  else
    echo "fuzz $name: FINDING"; tail -40 "$work.log"; mkdir -p build/fuzz/findings; cp "$work"/crash-* "$work"/leak-* "$work"/timeout-* build/fuzz/findings/ 2>/dev/null || true; status=1
  fi
  rm -rf "$work" "$work.log"
done
exit $status
