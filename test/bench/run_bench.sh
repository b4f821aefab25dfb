#!/usr/bin/env bash
# run_bench.sh: benchmarks an echo server against atoll_baseline_echo (the raw
# epoll reference) with atoll_loadgen, and prints medians and ratios as a
# markdown table. See README.md in this folder.
#
# Workloads, interleaved over the rounds in alternating order (round 1:
# baseline then server, round 2: server then baseline, ...):
#   pingpong  64-byte ping-pong, 50 connections           -> req/s, p99 latency
#   bulk      64 KiB echo, 10 connections                 -> MB/s
#   idle      10,000 idle connections (1,000 with --quick) -> RSS bytes/connection
#
# Both servers are started once for pingpong and bulk. The idle measurement
# starts a fresh process of each server every round, because an allocator
# keeps freed memory: in a reused process the second measurement would find
# its memory already mapped and report too little.
set -euo pipefail

usage() {
  cat <<EOF
Usage: $0 [options]

Options:
  --server "CMD"     Server to compare with the baseline; it must print
                     'listening on HOST:PORT' on stdout when ready, and must
                     exec the server process (its RSS is read from its PID).
                     Default: "BUILD_DIR/examples/echo --port=0"
  --rounds N         Rounds (default 3)
  --duration S       Measured seconds per throughput run (default 5; 1 with --quick)
  --quick            Smoke test: short runs, 1000 idle connections
  --build-dir DIR    Build directory with test/bench/atoll_loadgen and
                     test/bench/atoll_baseline_echo (default: build)
  -h, --help         Show this help
EOF
}

die() {
  printf 'run_bench.sh: error: %s\n' "$*" >&2
  exit 1
}

# -- options ------------------------------------------------------------------

rounds=3
duration=""
quick=0
build_dir=build
server_cmd=""

# Fails unless option $1 is followed by a non-empty value $2.
need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value (see --help)"
}

while (($#)); do
  case $1 in
    --server | --rounds | --duration | --build-dir)
      need_value "$@"
      opt=$1 value=$2
      shift 2
      ;;
    --server=* | --rounds=* | --duration=* | --build-dir=*)
      opt=${1%%=*} value=${1#*=}
      shift
      ;;
    --quick) quick=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  case $opt in
    --server) server_cmd=$value ;;
    --rounds) rounds=$value ;;
    --duration) duration=$value ;;
    --build-dir) build_dir=$value ;;
  esac
done

[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
if ((quick)); then
  : "${duration:=1}"
  warmup=0.5 idle_connections=1000 hold=1
else
  : "${duration:=5}"
  warmup=1 idle_connections=10000 hold=3
fi
if ! [[ $duration =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d > 0) }'; then
  die "--duration must be a positive number of seconds"
fi
: "${server_cmd:=$build_dir/examples/echo --port=0}"

loadgen=$build_dir/test/bench/atoll_loadgen
baseline_cmd="$build_dir/test/bench/atoll_baseline_echo --port=0"
for tool in "$loadgen" "$build_dir/test/bench/atoll_baseline_echo"; do
  [[ -x $tool ]] || die "$tool not found; build it with:
  cmake -S . -B $build_dir -G Ninja && ninja -C $build_dir atoll_loadgen atoll_baseline_echo"
done
read -r -a server_words <<<"$server_cmd"
command -v -- "${server_words[0]:-}" >/dev/null ||
  die "server command '${server_words[0]:-}' not found (pass --server \"CMD\")"
command -v python3 >/dev/null || die "python3 is required"

# -- state and clean-up -------------------------------------------------------

workdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-bench.XXXXXX")
results=$workdir/results.jsonl
declare -A command_of=([baseline]=$baseline_cmd [server]=$server_cmd)
# Running server processes by key: "baseline" and "server" for the
# long-running instances, "baseline-idle" and "server-idle" for the fresh
# ones of the idle measurement.
declare -A server_pid=() server_host=() server_port=()
loadgen_pid=""
file_counter=0

# Stops the server process with key $1 (SIGTERM, SIGKILL after 5 s) if it
# runs.
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
    echo "run_bench.sh: warning: server $key ignored SIGTERM for 5 s; killing it" >&2
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
    echo "run_bench.sh: logs kept in $workdir" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Sets $new_file to a fresh file name in the work directory (prefix $1).
next_file() {
  new_file=$workdir/$1.$((++file_counter))
}

# Microseconds since the epoch.
now_us() {
  echo "${EPOCHREALTIME//[!0-9]/}"
}

# -- servers ------------------------------------------------------------------

# Starts server $2 (baseline or server) as process key $1 and waits up to
# 10 s for its line "listening on HOST:PORT"; sets server_pid[$1],
# server_host[$1] and server_port[$1].
start_server() {
  local key=$1 label=$2 cmd=${command_of[$2]} pid line="" addr host port deadline
  next_file "$key"
  local out=$new_file.out err=$new_file.err
  # exec: the PID is the server's own, so /proc/PID/status is its RSS.
  bash -c "exec $cmd" >"$out" 2>"$err" &
  pid=$!
  server_pid[$key]=$pid
  deadline=$(($(now_us) + 10000000))
  while :; do
    line=$(grep -m1 -o 'listening on [^[:space:]]*' "$out" || true)
    [[ -z $line ]] || break
    if ! kill -0 "$pid" 2>/dev/null; then
      unset "server_pid[$key]"
      die "$label: '$cmd' exited before printing 'listening on HOST:PORT'
--- stdout:
$(cat "$out")
--- stderr:
$(cat "$err")"
    fi
    (($(now_us) < deadline)) ||
      die "$label: '$cmd' did not print 'listening on HOST:PORT' within 10 s"
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
  [[ $port =~ ^[0-9]+$ ]] || die "$label server printed an unreadable address: '$line'"
  server_host[$key]=$host
  server_port[$key]=$port
}

# Prints the VmRSS (KiB) of the server process with key $1.
rss_kb() {
  awk '/^VmRSS:/ { print $2 }' "/proc/${server_pid[$1]}/status"
}

# -- load generator -----------------------------------------------------------

# Checks a finished loadgen run (output file $1, exit code $2, server label
# $3), echoes its human-readable line and sets $json to its JSON line.
take_loadgen_result() {
  local out=$1 rc=$2 label=$3
  case $rc in
    0) ;;
    1) die "loadgen could not connect to $label ('${command_of[$label]}'):
