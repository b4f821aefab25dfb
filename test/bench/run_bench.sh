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
# With --tls (the baseline then runs with OpenSSL, and both servers get a
# throwaway self-signed ECDSA P-256 certificate):
#   pingpong   64-byte ping-pong over TLS 1.3, 50 connections -> req/s, p99 latency
#   handshake  connect + TLS handshake + 64-byte echo + close,
#              8 parallel slots                               -> handshakes/s
#   idle       2,000 idle TLS connections                     -> RSS bytes/connection
#
# Both servers are started once for the throughput workloads. The idle measurement
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
                     Default: "BUILD_DIR/examples/echo --port=0"; with --tls:
                     "BUILD_DIR/examples/tls_echo --port=0 --certfile={certfile} --keyfile={keyfile}"
  --tls              TLS benchmark: TLS ping-pong, handshakes/s, idle TLS
                     memory. A self-signed certificate is generated; the
                     placeholders {certfile} and {keyfile} in CMD are replaced
                     by the paths of its PEM files.
  --rounds N         Rounds (default 3)
  --duration S       Measured seconds per throughput run (default 5; 1 with --quick)
  --quick            Smoke test: short runs, 1000 idle connections (TLS: 2000)
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
tls=0
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
    --tls) tls=1; shift; continue ;;
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
((tls)) && idle_connections=2000
if ! [[ $duration =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d > 0) }'; then
  die "--duration must be a positive number of seconds"
fi
if ((tls)); then
  # (Not ${server_cmd:=...}: the braces of the placeholders would end it.)
  if [[ -z ${server_cmd:-} ]]; then
    server_cmd="$build_dir/examples/tls_echo --port=0 --certfile={certfile} --keyfile={keyfile}"
  fi
  if [[ $server_cmd != *"{certfile}"* && $server_cmd != *"{keyfile}"* ]]; then
    echo "run_bench.sh: warning: the server command has no {certfile} or {keyfile}" \
      "placeholder; it must bring its own certificate" >&2
  fi
else
  : "${server_cmd:=$build_dir/examples/echo --port=0}"
  [[ $server_cmd != *"{certfile}"* && $server_cmd != *"{keyfile}"* ]] ||
    die "the placeholders {certfile} and {keyfile} are only replaced with --tls"
fi

loadgen=$build_dir/test/bench/atoll_loadgen
baseline_cmd="$build_dir/test/bench/atoll_baseline_echo --port=0"
((tls)) && baseline_cmd+=" --tls --certfile={certfile} --keyfile={keyfile}"
for tool in "$loadgen" "$build_dir/test/bench/atoll_baseline_echo"; do
  [[ -x $tool ]] || die "$tool not found; build it with:
  cmake -S . -B $build_dir -G Ninja && ninja -C $build_dir atoll_loadgen atoll_baseline_echo"
done
read -r -a server_words <<<"$server_cmd"
command -v -- "${server_words[0]:-}" >/dev/null ||
  die "server command '${server_words[0]:-}' not found (pass --server \"CMD\")"
command -v python3 >/dev/null || die "python3 is required"
((!tls)) || command -v openssl >/dev/null || die "the openssl command is required for --tls"

# -- state and clean-up -------------------------------------------------------

workdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-bench.XXXXXX")
results=$workdir/results.jsonl
# --tls: the directory with the generated certificate and key; removed at
# exit in every case (unlike the logs).
certdir=""
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
  [[ -z $certdir ]] || rm -rf "$certdir"
  if ((rc == 0)); then
    rm -rf "$workdir"
  else
    echo "run_bench.sh: logs kept in $workdir" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# -- TLS certificate ------------------------------------------------------------

