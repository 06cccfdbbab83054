#!/usr/bin/env bash
# What COVERAGE=1 deploy/dev/test.sh needs: cargo-nextest (on the machine as a rule),
# cargo-llvm-cov (crates.io, a pinned version)
# and LLVM's llvm-profdata and llvm-cov of the same major version as rustc's LLVM
# (Debian's llvm-N package; rustup's llvm-tools component cannot be fetched here).
set -euo pipefail
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
major=$(rustc -vV | sed -n 's/^LLVM version: \([0-9]*\).*/\1/p')
if [ ! -x "/usr/bin/llvm-cov-$major" ] || [ ! -x "/usr/bin/llvm-profdata-$major" ]; then
  echo "llvm-$major: installing from Debian (rustc uses LLVM $major)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "llvm-$major" >/dev/null
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "cargo-nextest: installing from crates.io"
  cargo install --locked --quiet cargo-nextest
fi
version=0.9.1
if ! cargo llvm-cov --version 2>/dev/null | grep -qx "cargo-llvm-cov $version"; then
  echo "cargo-llvm-cov: installing $version from crates.io"
  cargo install --locked --quiet "cargo-llvm-cov@$version"
fi
