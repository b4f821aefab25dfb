#!/usr/bin/env bash
# Atoll's one set-up command: installs every dependency from Debian bookworm's
# packages (as root, or through sudo) and configures and builds Atoll in
# ./build (RelWithDebInfo).
#
#   ./setup.sh            install packages, configure, build
#   ./setup.sh --no-apt   skip the package installation (already done)
#
# Other builds reuse the installed packages, e.g. the sanitizer builds:
#   cmake --preset asan && cmake --build --preset asan
#   cmake --preset tsan && cmake --build --preset tsan
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  build-essential cmake ninja-build pkg-config   # toolchain
  libcaf-dev                                     # C++ Actor Framework 0.17.6
  libboost-test-dev                              # Boost.Test
  libssl-dev openssl                             # OpenSSL 3 (TLS), CLI for tests and certificates
  libfmt-dev nlohmann-json3-dev libcli11-dev     # formatting, JSON, CLI parsing (bench tools)
  python3                                        # end-to-end test drivers
  valgrind                                       # instructions per echo (test/bench/run_callgrind_cost.sh)
  libspdlog-dev                                  # the spdlog log sink adapter and its test
  curl prometheus                                # the metrics endpoint's test (curl, promtool)
  clang libclang-rt-14-dev                       # libFuzzer targets (test/fuzz/run_fuzz.sh)
  libldns-dev                                    # the dns_server example's zone answers
  libjemalloc-dev                                # the plain TCP and UDP example programs' malloc
  bind9-dnsutils dnsperf netcat-openbsd          # dig/dnsperf/nc against the UDP examples
  haproxy                                        # PROXY protocol end to end (send-proxy)
  doxygen                                        # the API reference (--target docs)
  chromium                                       # the observer page's test (headless)
)

if [[ "${1:-}" != "--no-apt" ]]; then
  if [[ "$(id -u)" -eq 0 ]]; then
    sudo_cmd=()
  elif command -v sudo >/dev/null; then
    sudo_cmd=(sudo)
  else
    echo "setup.sh: run as root (or install sudo) to install packages" >&2
    exit 1
  fi
  "${sudo_cmd[@]}" apt-get update
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y --no-install-recommends \
    "${packages[@]}"
fi

cmake --preset default
cmake --build --preset default
