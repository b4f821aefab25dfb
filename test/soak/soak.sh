#!/usr/bin/env bash
# soak.sh: holds many concurrent connections on the echo example with every
# echo checked, then stops the server under load and checks the drain.
#
#   bash test/soak/soak.sh            # 10,000 connections for 60 s
#   bash test/soak/soak.sh --short    # CI: 1,000 connections for 5 s
#
# Phase 1 (hold): atoll_loadgen keeps N connections in ping-pong with the
# echo example for D seconds; every answer is compared byte for byte with
# its request. Passes with 0 errors of any kind. Reports the server's peak
# memory (VmHWM) per connection.
#
# Phase 2 (drain): 200 ping-pong connections; SIGTERM to the server
# (--shutdown-timeout=2000) in the middle of the load. Passes when the
# server exits 0 within the bound, a connect right after the signal is
# refused, and no client sees a reset, a wrong answer or a timeout: each
# client gets every answer, then an orderly close (its one request sent
# while the server's FIN was on the way is the only one unanswered; the
# load generator counts it as unexpected_close).
set -euo pipefail

cd "$(dirname "$0")/../.."
build=build
connections=10000
duration=60
drain_clients=200
while (($#)); do
  case $1 in
    --short) connections=1000 duration=5 ;;
    --build-dir) build=$2; shift ;;
    --connections) connections=$2; shift ;;
    --duration) duration=$2; shift ;;
    -h | --help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "soak.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

echo_bin=$build/examples/echo
loadgen=$build/test/bench/atoll_loadgen
for f in "$echo_bin" "$loadgen"; do
  [[ -x $f ]] || { echo "soak.sh: $f is missing: build first (./setup.sh)" >&2; exit 2; }
done

# Each connection costs an fd in the server and one in the load generator
# (each process has its own limit).
hard=$(ulimit -Hn)
[[ $hard == unlimited ]] && hard=1048576
if ((hard < connections + 1024)); then
  connections=$((hard > 1124 ? hard - 1024 : hard / 2))
  echo "soak.sh: the hard fd limit is $hard: holding $connections connections instead" >&2
fi
ulimit -n "$((connections + 1024 < hard ? connections + 1024 : hard))"

work=$(mktemp -d)
server=""
cleanup() {
  [[ -z $server ]] || kill -KILL "$server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

fail=0
check() { # check CONDITION-TEXT RESULT
  if [[ $2 == ok ]]; then
    echo "  ok    $1"
  else
    echo "  FAIL  $1 ($2)"
    fail=1
  fi
}

start_echo() { # start_echo ARGS...: sets server and port
  : >"$work/out"
  "$echo_bin" --port=0 --host=loopback "$@" >"$work/out" 2>"$work/err" &
  server=$!
  local i
  for ((i = 0; i < 200; i++)); do
    grep -q '^listening on ' "$work/out" && break
    kill -0 "$server" 2>/dev/null || { cat "$work/err" >&2; exit 1; }
    sleep 0.05
  done
  port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/out")
  [[ -n $port ]] || { echo "soak.sh: the echo example did not listen" >&2; exit 1; }
}

# Prints "errors N (kind n, ...)" of a load generator report, or "errors 0".
errors_of() {
  grep -o 'errors [0-9]*\( ([^)]*)\)\?' "$1" | tail -1
}
count_of() { # count_of KIND FILE
  errors_of "$2" | grep -o "$1 [0-9]*" | awk '{ print $2 }' | grep . || echo 0
}

echo "== hold: $connections connections, ping-pong for $duration s, every echo checked"
start_echo --read-timeout=0
"$loadgen" --port "$port" --connections "$connections" --threads 2 --warmup 0 \
  --duration "$duration" --timeout 60 >"$work/hold" 2>&1 || true
grep '^pingpong' "$work/hold" || cat "$work/hold"
hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$server/status")
kill -TERM "$server"
wait "$server" && rc=0 || rc=$?
server=""
total=$(errors_of "$work/hold" | awk '{ print $2 }')
check "every echo of $connections connections intact (errors: ${total:-?})" \
  "$([[ ${total:-x} == 0 ]] && echo ok || errors_of "$work/hold")"
check "server exit code 0 after SIGTERM" "$([[ $rc == 0 ]] && echo ok || echo "exit $rc")"
echo "  peak server memory: $hwm KiB ($((hwm * 1024 / connections)) B per connection)"

echo "== drain: $drain_clients ping-pong connections, SIGTERM under load, --shutdown-timeout=2000"
start_echo --shutdown-timeout=2000
"$loadgen" --port "$port" --connections "$drain_clients" --warmup 0 --duration 30 \
  >"$work/drain" 2>&1 &
lg=$!
sleep 1.5 # load running
t0=$(date +%s%N)
kill -TERM "$server"
# A connect right after the signal must be refused (the listener closes first).
refused=ok
for _ in 1 2 3 4 5 6 7 8 9 10; do
  sleep 0.01
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then refused="a connect succeeded"; fi
done
wait "$server" && rc=0 || rc=$?
t1=$(date +%s%N)
server=""
wait "$lg" || true
grep '^pingpong' "$work/drain" || cat "$work/drain"
stop_ms=$(((t1 - t0) / 1000000))
check "server exit code 0" "$([[ $rc == 0 ]] && echo ok || echo "exit $rc")"
check "stopped within the 2 s bound ($stop_ms ms)" "$( ((stop_ms < 2000)) && echo ok || echo "too slow")"
check "connects refused once stopping" "$refused"
for kind in reset mismatch timeout connect_failed; do
  n=$(count_of "$kind" "$work/drain")
  check "no $kind among $drain_clients clients" "$([[ $n == 0 ]] && echo ok || echo "$n")"
done
echo "  orderly closes with one request in flight: $(count_of unexpected_close "$work/drain") of $drain_clients"
exit "$fail"
