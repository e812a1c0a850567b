#!/bin/bash
# A libFuzzer target of the native module (fuzz/TARGET_fuzzer.cc), built with clang-14 and
# -fsanitize=fuzzer,address,undefined (installed from Debian if missing), run for --runs N executions
# or --time SECONDS (default 30 s) from --seed S (default 1) over the committed corpus, then every
# saved crash input once as a regression test. New inputs go to a scratch corpus, not the committed
# one (`--keep` adds them to fuzz/corpus/TARGET, minimized with -merge=1). A crash input is saved in
# fuzz/crashes/TARGET/ (commit it, with the fix). The last line is the summary scripts/fuzz.mjs prints.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [--runs N | --time SECONDS] [--seed S] [--keep]}
shift
runs=""; time=30; seed=1; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --time) time=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "fuzz: unknown argument $1" >&2; exit 2 ;;
  esac
done
src=fuzz/${target}_fuzzer.cc
[ -f "$src" ] || { echo "fuzz: no native target $target ($src)" >&2; exit 2; }

if ! command -v clang++-14 >/dev/null || ! [ -n "$(ls /usr/lib/llvm-14/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a 2>/dev/null)" ]; then
  echo "fuzz: installing clang-14 and libclang-rt-14-dev (libFuzzer, ASan, UBSan) from Debian"
  [ "$(id -u)" = 0 ] || { echo "fuzz: needs root to apt-get install clang-14 libclang-rt-14-dev" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null \
    || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev >/dev/null; }
fi

out=build-fuzz
mkdir -p "$out" "fuzz/corpus/$target" "fuzz/crashes/$target"
bin=$out/${target}_fuzzer
# The target's own sources: what it includes from src/, plus their .cc files.
sources=$(sed -n 's|^#include "\.\./src/\(.*\)\.h"|src/\1.cc|p' "$src" | while read -r f; do if [ -f "$f" ]; then echo "$f"; fi; done)
case "$target" in ring) sources="$sources src/iavf/crc32c.cc" ;; esac
if [ ! -x "$bin" ] || [ -n "$(find "$src" $sources src -name '*.[ch]*' -newer "$bin" 2>/dev/null)" ]; then
  echo "fuzz: building $bin"
  clang++-14 -std=c++17 -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined \
    -fno-sanitize-recover=all -Isrc -o "$bin" "$src" $sources
fi

scratch=$(mktemp -d /tmp/emu-fuzz-$target.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
limit=(-max_total_time="$time")
[ -n "$runs" ] && limit=(-runs="$runs")
export ASAN_OPTIONS=abort_on_error=1:detect_leaks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
started=$(date +%s.%N)
"./$bin" "${limit[@]}" -seed="$seed" -print_final_stats=1 -max_len=70000 \
  -artifact_prefix="fuzz/crashes/$target/" "$scratch" "fuzz/corpus/$target" 2>"$scratch.log" \
  || { tail -60 "$scratch.log"; echo "fuzz: $target FAILED: the input is in fuzz/crashes/$target/" >&2; rm -f "$scratch.log"; exit 1; }
ended=$(date +%s.%N)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$scratch.log")
cov=$(grep -o 'cov: [0-9]*' "$scratch.log" | tail -1 | cut -d' ' -f2)
rm -f "$scratch.log"
if [ "$keep" = 1 ]; then
  "./$bin" -merge=1 "fuzz/corpus/$target" "$scratch" 2>/dev/null
fi
# Every saved crash input, once: each is a regression test.
crashes=(fuzz/crashes/$target/*)
if [ -e "${crashes[0]}" ]; then
  "./$bin" "${crashes[@]}" >/dev/null 2>&1 || { echo "fuzz: $target: a saved crash input crashes again" >&2; exit 1; }
fi
n=$( [ -e "${crashes[0]}" ] && echo ${#crashes[@]} || echo 0)
awk -v t="$target" -v e="$execs" -v c="${cov:-?}" -v s="$started" -v f="$ended" -v n="$n" \
  'BEGIN { d = f - s; printf "fuzz: %s: %d execs in %.1f s (%d/s), coverage %s edges, 0 crashes, %d saved crash inputs replayed\n", t, e, d, e / d, c, n }'
