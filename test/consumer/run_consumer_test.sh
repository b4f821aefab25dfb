#!/usr/bin/env bash
# run_consumer_test.sh BUILD_DIR: installs Atoll from BUILD_DIR into a
# temporary prefix, then builds and runs test/consumer against it twice: with
# find_package(atoll CONFIG) and with pkg-config. Exits non-zero on any
# failure.
set -euo pipefail
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "== cmake --install into $work/prefix"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log"
for f in lib/cmake/atoll/atoll-config.cmake lib/cmake/atoll/atoll-config-version.cmake \
         lib/cmake/atoll/FindCAF.cmake lib/pkgconfig/atoll.pc include/atoll/all.hpp \
         lib/libatoll_runtime.a; do
  [[ -f $work/prefix/$f ]] || { echo "missing after install: $f"; exit 1; }
done

echo "== find_package(atoll CONFIG)"
cmake -S "$here" -B "$work/cmake-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$work/prefix" > "$work/configure.log" \
  || { cat "$work/configure.log"; exit 1; }
cmake --build "$work/cmake-build" > "$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/cmake-build/consumer"

echo "== a version of another major is refused"
if cmake -S "$here" -B "$work/major" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" \
     -DATOLL_CONSUMER_VERSION=99 > "$work/major.log" 2>&1; then
  echo "find_package(atoll 99) was accepted"; exit 1
fi
grep -q 'requested version "99"' "$work/major.log" \
  || { echo "find_package(atoll 99) failed for another reason:"; cat "$work/major.log"; exit 1; }

echo "== pkg-config"
export PKG_CONFIG_PATH="$work/prefix/lib/pkgconfig"
# shellcheck disable=SC2046
c++ -O1 -o "$work/pc-consumer" "$here/consumer.cpp" $(pkg-config --cflags --libs atoll)
"$work/pc-consumer"
echo "== consumer test passed"
