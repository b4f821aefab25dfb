#!/usr/bin/env bash
# The cost of telemetry on the echo path, in instructions (issue 10): a finer
# instrument than throughput, whose spread between rounds (10-20%) hides a 1%
# effect. Runs the `echo` example under callgrind (valgrind) with one client
# doing 64-byte ping-pongs on one connection, and counts the user-space
# instructions per echo, for three builds of the same sources:
#
#   compiled out   echo built with -DATOLL_TELEMETRY=OFF (no emission at all)
#   no subscriber  the normal build, nobody attached to the bus
#   metrics        the normal build with --metrics-port 0 (server_metrics attached)
#
# Two scopes, each from two runs (SMALL and LARGE echoes; per echo =
# difference of the counts / difference of the echoes, so start-up and
# shut-down cancel out):
#   connection path  inside atl::connection_actor::resume (all connection I/O)
#   whole process    every user-space instruction of the server (includes
#                    the scheduler's idle polling: varies by hundreds between
#                    runs, so the comparison uses the connection path)
#
# Instruction counts do not depend on the machine's load. The kernel's share
# of an echo (recv, send, epoll) is not counted: compare the difference with
# the server CPU per echo that run_bench.sh measures.
#
#   bash test/bench/run_callgrind_cost.sh [--small N] [--large N]
#        [--build DIR] [--notel DIR]
#
# Needs valgrind and python3 (setup.sh installs both). Brings both builds'
# echo up to date first, configuring the --notel directory (default
# build-notel) if needed.
set -euo pipefail
cd "$(dirname "$0")/../.."

small=2000
large=6000
build=build
notel=build-notel
while [[ $# -gt 0 ]]; do
  case "$1" in
    --small) small=$2; shift 2 ;;
    --large) large=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --notel) notel=$2; shift 2 ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "run_callgrind_cost.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[[ "$small" =~ ^[1-9][0-9]*$ && "$large" =~ ^[1-9][0-9]*$ && "$large" -gt "$small" ]] || {
  echo "run_callgrind_cost.sh: --small and --large must be positive, large > small" >&2
  exit 2
}
command -v valgrind >/dev/null || { echo "run_callgrind_cost.sh: valgrind is missing" >&2; exit 1; }
[[ -f "$build/CMakeCache.txt" ]] || { echo "run_callgrind_cost.sh: $build is not configured" >&2; exit 1; }
# Both echoes from the current sources (a no-op when they are up to date).
cmake --build "$build" --target echo >/dev/null
if [[ ! -f "$notel/CMakeCache.txt" ]]; then
  cmake -S . -B "$notel" -G Ninja -DATOLL_TELEMETRY=OFF -DATOLL_BUILD_TESTS=OFF >/dev/null
fi
cmake --build "$notel" --target echo >/dev/null

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cat > "$work/client.py" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
msg = b"x" * 64
for _ in range(int(sys.argv[3])):
    s.sendall(msg)
    got = 0
    while got < 64:
        d = s.recv(64 - got)
        if not d:
            sys.exit("the server closed the connection")
        got += len(d)
s.close()
EOF

# run BINARY ECHOES SCOPE_ARG [server options...]: prints the instruction count.
run() {
  local bin=$1 n=$2 scope=$3
  shift 3
  local out="$work/cg.out" log="$work/stdout"
  rm -f "$out" "$log"
  valgrind --tool=callgrind "$scope" --callgrind-out-file="$out" \
    "$bin" --port 0 --host 127.0.0.1 "$@" >"$log" 2>"$work/valgrind.log" &
  local pid=$!
  local port=""
  for _ in $(seq 1 600); do
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$log" 2>/dev/null | head -1)
    [[ -n "$port" ]] && break
    sleep 0.1
  done
  [[ -n "$port" ]] || { echo "run_callgrind_cost.sh: $bin did not start" >&2; kill "$pid"; exit 1; }
  python3 "$work/client.py" 127.0.0.1 "$port" "$n"
  kill -TERM "$pid"
  wait "$pid" || { echo "run_callgrind_cost.sh: $bin did not exit cleanly" >&2; exit 1; }
  sed -n 's/^summary: //p' "$out"
}

path_scope="--toggle-collect=atl::connection_actor::resume(caf::execution_unit*, unsigned long)"
whole_scope="--collect-atstart=yes"

# per_echo BINARY SCOPE [server options...]
per_echo() {
  local bin=$1 scope=$2
  shift 2
  local a b
  a=$(run "$bin" "$small" "$scope" "$@")
  b=$(run "$bin" "$large" "$scope" "$@")
  python3 -c "print(round(($b - $a) / ($large - $small), 1))"
}

echo "instructions per 64 B echo (callgrind; $small and $large echoes on one connection)"
echo
echo "| build | connection path | whole process |"
echo "|---|---:|---:|"
declare -A path whole
for cfg in "compiled out" "no subscriber" "metrics"; do
  case "$cfg" in
    "compiled out") bin="$notel/examples/echo"; extra=() ;;
    "no subscriber") bin="$build/examples/echo"; extra=() ;;
    "metrics") bin="$build/examples/echo"; extra=(--metrics-port 0) ;;
  esac
  path[$cfg]=$(per_echo "$bin" "$path_scope" "${extra[@]}")
  whole[$cfg]=$(per_echo "$bin" "$whole_scope" "${extra[@]}")
  echo "| $cfg | ${path[$cfg]} | ${whole[$cfg]} |"
done
echo
for cfg in "no subscriber" "metrics"; do
  python3 - "$cfg" "${path[$cfg]}" "${path["compiled out"]}" <<'EOF'
import sys
cfg, p, base = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
d = p - base
print(f"{cfg}: +{d:.1f} instructions per echo on the connection path "
      f"({100 * d / base:.1f}% of the compiled-out build's)")
EOF
done