$(cat "$out.err")" ;;
    *) die "loadgen failed with exit code $rc against $label ('${command_of[$label]}'):
$(cat "$out.err")" ;;
  esac
  json=$(grep -m1 '^{' "$out") || die "loadgen printed no JSON result (see $out)"
  printf '    %-8s %s\n' "$label" "$(grep -v -e '^{' -e ' connections established$' "$out")"
}

# Appends one result line: round $1, server label $2, workload $3, RSS
# before/while holding $4/$5 (KiB, or null) and the loadgen JSON in $json.
record() {
  printf '{"round":%s,"target":"%s","workload":"%s","rss_before_kb":%s,"rss_held_kb":%s,"result":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$json" >>"$results"
}

# Runs a throughput workload $2 (pingpong or bulk) against server $1 in round
# $3, with loadgen options $4...
run_throughput() {
  local label=$1 workload=$2 round=$3 rc=0
  shift 3
  next_file loadgen
  "$loadgen" --host "${server_host[$label]}" --port "${server_port[$label]}" --mode "$workload" \
    --warmup "$warmup" --duration "$duration" --json "$@" >"$new_file" 2>"$new_file.err" || rc=$?
  take_loadgen_result "$new_file" "$rc" "$label"
  record "$round" "$label" "$workload" null null
}

# Measures the idle memory of a fresh process of server $1 in round $2: RSS
# before connecting and while $idle_connections connections are held.
run_idle() {
  local label=$1 round=$2 key=$1-idle rc=0 before held=null established
  start_server "$key" "$label"
  sleep 0.5 # let the server finish its start-up before the first sample
  before=$(rss_kb "$key")
  next_file loadgen
  local out=$new_file
  : >"$out" # exists before the wait loop below reads it
  "$loadgen" --host "${server_host[$key]}" --port "${server_port[$key]}" --mode idle \
    --connections "$idle_connections" --size 64 --hold "$hold" --check --json \
    >"$out" 2>"$out.err" &
  loadgen_pid=$!
  # The loadgen announces when every connection is set up; sample then
  # (plus a moment for the server to settle), while they are held.
  while ! grep -q ' connections established$' "$out"; do
    kill -0 "$loadgen_pid" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q ' connections established$' "$out"; then
    sleep 0.3
    held=$(rss_kb "$key")
  fi
  wait "$loadgen_pid" || rc=$?
  loadgen_pid=""
  take_loadgen_result "$out" "$rc" "$label"
  established=$(sed -n 's/^idle: \([0-9]*\) connections established$/\1/p' "$out")
  if ((established > 0)); then
    awk -v label="$label" -v before="$before" -v held="$held" -v n="$established" 'BEGIN {
      printf "    %-8s RSS %d KiB -> %d KiB: %.1f bytes/connection\n", label, before, held,
        (held - before) * 1024 / n }'
  fi
  record "$round" "$label" idle "$before" "$held"
  stop_server "$key"
}

# -- main ---------------------------------------------------------------------

echo "baseline: $baseline_cmd"
echo "server:   $server_cmd"
echo "rounds: $rounds, throughput runs: ${warmup} s warm-up + ${duration} s," \
  "idle: $idle_connections connections held ${hold} s"

