#!/usr/bin/env bash
# run_udp_bench.sh: benchmarks Atoll's UDP echo server against
# atoll_udp_baseline_echo (the raw epoll reference) with atoll_udp_loadgen,
# and prints medians and per-round ratios as markdown tables. See README.md in
# this folder ("UDP").
#
# Workloads (closed loop, each echo triggers the next datagram):
#   p1   1 socket,   window 1, 64 B
#   p50  50 sockets, window 1, 64 B
#   w50  50 sockets, window 8, 512 B
# Both servers are started once and stay up for all rounds. In each round
# every workload runs against both servers back to back, in alternating
# order (round 1: baseline then Atoll, round 2: Atoll then baseline, ...), so
# slow drifts of the machine's load hit both alike.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [options]

Options:
  --atoll "CMD"      UDP echo server to compare with the baseline; it must print
                     'listening on HOST:PORT' on stdout when ready.
                     Default: "BUILD_DIR/examples/udp_echo --port 0 --host 127.0.0.1 --num-listeners 2 --recbuf 4194304 --sndbuf 4194304"
  --baseline "CMD"   Reference server
                     (default: "BUILD_DIR/test/bench/atoll_udp_baseline_echo --port 0 --host 127.0.0.1")
  --build-dir DIR    Build directory with test/bench/atoll_udp_loadgen (default: build)
  --rounds N         Rounds (default 3)
  --duration S       Measured seconds per run (default 5; each run has 1 s of warm-up more)
  --only LIST        Workloads to run, comma-separated, of p1, p50, w50 (default: all)
  --loadgen-threads N
                     atoll_udp_loadgen --threads for p50 and w50 (default 1; p1
                     has a single socket, so always one thread)
  -h, --help         Show this help
EOF
}

die() {
  printf 'run_udp_bench.sh: error: %s\n' "$*" >&2
  exit 1
}

build_dir=build
rounds=3
duration=5
warmup=1
atoll_cmd=""
baseline_cmd=""
only="p1,p50,w50"
loadgen_threads=1

while (($#)); do
  case $1 in
    --atoll | --baseline | --build-dir | --rounds | --duration | --only | --loadgen-threads)
      [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value (see --help)"
      opt=$1 value=$2
      shift 2
      ;;
    --atoll=* | --baseline=* | --build-dir=* | --rounds=* | --duration=* | --only=* | \
      --loadgen-threads=*)
      opt=${1%%=*} value=${1#*=}
      shift
      ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  case $opt in
    --atoll) atoll_cmd=$value ;;
    --baseline) baseline_cmd=$value ;;
    --build-dir) build_dir=$value ;;
    --rounds) rounds=$value ;;
    --duration) duration=$value ;;
    --only) only=$value ;;
    --loadgen-threads) loadgen_threads=$value ;;
  esac
done

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
if ! [[ $loadgen_threads =~ ^[1-9][0-9]*$ ]] || ((loadgen_threads > 50)); then
  die "--loadgen-threads must be an integer from 1 to 50"
fi
if ! [[ $duration =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d > 0) }'; then
  die "--duration must be a positive number of seconds"
