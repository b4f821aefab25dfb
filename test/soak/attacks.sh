#!/usr/bin/env bash
# attacks.sh: hostile clients against the example servers. Measures each
# server's peak memory (VmHWM) and its memory before and after the attack
# (VmRSS), checks that a well-behaved client next to the attackers keeps
# getting every answer, and that the server survives and stops cleanly
# (SIGTERM, exit code 0). Every attack starts a fresh server (--port=0).
#
#   bash test/soak/attacks.sh                 # every attack, ~15 s each (~3 min)
#   bash test/soak/attacks.sh --short         # smoke run, ~3 s each
#   bash test/soak/attacks.sh --only churn,drain
#
# Attacks (--only names):
#   never-read    messenger: 20 clients that never read while one client talks
#                 as fast as it can; a reading client must get the talker's
#                 lines in order without a gap (the messenger holds the
#                 talker until the room has handed its lines on, and cuts a
#                 client whose queued output reaches the transport's 4 MiB
#                 limit: the never-readers, and a reader too slow for the
#                 talker)
#   slowloris     echo --read-timeout=2000: 1,000 connections, one byte each
#                 every ~3 s (reconnecting when closed)
#   tls-garbage   tls_echo: 500 slots sending random bytes, cut ClientHellos,
#                 huge record headers, garbage after a hello, records before
#                 the handshake
#   churn         echo: short connections (echo + close, send + RST, connect +
#                 RST, half-close, 256 KiB + RST), 1,000/s
#   udp-flood     udp_echo --rate-limit-enabled: one source, 10,000 datagrams/s
#   udp-spoof     udp_echo --rate-limit-enabled --rate-limit-max-sources=4096:
#                 10,000 datagrams/s, each from the next of 100,000 spoofed
#                 source addresses 127.1.0.0.. (a raw socket; without
#                 CAP_NET_RAW, real sockets on 250 addresses x 4 ports); the
#                 limiter must never track more than its table
#   udp-oversize  udp_echo: datagrams above --max-packet-size (8192), 800/s
#   drain         echo --shutdown-timeout=2000: 200 ping-pong clients, SIGTERM;
#                 every request sent before the signal must be answered
#   (udp: the three UDP attacks)
#
# Every attack except drain runs a good client (ping-pong every 50 ms, each
# answer checked, 3 s timeout; UDP from 127.0.0.254). The server runs with
# --metrics-port=0; its counters are shown under the table. Exits 1 if an
# attack failed: the server died or exited non-zero, the good client lost an
# answer, the server's peak RSS went above --max-peak-mb, or the attack's own
# check failed.
set -euo pipefail

cd "$(dirname "$0")/../.."
here=test/soak
build=build
duration=15
only=""
certdir=""
max_peak_mb=256

usage() {
  awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
  cat <<EOF

Options:
  --short            ~3 s per attack (smoke run)
  --duration S       seconds per attack (default 15)
  --only LIST        comma-separated attacks (default: all)
  --build-dir DIR    build directory (default: build)
  --max-peak-mb N    peak server RSS counted as a failure (default 256: the
                     never-read attack's designed bound is about 20 x 4 MiB
                     of queued output plus the ~15 MB the server starts with)
  --certdir DIR      test certificates (server-chain.pem, server.key);
                     default: BUILD_DIR/certs, else made with
                     test/tls/make_test_certs.sh in a temporary directory
  -h, --help         this help
EOF
}

die() {
  echo "attacks.sh: $*" >&2
  exit 2
}

while (($#)); do
  case $1 in
    --short) duration=3 ;;
    --duration) duration=${2:?--duration needs a value}; shift ;;
    --duration=*) duration=${1#*=} ;;
    --only) only=${2:?--only needs a value}; shift ;;
    --only=*) only=${1#*=} ;;
    --build-dir) build=${2:?--build-dir needs a value}; shift ;;
    --build-dir=*) build=${1#*=} ;;
    --max-peak-mb) max_peak_mb=${2:?--max-peak-mb needs a value}; shift ;;
    --max-peak-mb=*) max_peak_mb=${1#*=} ;;
    --certdir) certdir=${2:?--certdir needs a value}; shift ;;
    --certdir=*) certdir=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
  shift