start_server baseline baseline
start_server server server
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2 == 1)); then order=(baseline server); else order=(server baseline); fi
  echo "== round $round/$rounds (${order[*]})"
  echo "  pingpong: 64 B, 50 connections"
  for label in "${order[@]}"; do
    run_throughput "$label" pingpong "$round" --connections 50 --size 64
  done
  echo "  bulk: 64 KiB, 10 connections"
  for label in "${order[@]}"; do
    run_throughput "$label" bulk "$round" --connections 10 --size 65536
  done
  echo "  idle: $idle_connections connections (fresh server processes)"
  for label in "${order[@]}"; do
    run_idle "$label" "$round"
  done
done
stop_server baseline
stop_server server

# -- summary ------------------------------------------------------------------

python3 - "$results" "$server_cmd" <<'EOF'
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
server_cmd = sys.argv[2]
rounds = sorted({r["round"] for r in rows})


# RSS is counted in 4 KiB pages and moves a little for reasons unrelated to
# connections; a baseline growth below this is noise, and a ratio against it
# meaningless.
RSS_NOISE_KIB = 64


def bytes_per_connection(row):
    established = row["result"]["established"]
    if row["rss_held_kb"] is None or established == 0:
        return None
    return (row["rss_held_kb"] - row["rss_before_kb"]) * 1024 / established


def memory_noise_floor(row):
    return RSS_NOISE_KIB * 1024 / max(row["result"]["established"], 1)


# (workload, metric label, value of a row, number format, smallest baseline
# value of a row that a ratio may divide by)
metrics = [
    ("pingpong", "req/s (higher is better)", lambda r: r["result"]["req_per_s"], "{:,.0f}",
     lambda r: 0),
    ("pingpong", "p99 latency us (lower is better)", lambda r: r["result"]["p99_us"], "{:,.1f}",
     lambda r: 0),
    ("bulk", "MB/s (higher is better)", lambda r: r["result"]["mb_per_s"], "{:,.1f}",
     lambda r: 0),
    ("idle", "RSS bytes/connection (lower is better)", bytes_per_connection, "{:,.1f}",
     memory_noise_floor),
]


def value(workload, target, rnd, get):
    for r in rows:
        if (r["workload"], r["target"], r["round"]) == (workload, target, rnd):
            return get(r)
    return None


def fmt(number, pattern):
    return "n/a" if number is None else pattern.format(number)


def ratio(server, baseline, floor=0):
    if server is None or baseline is None or baseline <= floor:
        return None
    return server / baseline


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def workload_name(workload):
    sample = next(r["result"] for r in rows if r["workload"] == workload)
    size = sample["size"]
    size = f"{size // 1024} KiB" if size % 1024 == 0 else f"{size} B"
    if workload == "idle":
        return f"idle, {sample['connections']} connections"
    return f"{workload}, {size} x {sample['connections']} connections"


print("\n## Per round\n")
print("| round | workload | metric | baseline | server | server/baseline |")
print("|---|---|---|---:|---:|---:|")
summary = []
for workload, label, get, pattern, get_floor in metrics:
    base_values, server_values, ratios = [], [], []
    for rnd in rounds:
        b = value(workload, "baseline", rnd, get)
        s = value(workload, "server", rnd, get)
        base_values.append(b)
        server_values.append(s)
        ratios.append(ratio(s, b, value(workload, "baseline", rnd, get_floor)))
        print(f"| {rnd} | {workload} | {label} | {fmt(b, pattern)} | {fmt(s, pattern)} "
              f"| {fmt(ratios[-1], '{:.2f}')} |")
    b, s = median(base_values), median(server_values)
    # The ratio is the median of the per-round ratios (robust to a round
    # disturbed by other load).
    r = median(ratios)
    summary.append((workload_name(workload), label, fmt(b, pattern), fmt(s, pattern),
                    fmt(r, "{:.2f}"), b, s))

errors = {t: sum(r["result"]["errors"] for r in rows if r["target"] == t)
          for t in ("baseline", "server")}

print(f"\n## Summary: medians over {len(rounds)} round(s)\n")
print(f"server: `{server_cmd}`\n")
print("| workload | metric | baseline | server | server/baseline |")
print("|---|---|---:|---:|---:|")
for name, label, b, s, r, _, _ in summary:
    print(f"| {name} | {label} | {b} | {s} | {r} |")
print(f"| all | loadgen errors (total) | {errors['baseline']} | {errors['server']} | |")

_, _, _, _, r, b, s = summary[-1]
if b is not None and s is not None:
    print(f"\nIdle memory, server - baseline: {s - b:+,.1f} bytes/connection (medians).")
    if r == "n/a":
        print(f"No memory ratio: the baseline's RSS grew by less than {RSS_NOISE_KIB} KiB "
              f"(measurement noise); a raw epoll server keeps no user-space state for an "
              f"idle connection.")
if any(errors.values()):
    print("\nWARNING: the load generator counted errors; see the per-run lines above.")
EOF
