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
#
# With --full, one command produces the whole comparison table instead: the
# epoll baseline, Atoll's echo and tls_echo examples and a Boost.Asio echo
# server (atoll_asio_echo) over ping-pong at 1/50/500 connections, 4 KiB
# messages, bulk echo, connection rate, TLS handshakes, idle memory (plain and
# TLS) and a thread-scaling row, with the server CPU per request and the
# machine's other load recorded for every run (see "Full table" in README.md).
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
  --rounds N         Rounds (default 3; 5 with --full)
  --duration S       Measured seconds per throughput run (default 5; 1 with --quick)
  --quick            Smoke test: short runs, 1000 idle connections (TLS: 2000)
  --build-dir DIR    Build directory with test/bench/atoll_loadgen and
                     test/bench/atoll_baseline_echo (default: build)
  --save FILE        Also write the raw per-run results (JSON lines) to FILE
  -h, --help         Show this help

Full comparison table (--full; not combined with --tls):
  --full             Run every row of the full table against the epoll
                     baseline, Atoll (--server, --tls-server) and Boost.Asio
                     (--asio), interleaved, and print the table
  --asio "CMD"       Boost.Asio server
                     (default: "BUILD_DIR/test/bench/atoll_asio_echo --port=0")
  --tls-server "CMD" Atoll TLS server (default: "BUILD_DIR/examples/tls_echo
                     --port=0 --certfile={certfile} --keyfile={keyfile}")
  --scaling-threads LIST
                     Server thread counts of the scaling row, comma-separated
                     (default: 1,2)
  --threads-option OPT
                     Appended to the Atoll command (--server) to set its thread
                     count; {n} is replaced by the count
                     (default: --scheduler.max-threads={n}). The Asio command
                     gets --threads={n}.
  --loadgen-threads N
                     atoll_loadgen threads in the scaling row (default: 2)
  --only LIST        Run only these rows, comma-separated, of: pp1, pp50,
                     pp500, pp4k, bulk, connect, tls_hs, idle_tls, idle, scale
                     (default: all)
EOF
}

die() {
  printf 'run_bench.sh: error: %s\n' "$*" >&2
  exit 1
}

# -- options ------------------------------------------------------------------

rounds=""
duration=""
quick=0
tls=0
full=0
build_dir=build
server_cmd=""
asio_cmd=""
tls_server_cmd=""
scaling_threads=1,2
threads_option="--scheduler.max-threads={n}"
loadgen_threads=2
only=""
save_file=""

# Fails unless option $1 is followed by a non-empty value $2.
need_value() {
  [[ $# -ge 2 && -n $2 ]] || die "option $1 needs a value (see --help)"
}

while (($#)); do
  case $1 in
    --server | --rounds | --duration | --build-dir | --asio | --tls-server | --scaling-threads | \
      --threads-option | --loadgen-threads | --only | --save)
      need_value "$@"
      opt=$1 value=$2
      shift 2
      ;;
    --server=* | --rounds=* | --duration=* | --build-dir=* | --asio=* | --tls-server=* | \
      --scaling-threads=* | --threads-option=* | --loadgen-threads=* | --only=* | --save=*)
      opt=${1%%=*} value=${1#*=}
      shift
      ;;
    --quick) quick=1; shift; continue ;;
    --tls) tls=1; shift; continue ;;
    --full) full=1; shift; continue ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
  case $opt in
    --server) server_cmd=$value ;;
    --rounds) rounds=$value ;;
    --duration) duration=$value ;;
    --build-dir) build_dir=$value ;;
    --asio) asio_cmd=$value ;;
    --tls-server) tls_server_cmd=$value ;;
    --scaling-threads) scaling_threads=$value ;;
    --threads-option) threads_option=$value ;;
    --loadgen-threads) loadgen_threads=$value ;;
    --only) only=$value ;;
    --save) save_file=$value ;;
  esac
done

# --full: 5 rounds by default (about 16 minutes), otherwise 3.
if ((full)); then : "${rounds:=5}"; else : "${rounds:=3}"; fi
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
if ((quick)); then
  : "${duration:=1}"
  warmup=0.5 idle_connections=1000 hold=1
