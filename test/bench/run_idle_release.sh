#!/usr/bin/env bash
# Idle memory per connection with and without the scheduler's release of free
# heap memory at rest, against the epoll baseline, interleaved per round.
#
#   bash test/bench/run_idle_release.sh [BUILD_DIR] [ROUNDS] [CONNECTIONS] [tls|plain]
#
# Defaults: build 3 2000 tls. Per round it starts, one after the other, the
# example (tls_echo or echo) with its defaults, the same with
# --scheduler.release-memory-after=0, and atoll_baseline_echo; holds
# CONNECTIONS idle connections (atoll_loadgen --mode idle, one echo each) and
# prints the RSS growth per connection 0.3 s after the last was set up (as
# run_bench.sh measures idle memory), the loadgen's verdict and the load.
set -u
build=${1:-build}
rounds=${2:-3}
n=${3:-2000}
mode=${4:-tls}
[[ $rounds =~ ^[1-9][0-9]*$ && $n =~ ^[1-9][0-9]*$ ]] || { echo "rounds and connections must be positive integers" >&2; exit 2; }
[[ $mode == tls || $mode == plain ]] || { echo "the mode must be tls or plain" >&2; exit 2; }
build=$(cd "$build" && pwd) || exit 2
for tool in examples/tls_echo examples/echo test/bench/atoll_baseline_echo test/bench/atoll_loadgen; do
  [[ -x $build/$tool ]] || { echo "$build/$tool not found (build it first)" >&2; exit 1; }
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=localhost 2>/dev/null
rss() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
if [[ $mode == tls ]]; then
  loadopt=(--tls)
  atoll="$build/examples/tls_echo --port=0 --certfile=cert.pem --keyfile=key.pem"
  epoll="$build/test/bench/atoll_baseline_echo --port=0 --tls --certfile=cert.pem --keyfile=key.pem"
else
  loadopt=()
  atoll="$build/examples/echo --port=0"
  epoll="$build/test/bench/atoll_baseline_echo --port=0"
fi
declare -A cmd=([atoll]="$atoll" [atoll_never]="$atoll --scheduler.release-memory-after=0" [epoll]="$epoll")
for ((r = 1; r <= rounds; r++)); do
  for label in atoll atoll_never epoll; do
    # shellcheck disable=SC2086 # a command line
    ${cmd[$label]} >server.out 2>server.err &
    pid=$!
    for _ in $(seq 1 100); do grep -q listening server.out && break; sleep 0.1; done
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' server.out)
    [[ -n $port ]] || { echo "$label did not start" >&2; kill "$pid"; exit 1; }
    sleep 0.5
    before=$(rss "$pid")
    "$build/test/bench/atoll_loadgen" --port "$port" --mode idle "${loadopt[@]}" --connections "$n" \
      --hold 2 --timeout 120 --check --reset-close >loadgen.out 2>&1 &
    lg=$!
    for _ in $(seq 1 2400); do grep -q ' connections established$' loadgen.out && break; sleep 0.05; done
    sleep 0.3
    held=$(rss "$pid")
    wait "$lg"
    verdict=$(grep -q 'errors 0' loadgen.out && echo ok || echo "loadgen errors")
    kill -INT "$pid"
    wait "$pid" 2>/dev/null
    echo "round $r $label: $(((held - before) * 1024 / n)) B/connection (RSS $before -> $held KiB, $verdict, load $(cut -d' ' -f1 /proc/loadavg))"
  done
done