done
if ! [[ $duration =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v d="$duration" 'BEGIN { exit !(d > 0) }'; then
  die "--duration must be a positive number of seconds"
fi

all_attacks="never-read slowloris tls-garbage churn udp-flood udp-spoof udp-oversize drain"
selected=""
for name in ${only//,/ }; do
  case $name in
    udp) selected+=" udp-flood udp-spoof udp-oversize" ;;
    *)
      [[ " $all_attacks " == *" $name "* ]] || die "--only: unknown attack '$name' (attacks: $all_attacks, udp)"
      selected+=" $name"
      ;;
  esac
done
[[ -n $selected ]] || selected=$all_attacks
[[ $max_peak_mb =~ ^[1-9][0-9]*$ ]] || die "--max-peak-mb must be a positive integer"

for bin in echo messenger tls_echo udp_echo; do
  [[ -x $build/examples/$bin ]] || die "$build/examples/$bin is missing: build first (./setup.sh)"
done
command -v python3 >/dev/null || die "python3 is needed"

# 1,000 slowloris connections plus reconnects, in the clients and the
# server (each process has its own limit): the soft limit goes to the hard one.
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
ulimit -n "$hard"
((hard >= 4096)) || echo "attacks.sh: warning: the fd limit is $hard; the big attacks need about 2,500" >&2

work=$(mktemp -d)
server=""
sampler=""
client=""
# shellcheck disable=SC2317 # (called by the EXIT trap)
cleanup() {
  local pid
  # (the attack client runs in its own session, with its child processes)
  [[ -z $client ]] || kill -KILL -- "-$client" 2>/dev/null || true
  for pid in $sampler $server; do
    kill -KILL "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ " $selected " == *" tls-garbage "* ]]; then
  [[ -n $certdir ]] || certdir=$build/certs
  if [[ ! -f $certdir/server-chain.pem || ! -f $certdir/server.key ]]; then
    certdir=$work/certs
    bash test/tls/make_test_certs.sh "$certdir" >/dev/null
  fi
fi

# The memory of process $1 in KiB: "VmHWM VmRSS", or nothing once it ended.
memory_of() {
  local key value hwm="" rss=""
  while read -r key value _; do
    case $key in
      VmHWM:) hwm=$value ;;
      VmRSS:) rss=$value ;;
    esac
  done 2>/dev/null <"/proc/$1/status" || return 0
  [[ -z $hwm ]] || echo "$hwm $rss"
}

# Appends "TIME VmHWM VmRSS" of process $1 to file $2 every 0.1 s until the
# process ends (a zombie has no memory lines), so the last line's peak
# includes its stop.
sample_memory() {
  local m
  while m=$(memory_of "$1") && [[ -n $m ]]; do
    echo "$EPOCHREALTIME $m" >>"$2"
    sleep 0.1
  done
}

# start_server NAME ARGS...: starts $build/examples/NAME on a free loopback
# port with a metrics endpoint; sets server, port, metrics, server_cmd.
start_server() {
  local bin=$build/examples/$1
  shift
  server_cmd="$bin --port=0 --host=loopback --metrics-port=0 $*"
  : >"$work/out"
  : >"$work/err"
  : >"$work/mem"
  "$bin" --port=0 --host=loopback --metrics-port=0 "$@" >"$work/out" 2>"$work/err" &
  server=$!
  local deadline=$((SECONDS + 20))
  until grep -q '^listening on ' "$work/out" && grep -q '^metrics on ' "$work/err"; do
    kill -0 "$server" 2>/dev/null || { cat "$work/err" >&2; die "$bin did not start"; }
    ((SECONDS < deadline)) || die "$bin printed no listening line within 20 s"
    sleep 0.05
  done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")
  metrics=$(sed -n 's/^metrics on \(http:.*\)$/\1/p' "$work/err")
  [[ -n $port && -n $metrics ]] || die "cannot read the port or metrics address of $bin"
  sample_memory "$server" "$work/mem" &
  sampler=$!
}

# alive_state PID: "yes" while it runs, "no" once it ended (zombie or reaped).
alive_state() {
  local state
  state=$(awk '/^State:/ { print $2 }' "/proc/$1/status" 2>/dev/null || true)
  [[ -n $state && $state != Z && $state != X ]] && echo yes || echo no
}

# stop_server BOUND_S: SIGTERM (unless it ended already), waits up to
# BOUND_S seconds, then SIGKILL; sets exit_code ("killed" if it hung).
stop_server() {
  local bound=$1 deadline
  kill -TERM "$server" 2>/dev/null || true
  deadline=$((SECONDS + bound))
  while [[ $(alive_state "$server") == yes ]] && ((SECONDS < deadline)); do
    sleep 0.05
  done
  local hung=0
  if [[ $(alive_state "$server") == yes ]]; then
    hung=1
    kill -KILL "$server" 2>/dev/null || true
  fi
  wait "$server" && exit_code=0 || exit_code=$?
  ((hung == 0)) || exit_code="hung(killed)"
  wait "$sampler" 2>/dev/null || true
  server="" sampler=""
}