else
  : "${duration:=5}"
  warmup=1 idle_connections=10000 hold=3
fi
# Idle TLS connections (--tls, and the idle_tls row of --full).
tls_idle_connections=2000
((tls)) && idle_connections=$tls_idle_connections
if ! [[ $duration =~ ^([0-9]+(\.[0-9]*)?|\.[0-9]+)$ ]] ||
  ! awk -v d="$duration" 'BEGIN { exit !(d > 0) }'; then
  die "--duration must be a positive number of seconds"
fi
rows_selected=""
if ((full)); then
  ((!tls)) || die "--full already includes the TLS rows (use --tls-server for Atoll's TLS server)"
  [[ $scaling_threads =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] ||
    die "--scaling-threads must be a comma-separated list of positive integers"
  [[ $loadgen_threads =~ ^[1-9][0-9]*$ ]] || die "--loadgen-threads must be a positive integer"
  ((loadgen_threads <= 50)) || die "--loadgen-threads must not exceed 50 (the connections)"
  [[ $threads_option == *"{n}"* ]] || die "--threads-option must contain the placeholder {n}"
  all_rows="pp1 pp50 pp500 pp4k bulk connect tls_hs idle_tls idle scale"
  if [[ -z $only ]]; then
    rows_selected=$all_rows
  else
    rows_selected=${only//,/ }
    for row in $rows_selected; do
      [[ " $all_rows " == *" $row "* ]] || die "--only: unknown row '$row' (rows: $all_rows)"
    done
  fi
  : "${asio_cmd:=$build_dir/test/bench/atoll_asio_echo --port=0}"
  # (Not ${tls_server_cmd:=...}: the braces of the placeholders would end it.)
  if [[ -z $tls_server_cmd ]]; then
    tls_server_cmd="$build_dir/examples/tls_echo --port=0 --certfile={certfile} --keyfile={keyfile}"
  fi
else
  for opt in asio:"$asio_cmd" tls-server:"$tls_server_cmd" only:"$only"; do
    [[ -z ${opt#*:} ]] || die "--${opt%%:*} is only used with --full"
  done
fi

# Whether the row $1 of the full table is selected.
row_selected() {
  [[ " $rows_selected " == *" $1 "* ]]
}

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
    die "the placeholders {certfile} and {keyfile} are only replaced with --tls (and in --tls-server)"
fi
# A certificate is needed with --tls, and for the TLS rows of --full.
need_cert=$tls
if ((full)) && { row_selected tls_hs || row_selected idle_tls; }; then
  need_cert=1
  if [[ $tls_server_cmd != *"{certfile}"* && $tls_server_cmd != *"{keyfile}"* ]]; then
    echo "run_bench.sh: warning: the --tls-server command has no {certfile} or {keyfile}" \
      "placeholder; it must bring its own certificate" >&2
  fi
fi

loadgen=$build_dir/test/bench/atoll_loadgen
baseline_cmd="$build_dir/test/bench/atoll_baseline_echo --port=0"
baseline_tls_cmd="$baseline_cmd --tls --certfile={certfile} --keyfile={keyfile}"
((tls)) && baseline_cmd=$baseline_tls_cmd
for tool in "$loadgen" "$build_dir/test/bench/atoll_baseline_echo"; do
  [[ -x $tool ]] || die "$tool not found; build it with:
  cmake -S . -B $build_dir -G Ninja && ninja -C $build_dir atoll_loadgen atoll_baseline_echo atoll_asio_echo"
done

# Fails unless the first word of the command $1 (option $2) is found.
check_command() {
  local words
  read -r -a words <<<"$1"
  command -v -- "${words[0]:-}" >/dev/null ||
    die "server command '${words[0]:-}' not found (pass $2 \"CMD\")"
}
if ((full)); then
  # The plain rows use --server and --asio, the TLS rows --tls-server.
  for row in $rows_selected; do
    if [[ $row != tls_hs && $row != idle_tls ]]; then
      check_command "$server_cmd" --server
      check_command "$asio_cmd" --asio
      break
    fi
  done
  ((!need_cert)) || check_command "$tls_server_cmd" --tls-server
else
  check_command "$server_cmd" --server
fi
command -v python3 >/dev/null || die "python3 is required"
((!need_cert)) || command -v openssl >/dev/null || die "the openssl command is required for TLS"

# -- state and clean-up -------------------------------------------------------

workdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-bench.XXXXXX")
results=$workdir/results.jsonl
# --tls, --full: the directory with the generated certificate and key;
# removed at exit in every case (unlike the logs).
certdir=""
# Running server processes by key: "baseline" and "server" for the
# long-running instances, "baseline-idle" and "server-idle" for the fresh
# ones of the idle measurement (with --full, the keys are the targets of the
# full table, such as "atoll" or "asio_t2", and "TARGET-idle").
declare -A server_pid=() server_host=() server_port=()
loadgen_pid=""
file_counter=0
# Set when a run of --full failed: the logs are kept even on success.
keep_logs=0

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
  if ((rc == 0 && !keep_logs)); then
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

if ((need_cert)); then
  certdir=$(mktemp -d "${TMPDIR:-/tmp}/atoll-bench-cert.XXXXXX")
  certfile=$certdir/cert.pem keyfile=$certdir/key.pem
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$keyfile" -out "$certfile" -days 1 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost >"$certdir/openssl.log" 2>&1 ||
    die "openssl could not create the certificate:
$(cat "$certdir/openssl.log")"
fi
# The command of each target (server label).
declare -A command_of=()
if ((full)); then
  command_of=([baseline]=$baseline_cmd [atoll]=$server_cmd [asio]=$asio_cmd)
  if ((need_cert)); then
    command_of[baseline_tls]=$(expand_placeholders "$baseline_tls_cmd")
    command_of[atoll_tls]=$(expand_placeholders "$tls_server_cmd")
  fi
  for n in ${scaling_threads//,/ }; do
    command_of[atoll_t$n]="$server_cmd ${threads_option//"{n}"/$n}"
    command_of[asio_t$n]="$asio_cmd --threads=$n"
  done
elif ((tls)); then
  command_of=([baseline]=$(expand_placeholders "$baseline_cmd")
    [server]=$(expand_placeholders "$server_cmd"))
else
  command_of=([baseline]=$baseline_cmd [server]=$server_cmd)
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

# -- full table (--full) ------------------------------------------------------
#
# Every run of the full table passes --server-pid to the load generator, which
# samples /proc at the start and end of its measured interval (idle mode: the
# whole run) and reports the CPU time of the server, of itself and of all
# other processes (the machine's busy time minus both). A run that fails is
# recorded as failed and the script goes on; the summary lists it.

# Prints the human-readable lines of a finished loadgen run (output file $1,
# server label $2), the first one prefixed with the label.
show_loadgen_lines() {
  local out=$1 label=$2 line first=1
  while IFS= read -r line; do
    [[ $line == "{"* || $line == *" connections established" ]] && continue
    if ((first)); then
      printf '    %-13s %s\n' "$label" "$line"
      first=0
    else
      printf '    %-13s %s\n' "" "$line"
    fi
  done <"$out"
}

# Checks a finished loadgen run of --full (output file $1, exit code $2,
# server label $3): shows its lines and sets $json to its JSON line, or to
# "null" after a warning if it failed.
take_full_result() {
  local out=$1 rc=$2 label=$3
  json=null
  if ((rc == 0)) && json=$(grep -m1 '^{' "$out"); then
    show_loadgen_lines "$out" "$label"
    return 0
  fi
  json=null
  keep_logs=1
  printf '    %-13s FAILED (loadgen exit code %s): %s\n' "$label" "$rc" \
    "$(head -c 600 "$out.err" | tr '\n' ' ')" >&2
  if [[ -n ${server_pid[$label]:-} ]] && ! kill -0 "${server_pid[$label]}" 2>/dev/null; then
    echo "run_bench.sh: warning: the $label server has exited (its output is in $workdir);" \
      "its further runs in this round fail" >&2
  fi
  return 1
}

# Appends one result of --full: round $1, row $2, target $3, RSS before and
# while holding $4/$5 (KiB, or null) and the loadgen JSON in $json (null if
# the run failed).
record_full() {
  printf '{"round":%s,"row":"%s","target":"%s","rss_before_kb":%s,"rss_held_kb":%s,"result":%s}\n' \
    "$1" "$2" "$3" "$4" "$5" "$json" >>"$results"
}

# Runs a throughput row $2 (loadgen options $4...) against the running
# server $1 in round $3.
full_throughput() {
  local label=$1 row=$2 round=$3 rc=0
  shift 3
  next_file loadgen
  "$loadgen" --host "${server_host[$label]}" --port "${server_port[$label]}" \
    --warmup "$warmup" --duration "$duration" --json --server-pid "${server_pid[$label]}" "$@" \
    >"$new_file" 2>"$new_file.err" || rc=$?
  take_full_result "$new_file" "$rc" "$label" || true
  record_full "$round" "$row" "$label" null null
}

# Measures the idle memory of a fresh process of server $1 for row $2 in
# round $3 with $4 connections (further loadgen options $5...), as run_idle
# does. The connections are closed with a reset, so that tens of thousands of
# them per round leave no TIME_WAIT sockets behind.
full_idle() {
  local label=$1 row=$2 round=$3 connections=$4 key=$1-idle rc=0 before held=null established
  shift 4
  start_server "$key" "$label"
  sleep 0.5 # let the server finish its start-up before the first sample
  before=$(rss_kb "$key")
  next_file loadgen
  local out=$new_file
  : >"$out"
  "$loadgen" --host "${server_host[$key]}" --port "${server_port[$key]}" --mode idle \
    --connections "$connections" --size 64 --hold "$hold" --check --reset-close --json \
    --server-pid "${server_pid[$key]}" "$@" >"$out" 2>"$out.err" &
  loadgen_pid=$!
  while ! grep -q ' connections established$' "$out"; do
    kill -0 "$loadgen_pid" 2>/dev/null || break
    sleep 0.05
  done
  if grep -q ' connections established$' "$out"; then
    sleep 0.3
    held=$(rss_kb "$key" 2>/dev/null) || held=null
    [[ -n $held ]] || held=null
  fi
  wait "$loadgen_pid" || rc=$?
  loadgen_pid=""
  if take_full_result "$out" "$rc" "$label"; then
    established=$(sed -n 's/^idle: \([0-9]*\) connections established$/\1/p' "$out")
    if [[ $held != null ]] && ((established > 0)); then
      awk -v label="$label" -v before="$before" -v held="$held" -v n="$established" 'BEGIN {
        printf "    %-13s RSS %d KiB -> %d KiB: %.1f bytes/connection\n", label, before, held,
          (held - before) * 1024 / n }'
    fi
  fi
  record_full "$round" "$row" "$label" "$before" "$held"
  stop_server "$key"
}

# Sets the array $order to the arguments, reversed in even rounds ($round).
order_targets() {
  order=("$@")
  if ((round % 2 == 0)); then
    local i reversed=()
    for ((i = ${#order[@]} - 1; i >= 0; i--)); do
      reversed+=("${order[i]}")
    done
    order=("${reversed[@]}")
  fi
}

# Starts the servers $order (each under its own label as key).
start_group() {
  local label
  for label in "${order[@]}"; do
    start_server "$label" "$label"
  done
}

# Stops the servers $order.
stop_group() {
  local label
  for label in "${order[@]}"; do
    stop_server "$label"
  done
}

# Runs the selected throughput rows among $2... (each "row|title|loadgen
# options") against the servers $order, which it starts and stops.
run_group() {
  local label spec row title args any=0
  for spec in "$@"; do
    row_selected "${spec%%|*}" && any=1
  done
  ((any)) || return 0
  start_group
  for spec in "$@"; do
    IFS='|' read -r row title args <<<"$spec"
    row_selected "$row" || continue
    echo "  $row: $title (${order[*]})"
    for label in "${order[@]}"; do
      # shellcheck disable=SC2086 # $args are separate loadgen options
      full_throughput "$label" "$row" "$round" $args
    done
  done
  stop_group
}

run_full() {
  local scale_targets=(baseline) n label
  for n in ${scaling_threads//,/ }; do scale_targets+=("atoll_t$n"); done
  for n in ${scaling_threads//,/ }; do scale_targets+=("asio_t$n"); done
  local runs=0 idle_runs=0 row
  for row in $rows_selected; do
    case $row in
      tls_hs) runs=$((runs + 2)) ;;
      scale) runs=$((runs + ${#scale_targets[@]})) ;;
      idle_tls) idle_runs=$((idle_runs + 2)) ;;
      idle) idle_runs=$((idle_runs + 3)) ;;
      *) runs=$((runs + 3)) ;;
    esac
  done
  echo "full table: rows: $rows_selected"
  echo "epoll baseline: $baseline_cmd"
  echo "Atoll:          $server_cmd"
  echo "Boost.Asio:     $asio_cmd"
  ((!need_cert)) || echo "Atoll TLS:      $tls_server_cmd (baseline: $baseline_tls_cmd)"
  echo "scaling row:    Atoll + '${threads_option}', Asio + '--threads={n}', n in" \
    "{$scaling_threads}; loadgen --threads $loadgen_threads"
  echo "rounds: $rounds; per round $runs throughput runs of ${warmup} s warm-up + ${duration} s" \
    "and $idle_runs idle runs ($idle_connections plain / $tls_idle_connections TLS connections" \
    "held ${hold} s); expected duration about" \
    "$(awk -v r="$rounds" -v n="$runs" -v i="$idle_runs" -v w="$warmup" -v d="$duration" \
      -v h="$hold" -v q="$quick" \
      'BEGIN { printf "%.0f", r * (n * (w + d + 0.15) + i * (h + (q ? 1.5 : 3)) + 3) / 60 + 0.5 }')" \
    "min"
  for ((round = 1; round <= rounds; round++)); do
    echo "== round $round/$rounds"
    order_targets baseline atoll asio
    run_group \
      "pp1|64 B ping-pong, 1 connection|--mode pingpong --connections 1 --size 64" \
      "pp50|64 B ping-pong, 50 connections|--mode pingpong --connections 50 --size 64" \
      "pp500|64 B ping-pong, 500 connections|--mode pingpong --connections 500 --size 64" \
      "pp4k|4 KiB ping-pong, 50 connections|--mode pingpong --connections 50 --size 4096" \
      "bulk|64 KiB bulk echo, 10 connections|--mode bulk --connections 10 --size 65536" \
      "connect|connect + 64 B echo + RST close, 50 slots|--mode handshake --connections 50 --size 64"
    order_targets "${scale_targets[@]}"
    run_group "scale|64 B ping-pong, 50 connections, loadgen $loadgen_threads threads|--mode pingpong --connections 50 --size 64 --threads $loadgen_threads"
    order_targets baseline_tls atoll_tls
    run_group "tls_hs|TLS 1.3 connect + 64 B echo + close, 50 slots|--mode handshake --connections 50 --size 64 --tls"
    if row_selected idle_tls; then
      order_targets baseline_tls atoll_tls
      echo "  idle_tls: $tls_idle_connections idle TLS connections (fresh server processes; ${order[*]})"
      for label in "${order[@]}"; do
        full_idle "$label" idle_tls "$round" "$tls_idle_connections" --tls
      done
    fi
    if row_selected idle; then
      order_targets baseline atoll asio
      echo "  idle: $idle_connections idle connections (fresh server processes; ${order[*]})"
      for label in "${order[@]}"; do
        full_idle "$label" idle "$round" "$idle_connections"
      done
    fi
  done
  [[ -z $save_file ]] || cp "$results" "$save_file"
  ((!keep_logs)) || echo "run_bench.sh: some runs failed; their logs are kept in $workdir" >&2

  python3 - "$results" "$scaling_threads" "$loadgen_threads" <<'PYTHON'
import json
import statistics
import sys

records = [json.loads(line) for line in open(sys.argv[1])]
scaling = [int(n) for n in sys.argv[2].split(",")]
loadgen_threads = int(sys.argv[3])
rounds = sorted({r["round"] for r in records})

# RSS is counted in 4 KiB pages and moves a little for reasons unrelated to
# connections; a baseline growth below this is noise, and a ratio against it
# meaningless.
RSS_NOISE_KIB = 64

NAMES = {"baseline": "epoll", "atoll": "Atoll", "asio": "Asio", "baseline_tls": "epoll --tls",
         "atoll_tls": "Atoll tls_echo"}
for n in scaling:
    NAMES[f"atoll_t{n}"] = f"Atoll {n}t"
    NAMES[f"asio_t{n}"] = f"Asio {n}t"


def find(row, target, rnd):
    for r in records:
        if (r["row"], r["target"], r["round"]) == (row, target, rnd) and r["result"]:
            return r
    return None


def rate(key):
    # A run that completed without a single request (the server went away)
    # has no rate; its errors are counted.
    return lambda r: r["result"][key] if r["result"]["requests"] > 0 else None


def user_cpu_per_op(r):
    res = r["result"]
    if "server_user_cpu_s" not in res or res["requests"] == 0:
        return None
    return res["server_user_cpu_s"] / res["requests"] * 1e6


def cpu_per_op(r):
    res = r["result"]
    if "server_cpu_s" not in res or res["requests"] == 0:
        return None
    return res["server_cpu_s"] / res["requests"] * 1e6


def bytes_per_connection(r):
    n = r["result"]["established"]
    if r["rss_held_kb"] is None or n == 0:
        return None
    return (r["rss_held_kb"] - r["rss_before_kb"]) * 1024 / n


def memory_floor(r):
    return RSS_NOISE_KIB * 1024 / max(r["result"]["established"], 1)


def other_cores(r):
    res = r["result"]
    if not res or not res.get("window_s"):
        return None
    return res["other_cpu_s"] / res["window_s"]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def cell(values, pattern, expected=None):
    """median [min-max] of the values; "(k of n)" if only k of the expected
    n values exist (failed runs)."""
    values = [v for v in values if v is not None]
    if not values:
        return "n/a"
    text = pattern.format(statistics.median(values))
    if len(values) > 1:
        text += f" [{pattern.format(min(values))}–{pattern.format(max(values))}]"
    if expected is not None and len(values) < expected:
        text += f" ({len(values)} of {expected})"
    return text


# Table lines: title, unit, row, getter, number format, targets (epoll,
# Atoll, Asio or None), floor (smallest baseline value a ratio may divide by).
lines = [
    ("64 B ping-pong, 1 connection", "req/s", "pp1", rate("req_per_s"), "{:,.0f}",
     ("baseline", "atoll", "asio"), None),
    ("64 B ping-pong, 50 connections", "req/s", "pp50", rate("req_per_s"), "{:,.0f}",
     ("baseline", "atoll", "asio"), None),
    ("64 B ping-pong, 500 connections", "req/s", "pp500", rate("req_per_s"), "{:,.0f}",
     ("baseline", "atoll", "asio"), None),
    ("4 KiB ping-pong, 50 connections", "req/s", "pp4k", rate("req_per_s"), "{:,.0f}",
     ("baseline", "atoll", "asio"), None),
    ("64 KiB bulk echo, 10 connections", "MB/s", "bulk", rate("mb_per_s"), "{:,.0f}",
     ("baseline", "atoll", "asio"), None),
    ("connect + 64 B echo + RST close, 50 at a time", "conn/s", "connect",
     rate("handshakes_per_s"), "{:,.0f}", ("baseline", "atoll", "asio"), None),
    ("server CPU per connection (connect row)", "µs", "connect", cpu_per_op, "{:,.1f}",
     ("baseline", "atoll", "asio"), None),
    ("server CPU per 64 B echo, 50 connections", "µs", "pp50", cpu_per_op, "{:,.2f}",
     ("baseline", "atoll", "asio"), None),
    ("of it in user space, per connection (connect row)", "µs", "connect", user_cpu_per_op,
     "{:,.2f}", ("baseline", "atoll", "asio"), None),
    ("of it in user space, per 64 B echo (50 connections)", "µs", "pp50", user_cpu_per_op,
     "{:,.2f}", ("baseline", "atoll", "asio"), None),
    ("TLS 1.3 handshakes/s (connect + 64 B echo + close, 50 at a time)", "handshakes/s",
     "tls_hs", rate("handshakes_per_s"), "{:,.0f}", ("baseline_tls", "atoll_tls", None), None),
    ("server CPU per TLS handshake", "µs", "tls_hs", cpu_per_op, "{:,.0f}",
     ("baseline_tls", "atoll_tls", None), None),
    ("idle memory per TLS connection after one echo", "bytes", "idle_tls", bytes_per_connection,
     "{:,.0f}", ("baseline_tls", "atoll_tls", None), memory_floor),
    ("idle memory per plain connection after one echo", "bytes", "idle", bytes_per_connection,
     "{:,.0f}", ("baseline", "atoll", "asio"), memory_floor),
]
for n in scaling:
    lines.append((f"scaling: 64 B ping-pong, 50 connections, loadgen {loadgen_threads} threads, "
                  f"server {n} thread{'s' if n > 1 else ''}", "req/s", "scale",
                  rate("req_per_s"), "{:,.0f}", ("baseline", f"atoll_t{n}", f"asio_t{n}"),
                  None))


def series(row, target, get):
    out = []
    for rnd in rounds:
        r = find(row, target, rnd)
        out.append(None if r is None else get(r))
    return out


def ratios(row, target, base, get, floor):
    out = []
    for rnd in rounds:
        s, b = find(row, target, rnd), find(row, base, rnd)
        if s is None or b is None:
            continue
        sv, bv = get(s), get(b)
        limit = floor(b) if floor else 0
        if sv is None or bv is None or bv <= limit:
            continue
        out.append(sv / bv)
    return out


present = {r["row"] for r in records}

# -- per run --
print("\n## Per run\n")
print("Server CPU, loadgen CPU and the other processes' CPU are measured over the measured "
      "interval (idle rows: over the whole loadgen run); other load is in cores.\n")
print("| round | row | target | result | server CPU s | server µs/op | loadgen CPU s "
      "| other load (cores) | errors |")
print("|---:|---|---|---:|---:|---:|---:|---:|---:|")
main_metric = {"pp1": ("req_per_s", "{:,.0f} req/s"), "pp50": ("req_per_s", "{:,.0f} req/s"),
               "pp500": ("req_per_s", "{:,.0f} req/s"), "pp4k": ("req_per_s", "{:,.0f} req/s"),
               "bulk": ("mb_per_s", "{:,.0f} MB/s"), "connect": ("req_per_s", "{:,.0f} conn/s"),
               "tls_hs": ("req_per_s", "{:,.0f} hs/s"), "scale": ("req_per_s", "{:,.0f} req/s")}
for r in records:
    res = r["result"]
    if not res:
        print(f"| {r['round']} | {r['row']} | {NAMES.get(r['target'], r['target'])} | FAILED "
              f"| | | | | |")
        continue
    if r["row"] in ("idle", "idle_tls"):
        b = bytes_per_connection(r)
        result = "n/a" if b is None else f"{b:,.0f} B/conn"
        per_op = ""
    else:
        key, pattern = main_metric[r["row"]]
        result = pattern.format(res[key])
        v = cpu_per_op(r)
        per_op = "" if v is None else f"{v:,.2f}"
    server = res.get("server_cpu_s")
    loadgen = res.get("loadgen_cpu_s")
    other = other_cores(r)
    print(f"| {r['round']} | {r['row']} | {NAMES.get(r['target'], r['target'])} | {result} "
          f"| {'' if server is None else f'{server:.2f}'} | {per_op} "
          f"| {'' if loadgen is None else f'{loadgen:.2f}'} "
          f"| {'' if other is None else f'{other:.2f}'} | {res['errors']} |")

# -- summary --
print(f"\n## Full table: medians [min–max] over {len(rounds)} round(s)\n")
print("Ratios are to the epoll baseline: the median [min–max] of the per-round ratios. "
      "For rates higher is better; for µs and bytes lower is better.\n")
print("| workload | unit | epoll baseline | Atoll | Boost.Asio | Atoll / epoll | Asio / epoll "
      "| other load (cores) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
notes = []
for title, unit, row, get, pattern, (base, atoll, asio), floor in lines:
    if row not in present:
        continue
    cells = [cell(series(row, t, get), pattern, len(rounds)) if t else "—"
             for t in (base, atoll, asio)]
    ratio_cells = []
    for t in (atoll, asio):
        if t is None:
            ratio_cells.append("—")
            continue
        rs = ratios(row, t, base, get, floor)
        ratio_cells.append(cell(rs, "{:.2f}", len(rounds)))
    loads = [other_cores(r) for r in records if r["row"] == row and r["result"]
             and r["target"] in (base, atoll, asio)]
    print(f"| {title} | {unit} | " + " | ".join(cells + ratio_cells) +
          f" | {cell(loads, '{:.2f}')} |")
    if floor and any(v == "n/a" for v in ratio_cells):
        notes.append(f"{title}: no ratio where the baseline's RSS grew by less than "
                     f"{RSS_NOISE_KIB} KiB (measurement noise); compare the absolute bytes.")

errors = {}
failed = []
for r in records:
    if r["result"]:
        errors[r["target"]] = errors.get(r["target"], 0) + r["result"]["errors"]
    else:
        failed.append(f"round {r['round']} {r['row']} {NAMES.get(r['target'], r['target'])}")
print("\nloadgen errors (all runs): " +
      ", ".join(f"{NAMES.get(t, t)} {n}" for t, n in errors.items()))

if "scale" in present and len(scaling) > 1:
    lo, hi = scaling[0], scaling[-1]
    for name, prefix in (("Atoll", "atoll_t"), ("Boost.Asio", "asio_t")):
        rs = ratios("scale", f"{prefix}{hi}", f"{prefix}{lo}", rate("req_per_s"), None)
        print(f"\nScaling, {name}: {hi} threads / {lo} thread{'s' if lo > 1 else ''} "
              f"(per-round ratio): {cell(rs, '{:.2f}', len(rounds))}")

# Server and loadgen CPU, as cores over the measured interval: a rate
# describes a server only if that server, not the loadgen, was the limit.
print("\n### CPU use during the measured interval (medians, in cores)\n")
targets_in = {}
for r in records:
    targets_in.setdefault(r["row"], [])
    if r["target"] not in targets_in[r["row"]]:
        targets_in[r["row"]].append(r["target"])
print("| row | target | server (cores) | loadgen (cores) | other load (cores) |")
print("|---|---|---:|---:|---:|")
for row, targets in targets_in.items():
    if row in ("idle", "idle_tls"):
        continue
    for t in targets:
        rs = [r for r in records if (r["row"], r["target"]) == (row, t) and r["result"]
              and r["result"].get("window_s")]
        s = median([x["result"]["server_cpu_s"] / x["result"]["window_s"] for x in rs])
        lg = median([x["result"]["loadgen_cpu_s"] / x["result"]["window_s"] for x in rs])
        o = median([other_cores(x) for x in rs])
        print(f"| {row} | {NAMES.get(t, t)} | {'n/a' if s is None else f'{s:.2f}'} "
              f"| {'n/a' if lg is None else f'{lg:.2f}'} | {'n/a' if o is None else f'{o:.2f}'} |")

for note in notes:
    print(f"\n{note}")
if failed:
    print("\nWARNING: failed runs (no result): " + "; ".join(failed))
if any(errors.values()):
    print("\nWARNING: the load generator counted errors; see the per-run lines above.")
PYTHON
}

# -- main ---------------------------------------------------------------------

if ((full)); then
  run_full
  exit 0
fi

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

[[ -z $save_file ]] || cp "$results" "$save_file"

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
