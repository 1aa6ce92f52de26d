#!/usr/bin/env bash
# One-time setup of a fresh machine, then `npm install` (fetches llama.cpp, builds the addon).
# Installs, where missing and where apt-get is usable: clang (GCC 12 miscompiles ggml's AMX
# kernels), ccache (fast rebuilds), cmake, ninja and git; on x86-64, the arm64 cross toolchain and
# qemu-user with an arm64 Node.js, which build the linux-arm64 prebuild and run it under emulation.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v clang-19 >/dev/null 2>&1 || command -v clang >/dev/null 2>&1 || missing+=(clang-19)
command -v ccache >/dev/null 2>&1 || missing+=(ccache)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v ninja >/dev/null 2>&1 || missing+=(ninja-build)
command -v git >/dev/null 2>&1 || missing+=(git)
cross=false
if [ "$(uname -m)" = x86_64 ] && [ "$(uname -s)" = Linux ]; then
  cross=true
  command -v aarch64-linux-gnu-strip >/dev/null 2>&1 && [ -d /usr/aarch64-linux-gnu/lib ] || missing+=(crossbuild-essential-arm64)
  command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
fi

if ((${#missing[@]})); then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "[setup] installing ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[setup] please install: ${missing[*]} (continuing with what is here)" >&2
  fi
fi

npm install --no-audit --no-fund
if $cross; then node scripts/emulated-node.mjs fetch arm64; fi