# Replaces the placeholders {certfile} and {keyfile} in the command $1 with
# the (shell-quoted) paths of the generated files and prints the result.
expand_placeholders() {
  local cmd=$1 cert key
  printf -v cert '%q' "$certfile"
  printf -v key '%q' "$keyfile"
  cmd=${cmd//"{certfile}"/"$cert"}
  cmd=${cmd//"{keyfile}"/"$key"}
  printf '%s' "$cmd"
}

if ((tls)); then
  certdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-bench-cert.XXXXXX")
  certfile=$certdir/cert.pem keyfile=$certdir/key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$keyfile" -out "$certfile" -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >"$certdir/openssl.log" 2>&1 ||
    die "openssl could not create the certificate:
$(cat "$certdir/openssl.log")"
  declare -A command_of=([baseline]=$(expand_placeholders "$baseline_cmd")
    [server]=$(expand_placeholders "$server_cmd"))
else
  declare -A command_of=([baseline]=$baseline_cmd [server]=$server_cmd)
fi

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
  : >"$out" # exists before the wait loop below reads it
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

# Prints the CPU time (user + system, in clock ticks) used so far by the
# server process with key $1.
cpu_ticks() {
  local stat fields
  stat=$(<"/proc/${server_pid[$1]}/stat")
  stat=${stat##*) } # the fields after "(command name)"
  read -r -a fields <<<"$stat"
  echo $((fields[11] + fields[12]))
}
clock_ticks=$(getconf CLK_TCK)

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
# before/while holding $4/$5 (KiB, or null), CPU use of the server and the
# loadgen $6/$7 (fractions of one core, or null; default null) and the loadgen
# JSON in $json.
record() {
  printf '{"round":%s,"target":"%s","workload":"%s","rss_before_kb":%s,"rss_held_kb":%s,"server_cpu":%s,"loadgen_cpu":%s,"result":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "${6:-null}" "${7:-null}" "$json" >>"$results"
}

# Runs a throughput workload $2 (pingpong, bulk or handshake) against server
# $1 in round $3, with loadgen options $4... With --tls, also measures the
# CPU use of the server and of the loadgen over the whole run.
run_throughput() {
  local label=$1 workload=$2 round=$3 rc=0 ticks_before start usage cpu=()
  shift 3
  next_file loadgen
  ticks_before=$(cpu_ticks "$label")
  start=$(now_us)
  local TIMEFORMAT='%3U %3S' # user and system seconds of the loadgen
  { time "$loadgen" --host "${server_host[$label]}" --port "${server_port[$label]}" \
    --mode "$workload" --warmup "$warmup" --duration "$duration" --json "$@" \
    >"$new_file" 2>"$new_file.err"; } 2>"$new_file.time" || rc=$?
  take_loadgen_result "$new_file" "$rc" "$label"
  if ((tls)); then
    read -r -a usage <"$new_file.time"
    read -r -a cpu < <(awk -v ticks="$(($(cpu_ticks "$label") - ticks_before))" -v hz="$clock_ticks" \
      -v us="$(($(now_us) - start))" -v user="${usage[0]}" -v sys="${usage[1]}" \
      'BEGIN { printf "%.3f %.3f\n", ticks / hz / (us / 1e6), (user + sys) / (us / 1e6) }')
    printf '    %-8s CPU, %% of one core (warm-up included): server %.0f%%, loadgen %.0f%%\n' \
      "$label" "$(awk -v f="${cpu[0]}" 'BEGIN { print f * 100 }')" \
      "$(awk -v f="${cpu[1]}" 'BEGIN { print f * 100 }')"
  fi
  record "$round" "$label" "$workload" null null "${cpu[0]:-null}" "${cpu[1]:-null}"
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
    --connections "$idle_connections" --size 64 --hold "$hold" --check --json "${tls_option[@]}" \
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
if ((tls)); then
  echo "TLS: self-signed ECDSA P-256 certificate for localhost in $certdir (removed at exit)"
  tls_option=(--tls)
else
  tls_option=()
fi
echo "rounds: $rounds, throughput runs: ${warmup} s warm-up + ${duration} s," \
  "idle: $idle_connections connections held ${hold} s"

start_server baseline baseline
start_server server server
for ((round = 1; round <= rounds; round++)); do
  if ((round % 2 == 1)); then order=(baseline server); else order=(server baseline); fi
  echo "== round $round/$rounds (${order[*]})"
  if ((tls)); then
    echo "  pingpong over TLS: 64 B, 50 connections"
    for label in "${order[@]}"; do
      run_throughput "$label" pingpong "$round" --connections 50 --size 64 --tls
    done
    echo "  handshake: TLS connect + 64 B echo + close, 8 slots"
    for label in "${order[@]}"; do
      run_throughput "$label" handshake "$round" --connections 8 --size 64 --tls
    done
  else
    echo "  pingpong: 64 B, 50 connections"
    for label in "${order[@]}"; do
      run_throughput "$label" pingpong "$round" --connections 50 --size 64
    done
    echo "  bulk: 64 KiB, 10 connections"
    for label in "${order[@]}"; do
      run_throughput "$label" bulk "$round" --connections 10 --size 65536
    done
  fi
  echo "  idle: $idle_connections connections (fresh server processes)"
  for label in "${order[@]}"; do
    run_idle "$label" "$round"
  done
done
stop_server baseline
stop_server server

# -- summary ------------------------------------------------------------------

python3 - "$results" "$server_cmd" "$tls" <<'EOF'
import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
server_cmd = sys.argv[2]
tls = sys.argv[3] == "1"
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
if tls:
    metrics[2] = ("handshake", "handshakes/s (higher is better)",
                  lambda r: r["result"]["handshakes_per_s"], "{:,.0f}", lambda r: 0)


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
        name = f"idle, {sample['connections']} connections"
    elif workload == "handshake":
        name = f"handshake + {size} echo, {sample['connections']} slots"
    else:
        name = f"{workload}, {size} x {sample['connections']} connections"
    return f"TLS {name}" if tls else name


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

print(f"\n## Summary{' (TLS)' if tls else ''}: medians over {len(rounds)} round(s)\n")
print(f"server: `{server_cmd}`\n")
print("| workload | metric | baseline | server | server/baseline |")
print("|---|---|---:|---:|---:|")
for name, label, b, s, r, _, _ in summary:
    print(f"| {name} | {label} | {b} | {s} | {r} |")
print(f"| all | loadgen errors (total) | {errors['baseline']} | {errors['server']} | |")

_, _, _, _, r, b, s = summary[-1]
if b is not None and s is not None:
    print(f"\nIdle memory, server - baseline: {s - b:+,.1f} bytes/connection (medians).")
    if r == "n/a" and tls:
        print(f"No memory ratio: the baseline's RSS grew by less than {RSS_NOISE_KIB} KiB.")
    elif r == "n/a":
        print(f"No memory ratio: the baseline's RSS grew by less than {RSS_NOISE_KIB} KiB "
              f"(measurement noise); a raw epoll server keeps no user-space state for an "
              f"idle connection.")

if tls:
    # CPU use over each run (warm-up included), as a share of one core. A rate
    # only describes a server if the server is what limits it.
    print("\n### CPU use (medians, % of one core, warm-up included)\n")
    print("| workload | baseline: server | baseline: loadgen | server: server | server: loadgen |")
    print("|---|---:|---:|---:|---:|")
    cpu = {}
    for workload in ("pingpong", "handshake"):
        cells = []
        for target in ("baseline", "server"):
            for key in ("server_cpu", "loadgen_cpu"):
                m = median([r[key] for r in rows
                             if (r["workload"], r["target"]) == (workload, target)])
                cpu[(workload, target, key)] = m
                cells.append(fmt(None if m is None else m * 100, "{:.0f}%"))
        print(f"| {workload} | " + " | ".join(cells) + " |")
    limited = [t for t in ("baseline", "server")
               if (cpu[("handshake", t, "server_cpu")] or 0) < 0.9]
    if limited:
        print(f"\nIn the handshake runs, {' and '.join(limited)} used less than 90% of a core: "
              f"the load generator (one thread, which verifies the server's signature in every "
              f"handshake) or the machine limited the rate, not that server, so the handshake "
              f"ratio is pulled towards 1.")
if any(errors.values()):
    print("\nWARNING: the load generator counted errors; see the per-run lines above.")
EOF
