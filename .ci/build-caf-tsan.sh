#!/usr/bin/env bash
# Builds CAF 0.17.6's core, io and openssl libraries with ThreadSanitizer into
# build-caf-tsan/install, from Debian's source package (apt-get source, as
# root). Debian's libcaf-core is not instrumented: TSan then cannot see the
# synchronization inside CAF's mailboxes and reports every message hand-off as
# a race. The `tsan` preset uses this build when it exists. Upstream 0.17.6
# misses an #include <limits> in libcaf_io (Debian patches it): -include limits.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/build-caf-tsan
mkdir -p "$root/src"
cd "$root/src"
if [[ ! -d actor-framework-0.17.6 ]]; then
  list=/etc/apt/sources.list.d/atoll-deb-src.sources
  printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > "$list"
  trap 'rm -f "$list"; apt-get update -qq || true' EXIT
  apt-get update -qq
  # Only the upstream tarball is needed (Debian's patches do not touch the
  # core library's behaviour); apt-get may fail on the rest.
  apt-get source --download-only actor-framework || true
  # Exit code 3: the source could not be fetched (CI then skips TSan, loudly).
  [[ -f actor-framework_0.17.6.orig.tar.gz ]] || { echo "no CAF source tarball" >&2; exit 3; }
  tar xzf actor-framework_0.17.6.orig.tar.gz
fi
cmake -S actor-framework-0.17.6 -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENSSL=no -DCAF_NO_OPENCL=yes \
  -DCAF_NO_PYTHON=yes -DCAF_NO_TOOLS=yes -DCAF_LOG_LEVEL=QUIET \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer -include limits" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_INSTALL_PREFIX="$root/install"
cmake --build build -j2
cmake --install build
echo "instrumented CAF in $root/install"
