#!/usr/bin/env bash
# User-space instructions per operation, for one or more servers: each runs
# under callgrind while a load generator drives it, once for SHORT and once
# for LONG seconds. Per operation = the difference of the instruction counts /
# the difference of the operations done, so start-up and shut-down cancel out.
#
#   bash test/bench/run_callgrind_connect.sh [--workload connect|pingpong|udp]
#        [--short S] [--long S] [--connections N] [--size B] [--window N]
#        [--rounds N] [--loadgen PATH] -- "CMD" ["CMD" ...]
#
# Workloads (the operation counted):
#   connect   (default; issue 7's connection row) atoll_loadgen --mode
#             handshake, plain TCP: connect, one 64-byte echo, reset close,
#             --connections slots (default 8). Per connection.
#   pingpong  atoll_loadgen --mode pingpong, --size bytes (default 64) on
#             --connections connections (default 50). Per echo.
#   udp       atoll_udp_loadgen (--loadgen default build/test/bench/
#             atoll_udp_loadgen), --connections sockets (default 50), --window
#             datagrams in flight per socket (default 8), --size bytes
#             (default 512): the UDP bench's w50. Per echo.
#
# CMD is a server command line; " --port 0 --host 127.0.0.1" is appended and
# it must print "listening on ADDRESS:PORT". Default CMD: build/examples/echo
# (udp: "build/examples/udp_echo --num-listeners 2 --recbuf 4194304 --sndbuf
# 4194304", the UDP bench's options).
# Rounds are interleaved (round 1: A then B, round 2: B then A, ...); the
# median per server is printed with its spread. Instruction counts do not
# depend on the machine's load, but the idle polling of the scheduler (run
# between events) does: expect a spread of a few hundred instructions per
# connection, a few dozen per echo. Kernel work is not counted. Needs
# valgrind and python3 (setup.sh installs both).
set -euo pipefail
cd "$(dirname "$0")/../.."

workload=connect
short=2
long=6
connections=""
size=""
window=8
rounds=3
loadgen=""
servers=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --workload) workload=${2:?}; shift 2 ;;
    --short) short=${2:?}; shift 2 ;;
    --long) long=${2:?}; shift 2 ;;
    --connections) connections=${2:?}; shift 2 ;;
    --size) size=${2:?}; shift 2 ;;
    --window) window=${2:?}; shift 2 ;;
    --rounds) rounds=${2:?}; shift 2 ;;
    --loadgen) loadgen=${2:?}; shift 2 ;;
    --) shift; servers=("$@"); break ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "run_callgrind_connect.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
case "$workload" in
  connect) : "${connections:=8}" "${size:=64}" "${loadgen:=build/test/bench/atoll_loadgen}"; unit=connection units=connections ;;
  pingpong) : "${connections:=50}" "${size:=64}" "${loadgen:=build/test/bench/atoll_loadgen}"; unit="echo" units="echoes" ;;
  udp) : "${connections:=50}" "${size:=512}" "${loadgen:=build/test/bench/atoll_udp_loadgen}"; unit="echo" units="echoes" ;;
  *) echo "run_callgrind_connect.sh: --workload must be connect, pingpong or udp" >&2; exit 2 ;;
esac
if [[ ${#servers[@]} -eq 0 ]]; then
  servers=(build/examples/echo)
  [[ "$workload" != udp ]] || servers=("build/examples/udp_echo --num-listeners 2 --recbuf 4194304 --sndbuf 4194304")
fi
for v in "$short" "$long" "$connections" "$size" "$window" "$rounds"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "run_callgrind_connect.sh: counts and seconds must be positive integers" >&2; exit 2; }
done
((long > short)) || { echo "run_callgrind_connect.sh: --long must be more than --short" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "run_callgrind_connect.sh: valgrind is missing" >&2; exit 1; }
[[ -x "$loadgen" ]] || { echo "run_callgrind_connect.sh: no load generator at $loadgen (build it first)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# run CMD SECONDS: prints "OPERATIONS INSTRUCTIONS".
run() {
  local cmd=$1 seconds=$2 out="$work/cg.out" log="$work/stdout"
  rm -f "$out" "$log"
  # shellcheck disable=SC2086 # CMD is a command line
  valgrind --tool=callgrind --callgrind-out-file="$out" $cmd --port 0 --host 127.0.0.1 \
    >"$log" 2>"$work/valgrind.log" &
  local pid=$! port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log" 2>/dev/null | head -1)
    [[ -n "$port" ]] && break
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "run_callgrind_connect.sh: '$cmd' did not start" >&2; kill "$pid"; exit 1; }
  local made
  local load=(--port "$port" --warmup 0 --duration "$seconds" --json) field=requests
  case "$workload" in
    connect) load+=(--mode handshake --connections "$connections") ;;
    pingpong) load+=(--mode pingpong --size "$size" --connections "$connections") ;;
    udp) load+=(--sockets "$connections" --window "$window" --size "$size"); field=echoes ;;
  esac
  made=$("$loadgen" "${load[@]}" | sed -n "s/.*\"$field\":\([0-9]*\).*/\1/p" | head -1)
  kill -TERM "$pid"
  wait "$pid" || { echo "run_callgrind_connect.sh: '$cmd' did not exit cleanly" >&2; exit 1; }
  [[ -n "$made" && "$made" -gt 0 ]] || { echo "run_callgrind_connect.sh: no $unit completed" >&2; exit 1; }
  echo "$made $(sed -n 's/^summary: //p' "$out")"
}

declare -A results
for ((r = 1; r <= rounds; ++r)); do
  order=("${servers[@]}")
  if ((r % 2 == 0)); then
    order=()
    for ((i = ${#servers[@]} - 1; i >= 0; --i)); do order+=("${servers[$i]}"); done
  fi
  for cmd in "${order[@]}"; do
    read -r n1 i1 <<<"$(run "$cmd" "$short")"
    read -r n2 i2 <<<"$(run "$cmd" "$long")"
    per=$(python3 -c "print(round(($i2 - $i1) / ($n2 - $n1)))")
    echo "round $r: $cmd: $n1 / $n2 $units, $per instructions per $unit" >&2
    results[$cmd]="${results[$cmd]:-} $per"
  done
done

case "$workload" in
  connect) what="connect + 64 B echo + reset close, $connections slots" ;;
  pingpong) what="$size B ping-pong on $connections connections" ;;
  udp) what="$size B UDP echoes, $connections sockets with $window in flight each" ;;
esac
echo "user-space instructions per $unit (callgrind; $what,"
echo "${short} s and ${long} s runs, $rounds interleaved rounds)"
echo
echo "| server | median [min-max] |"
echo "|---|---:|"
for cmd in "${servers[@]}"; do
  # shellcheck disable=SC2086 # the values, one argument each
  python3 - "$cmd" ${results[$cmd]} <<'EOF'
import statistics, sys
cmd, vals = sys.argv[1], [int(v) for v in sys.argv[2:]]
print(f"| `{cmd}` | {statistics.median(vals):,.0f} [{min(vals):,}-{max(vals):,}] |")
EOF
done
