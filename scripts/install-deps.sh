#!/usr/bin/env bash
# Installs the Debian packages mcli needs to build and test, and only those missing.
# Idempotent: a second run installs nothing. Works as root, uses sudo otherwise.
# Usage: scripts/install-deps.sh [--test | --bench]
#   --test adds what the test suite needs, --bench what bench/ needs.
set -euo pipefail

build_pkgs=(
  build-essential cmake pkg-config
  libcurl4-openssl-dev libmicrohttpd-dev libjansson-dev
  libopenblas-pthread-dev libutf8proc-dev libpcre2-dev
  libsqlite3-dev libssl-dev libminizip-dev
)
test_pkgs=(
  libcmocka-dev python3 python3-pytest python3-requests python3-numpy
  cppcheck clang libclang-rt-dev
)
# bench/ writes random-weight models with torch and load-tests the server with wrk.
bench_pkgs=(
  python3 python3-torch python3-numpy wrk
)

want=("${build_pkgs[@]}")
case "${1:-}" in
  --test) want+=("${test_pkgs[@]}") ;;
  --bench) want+=("${bench_pkgs[@]}") ;;
  "") ;;
  *) echo "install-deps: unknown option '$1' (use --test or --bench)" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#want[@]} packages present"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1
  fi
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