# run_attack NAME SERVER-BINARY "SERVER ARGS" [CLIENT ARGS...]: one attack
# against a fresh server; appends its result line to $work/results.
run_attack() {
  local name=$1 bin=$2 server_args=$3
  shift 3
  echo "== $name ($duration s)"
  # shellcheck disable=SC2086 # the server's arguments are words
  start_server "$bin" $server_args
  sleep 0.5 # the process's start-up allocations settle
  local before after alive t_start t_end
  before=$(memory_of "$server" | awk '{ print $2 }')
  t_start=$EPOCHREALTIME
  setsid python3 "$here/attack_clients.py" "$name" --port "$port" --metrics "$metrics" \
    --duration "$duration" "$@" >"$work/$name.json" 2>"$work/$name.stderr" &
  client=$!
  wait "$client" || echo "  the attack client failed: $(tail -3 "$work/$name.stderr")" >&2
  client=""
  t_end=$EPOCHREALTIME
  alive=$(alive_state "$server")
  after=$(memory_of "$server" | awk '{ print $2 }')
  stop_server 20
  local hwm
  hwm=$(tail -1 "$work/mem" | awk '{ print $2 }')
  python3 "$here/attack_clients.py" record --name "$name" --attack-json "$work/$name.json" \
    --duration "$duration" --hwm-kb "${hwm:-}" --rss-before-kb "${before:-}" \
    --rss-after-kb "${after:-}" --alive "$alive" --exit-code "$exit_code" \
    --server "$server_cmd" --server-stderr "$work/err" \
    --mem-log "$work/mem" --t-start "$t_start" --t-end "$t_end" >>"$work/results"
  echo "   peak ${hwm:-?} KiB, before ${before:-?} KiB, after ${after:-?} KiB, alive $alive, exit $exit_code"
}

# The drain attack: the client sends the SIGTERM itself (it knows which
# requests went out before it); the server's memory after is not measured
# (it has ended).
run_drain() {
  echo "== drain ($duration s of load, then SIGTERM)"
  start_server echo --shutdown-timeout=2000
  sleep 0.5
  local before hwm t_start t_end
  before=$(memory_of "$server" | awk '{ print $2 }')
  t_start=$EPOCHREALTIME
  setsid python3 "$here/attack_clients.py" drain --port "$port" --metrics "$metrics" \
    --duration "$duration" --pid "$server" --clients 200 --shutdown-timeout 2000 \
    >"$work/drain.json" 2>"$work/drain.stderr" &
  client=$!
  wait "$client" || echo "  the drain client failed: $(tail -3 "$work/drain.stderr")" >&2
  client=""
  t_end=$EPOCHREALTIME
  stop_server 20
  hwm=$(tail -1 "$work/mem" | awk '{ print $2 }')
  python3 "$here/attack_clients.py" record --name drain --attack-json "$work/drain.json" \
    --duration "$duration" --hwm-kb "${hwm:-}" --rss-before-kb "${before:-}" \
    --rss-after-kb "" --alive yes --exit-code "$exit_code" \
    --server "$server_cmd" --server-stderr "$work/err" \
    --mem-log "$work/mem" --t-start "$t_start" --t-end "$t_end" >>"$work/results"
  echo "   peak ${hwm:-?} KiB, before ${before:-?} KiB, exit $exit_code"
}

echo "attacks.sh: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), fd limit $(ulimit -n)"
: >"$work/results"
for name in $selected; do
  case $name in
    never-read) run_attack never-read messenger "" --clients 20 ;;
    slowloris) run_attack slowloris echo "--read-timeout=2000" --connections 1000 --interval 3 ;;
    tls-garbage)
      run_attack tls-garbage tls_echo \
        "--certfile=$certdir/server-chain.pem --keyfile=$certdir/server.key" \
        --connections 500 --rate 300 --handshake-timeout 5
      ;;
    churn) run_attack churn echo "" --concurrency 16 --rate 1000 ;;
    udp-flood) run_attack udp-flood udp_echo "--rate-limit-enabled" --rate 10000 ;;
    udp-spoof)
      run_attack udp-spoof udp_echo "--rate-limit-enabled --rate-limit-max-sources=4096" \
        --rate 10000 --sources 100000 --ports-per-source 4 --table 4096
      ;;
    udp-oversize) run_attack udp-oversize udp_echo "--rate-limit-enabled" --rate 800 ;;
    drain) run_drain ;;
  esac
done

echo
echo "## Attacks: $duration s each; memory in MB (VmHWM = peak, VmRSS before/after)"
echo
status=0
python3 "$here/attack_clients.py" table --max-peak-mb "$max_peak_mb" "$work/results" || status=1
echo
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit "$status"
