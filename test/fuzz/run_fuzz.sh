#!/usr/bin/env bash
# run_fuzz.sh: builds Atoll's libFuzzer targets with clang into ./build-fuzz
# and runs each on its committed corpus (test/fuzz/corpus/<target>/).
#
#   bash test/fuzz/run_fuzz.sh                   # CI: 15 s per target
#   bash test/fuzz/run_fuzz.sh --seconds 600     # longer
#   bash test/fuzz/run_fuzz.sh --runs 10000000   # a number of executions per target
#   bash test/fuzz/run_fuzz.sh --target fuzz_endpoint --merge
#
# Options:
#   --seconds S      run each target for S seconds (default 15)
#   --runs N         run each target for N executions instead
#   --target NAME    only this target (repeatable)
#   --build-dir DIR  build directory (default build-fuzz)
#   --merge          add the inputs that reach new coverage to the committed
#                    corpus (libFuzzer -merge=1), to commit them
#   -- ARGS...       pass the remaining arguments to libFuzzer
#
# New inputs found during a run go to DIR/found/<target>/, never into the
# committed corpus unless --merge. Exits non-zero if a target finds anything
# (crash, sanitizer report, broken invariant, leak, timeout); the input is
# saved under DIR/artifacts/ and the command to reproduce it is printed.
# A run a signal cut short (no finding) is labelled INTERRUPTED: exit 2.
# Prints, per target: executions, seconds, exec/s, coverage (cov: edges,
# ft: features), corpus size and peak memory.
set -euo pipefail

cd "$(dirname "$0")/../.."
build="build-fuzz"
seconds=15
runs=
targets=()
merge=0
extra=()
while (($#)); do
  case $1 in
    --seconds) seconds=$2; runs=; shift ;;
    --runs) runs=$2; shift ;;
    --target) targets+=("$2"); shift ;;
    --build-dir) build=$2; shift ;;
    --merge) merge=1 ;;
    --) shift; extra=("$@"); break ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "run_fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
((${#targets[@]})) || targets=(fuzz_endpoint fuzz_http_head fuzz_output_queue fuzz_proxy_protocol
  fuzz_dns_answer fuzz_starttls_lines fuzz_rate_limiter fuzz_dhcp_message fuzz_example_options)

echo "== building the fuzz targets with clang into $build"
generator=()
command -v ninja > /dev/null && [[ ! -f $build/CMakeCache.txt ]] && generator=(-G Ninja)
cmake -S test/fuzz -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" \
  > "$build.configure.log" 2>&1 || { cat "$build.configure.log"; exit 1; }
rm -f "$build.configure.log"
cmake --build "$build" --parallel "${FUZZ_JOBS:-2}" --target "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1:suppressions=$PWD/test/sanitizers/ubsan.supp}

# Longest input per target: HTTP heads must be able to exceed the 8 KiB limit.
max_len() {
  case $1 in
    fuzz_http_head | fuzz_starttls_lines) echo 12288 ;;
    fuzz_example_options) echo 1024 ;;
    *) echo 4096 ;;
  esac
}

# The value of libFuzzer's final statistic `stat::$2` in log $1.
stat_of() {
  grep -E "^stat::$2:" "$1" | awk '{print $2}' || true
}

# Number of files in directory $1.
count_files() {
  find "$1" -maxdepth 1 -type f | wc -l
}

mkdir -p "$build/artifacts" "$build/logs"
if [[ -n $runs ]]; then limit=(-runs="$runs"); what="$runs executions"
else limit=(-max_total_time="$seconds"); what="$seconds s"; fi
failed=()
interrupted=()
summary=()
# libFuzzer's exit status when a signal (SIGINT, SIGTERM) ends a run early
# (its default; clang 14's libFuzzer has no flag to set it): no finding,
# just a run cut short.
interrupted_exit=72
for t in "${targets[@]}"; do
  corpus=test/fuzz/corpus/$t
  found=$build/found/$t
  log=$build/logs/$t.log
  mkdir -p "$corpus" "$found"
  echo "== $t: $what on $corpus ($(count_files "$corpus") files)"
  status=0
  "$build/$t" "$found" "$corpus" "${limit[@]}" -max_len="$(max_len "$t")" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" \
    "${extra[@]}" > "$log" 2>&1 || status=$?
  done_line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -1 || true)
  execs=$(stat_of "$log" number_of_executed_units)
  rate=$(stat_of "$log" average_exec_per_sec)
  rss=$(stat_of "$log" peak_rss_mb)
  secs=$(grep -E '^Done [0-9]+ runs in' "$log" | awk '{print $5}' || true)
  cov=$(sed -nE 's/.* cov: ([0-9]+) .*/\1/p' <<< "$done_line")
  ft=$(sed -nE 's/.* ft: ([0-9]+) .*/\1/p' <<< "$done_line")
  corp=$(sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*) .*/\1/p' <<< "$done_line")
  verdict=""
  # Slow units (written under load, not failures) do not count as findings.
  if ((status == interrupted_exit)) && grep -q 'run interrupted' "$log" \
    && ! grep 'Test unit written' "$log" | grep -qv 'slow-unit-'; then
    verdict=INTERRUPTED
    interrupted+=("$t")
    echo "!! $t was interrupted (a signal, exit $status) before its limit: no finding"
  elif ((status != 0)); then
    verdict=FAILED
    failed+=("$t")
    echo "!! $t FAILED (exit $status):"
    grep -E 'invariant violated|ERROR:|SUMMARY:|runtime error|Test unit written|interrupted' \
      "$log" | head -20 || true
    artifact=$(sed -nE 's/.*Test unit written to ([^ ]+).*/\1/p' "$log" | tail -1)
    if [[ -n $artifact ]]; then echo "   reproduce: $build/$t $artifact"; fi
    echo "   full log: $log"
  fi
  line=$(printf '%-18s %12s execs %6s s %8s exec/s  cov: %-5s ft: %-6s corpus: %-12s rss: %s MB' \
    "$t" "${execs:-?}" "${secs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}")
  echo "$line"
  summary+=("$line${verdict:+  $verdict}")
  if ((merge && status == 0)); then
    before=$(count_files "$corpus")
    "$build/$t" -merge=1 -max_len="$(max_len "$t")" "$corpus" "$found" > "$build/logs/$t.merge.log" 2>&1
    echo "   merged: $corpus has $(count_files "$corpus") files (was $before)"
  fi
done

echo "== summary ($what per target)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
  echo "!! findings in: ${failed[*]}"
  exit 1
fi
if ((${#interrupted[@]})); then
  echo "!! interrupted before the limit (no findings): ${interrupted[*]}"
  exit 2
fi
echo "== no findings"