fi
# Workload name -> "sockets window size".
declare -A workload=([p1]="1 1 64" [p50]="50 1 64" [w50]="50 8 512")
workloads=()
for w in ${only//,/ }; do
  [[ -n ${workload[$w]:-} ]] || die "--only: unknown workload '$w' (workloads: p1, p50, w50)"
  workloads+=("$w")
done
((${#workloads[@]})) || die "--only: no workload given"

loadgen=$build_dir/test/bench/atoll_udp_loadgen
: "${baseline_cmd:=$build_dir/test/bench/atoll_udp_baseline_echo --port 0 --host 127.0.0.1}"
: "${atoll_cmd:=$build_dir/examples/udp_echo --port 0 --host 127.0.0.1 --num-listeners 2 --recbuf 4194304 --sndbuf 4194304}"
[[ -x $loadgen ]] || die "$loadgen not found; build it with:
  ninja -C $build_dir atoll_udp_loadgen atoll_udp_baseline_echo udp_echo"
for cmd in "$baseline_cmd" "$atoll_cmd"; do
  read -r -a words <<<"$cmd"
  command -v -- "${words[0]:-}" >/dev/null || die "server command '${words[0]:-}' not found"
done
command -v python3 >/dev/null || die "python3 is required"

# -- servers and clean-up -------------------------------------------------------

workdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-udp-bench.XXXXXX")
results=$workdir/results.jsonl
: >"$results"
declare -A command_of=([baseline]=$baseline_cmd [atoll]=$atoll_cmd)
declare -A server_pid=() server_host=() server_port=()
loadgen_pid=""

# Stops server $1 (SIGTERM, SIGKILL after 5 s) if it runs.
stop_server() {
  local key=$1 pid=${server_pid[$1]:-} i
  [[ -n $pid ]] || return 0
  unset "server_pid[$key]"
  kill -TERM "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "run_udp_bench.sh: warning: $key ignored SIGTERM for 5 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$? key
  trap - EXIT INT TERM
  if [[ -n $loadgen_pid ]]; then
    kill -TERM "$loadgen_pid" 2>/dev/null || true
    wait "$loadgen_pid" 2>/dev/null || true
  fi
  for key in "${!server_pid[@]}"; do
    stop_server "$key"
  done
  if ((rc == 0)); then
    rm -rf "$workdir"
  else
    echo "run_udp_bench.sh: logs kept in $workdir" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Microseconds since the epoch.
now_us() {
  echo "${EPOCHREALTIME//[!0-9]/}"
}

# Starts server $1 (baseline or atoll) and waits up to 10 s for its line
# "listening on HOST:PORT"; sets server_pid, server_host and server_port.
start_server() {
  local key=$1 cmd=${command_of[$1]} pid line="" addr host port deadline
  local out=$workdir/$key.out err=$workdir/$key.err
  : >"$out" # exists before the wait loop reads it
  # exec: the PID is the server's own, whose CPU time the loadgen reads.
  bash -c "exec $cmd" >"$out" 2>"$err" &
  pid=$!
  server_pid[$key]=$pid
  deadline=$(($(now_us) + 10000000))
  while :; do
    line=$(grep -m1 -o 'listening on [^[:space:]]*' "$out" || true)
    [[ -z $line ]] || break
    if ! kill -0 "$pid" 2>/dev/null; then
      unset "server_pid[$key]"
      die "$key: '$cmd' exited before printing 'listening on HOST:PORT'
--- stdout:
$(cat "$out")
--- stderr:
$(cat "$err")"
    fi
    (($(now_us) < deadline)) || die "$key: '$cmd' did not print 'listening on HOST:PORT' within 10 s"
    sleep 0.05
  done
  addr=${line#listening on }
  port=${addr##*:}
  host=${addr%:*}
  host=${host#[}
  host=${host%]}
  case $host in
    0.0.0.0 | "") host=127.0.0.1 ;;
    ::) host=::1 ;;
  esac
  [[ $port =~ ^[0-9]+$ ]] || die "$key printed an unreadable address: '$line'"
  server_host[$key]=$host
  server_port[$key]=$port
}

# Runs workload $2 of round $1 against server $3 and appends the result to
# the results file (a failed run is recorded as such).
run_load() {
  local round=$1 name=$2 key=$3 sockets window size rc=0 json threads
  read -r sockets window size <<<"${workload[$name]}"
  threads=$((sockets < loadgen_threads ? sockets : loadgen_threads))
  local out=$workdir/load.$round.$name.$key
  kill -0 "${server_pid[$key]}" 2>/dev/null ||
    die "$key ('${command_of[$key]}') is no longer running; its stderr:
$(tail -n 20 "$workdir/$key.err")"
  "$loadgen" --host "${server_host[$key]}" --port "${server_port[$key]}" --sockets "$sockets" \
    --window "$window" --size "$size" --warmup "$warmup" --duration "$duration" \
    --threads "$threads" --server-pid "${server_pid[$key]}" --json >"$out" 2>"$out.err" &
  loadgen_pid=$!
  wait "$loadgen_pid" || rc=$?
  loadgen_pid=""
  json=$(grep -m1 '^{' "$out" || true)
  if ((rc != 0)) || [[ -z $json ]]; then
    printf 'round %d %-4s %-8s FAILED (exit %d): %s\n' "$round" "$name" "$key" "$rc" \
      "$(tr '\n' ' ' <"$out.err")"
    json=null
  else
    python3 -c '
import json, sys
r = json.loads(sys.argv[1])
other = r["other_cpu_s"] / r["window_s"] if r.get("window_s") else float("nan")
print("round %s %-4s %-8s %10s echoes/s  p50 %7.1f us  p99 %7.1f us  server %6.2f us/echo"
      "  lost %d  mismatched %d  other load %.2f cores"
      % (sys.argv[2], sys.argv[3], sys.argv[4], format(r["echoes_per_s"], ",.0f"),
         r["p50_us"], r["p99_us"], r.get("server_us_per_echo", float("nan")), r["lost"],
         r["mismatched"], other))
' "$json" "$round" "$name" "$key"
  fi
  printf '{"round":%d,"workload":"%s","server":"%s","result":%s}\n' "$round" "$name" "$key" \
    "$json" >>"$results"
}

# -- the rounds -------------------------------------------------------------------

load_start=$(uptime)
runs=$((rounds * ${#workloads[@]} * 2))
estimate=$(awk -v n="$runs" -v w="$warmup" -v d="$duration" 'BEGIN { printf "%.0f", n * (w + d + 0.2) }')
echo "run_udp_bench.sh: $runs runs of $warmup s warm-up + $duration s, about $estimate s"
echo "baseline: $baseline_cmd"
echo "atoll:    $atoll_cmd"
echo "loadgen:  $loadgen (--threads $loadgen_threads for p50 and w50)"
echo "load at start: $load_start"
start_server baseline
start_server atoll
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2)); then order=(baseline atoll); else order=(atoll baseline); fi
  for name in "${workloads[@]}"; do
    for key in "${order[@]}"; do
      run_load "$round" "$name" "$key"
    done
  done
done
load_end=$(uptime)
echo "load at end:   $load_end"
# Stop the servers now, so that their exit messages (the baseline prints its
# counters) can be shown below.
stop_server baseline
stop_server atoll

python3 - "$results" "$load_start" "$load_end" "${workloads[@]}" <<'PYTHON'
import json, statistics, sys

results_file, load_start, load_end, *workloads = sys.argv[1:]
runs = [json.loads(line) for line in open(results_file)]
described = {"p1": "1 socket, window 1, 64 B", "p50": "50 sockets, window 1, 64 B",
             "w50": "50 sockets, window 8, 512 B"}

def value(run, key):
    r = run["result"]
    return None if r is None else r.get(key)

def pick(workload, server, key):
    """{round: value} of the successful runs."""
    out = {}
    for run in runs:
        if run["workload"] == workload and run["server"] == server:
            v = value(run, key)
            if v is not None:
                out[run["round"]] = v
    return out

def med(values, pattern="{:,.0f}"):
    values = list(values)
    if not values:
        return "n/a"
    return pattern.format(statistics.median(values))

def spread(values, pattern="{:.2f}"):
    values = list(values)
    if not values:
        return "n/a"
    text = pattern.format(statistics.median(values))
    if len(values) > 1:
        text += f" [{pattern.format(min(values))}–{pattern.format(max(values))}]"
    return text

rounds = sorted({run["round"] for run in runs})
print(f"\n## UDP echo: medians over {len(rounds)} round(s)\n")
print("| workload | baseline echoes/s | Atoll echoes/s | Atoll / baseline, per round | "
      "ratio median [min–max] | baseline µs CPU/echo | Atoll µs CPU/echo | "
      "p99 µs (baseline / Atoll) | lost+mismatched (baseline / Atoll) | other load, cores |")
print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
for w in workloads:
    b, a = pick(w, "baseline", "echoes_per_s"), pick(w, "atoll", "echoes_per_s")
    ratios = {r: a[r] / b[r] for r in rounds if r in a and r in b and b[r] > 0}
    per_round = " ".join(f"{ratios[r]:.2f}" if r in ratios else "–" for r in rounds)
    bad = {}
    for s in ("baseline", "atoll"):
        lost, mism = pick(w, s, "lost"), pick(w, s, "mismatched")
        bad[s] = sum(lost.values()) + sum(mism.values())
    other = []
    for run in runs:
        if run["workload"] == w and run["result"] and run["result"].get("window_s"):
            other.append(run["result"]["other_cpu_s"] / run["result"]["window_s"])
    print(f"| {w} ({described[w]}) | {med(b.values())} | {med(a.values())} | {per_round} | "
          f"{spread(ratios.values())} | {med(pick(w, 'baseline', 'server_us_per_echo').values(), '{:.2f}')} | "
          f"{med(pick(w, 'atoll', 'server_us_per_echo').values(), '{:.2f}')} | "
          f"{med(pick(w, 'baseline', 'p99_us').values(), '{:.0f}')} / "
          f"{med(pick(w, 'atoll', 'p99_us').values(), '{:.0f}')} | {bad['baseline']} / {bad['atoll']} | "
          f"{spread(other)} |")
failed = [run for run in runs if run["result"] is None]
if failed:
    print("\nFailed runs: " + ", ".join(
        f"round {run['round']} {run['workload']} {run['server']}" for run in failed))
print(f"\nLoad at start: {load_start.strip()}")
print(f"Load at end:   {load_end.strip()}")
PYTHON

for key in baseline atoll; do
  if [[ -s $workdir/$key.err ]]; then
    echo
    echo "$key stderr (last lines):"
    tail -n 5 "$workdir/$key.err"
  fi
done
