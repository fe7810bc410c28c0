#!/usr/bin/env bash
# The whole test suite: Release build + every test (unit, integration on the real model, CLI error
# paths), then an ASan/UBSan build running the unit and CLI tests; where nvcc exists, the CUDA
# build (build-cuda: commvq-bench + gpu_tests) and the `gpu` tests, which skip without a device.
#   scripts/test.sh [--no-sanitize] [--large]
# --large also runs the `large` tests (Qwen2.5-Coder-1.5B against llama.cpp; needs
# scripts/get-model.sh qwen2.5-coder-1.5b); by default they are left out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
sanitize=1
large=0
for a in "$@"; do
  case "$a" in
    --no-sanitize) sanitize=0 ;;
    --large) large=1 ;;
    *) echo "test.sh: unknown option $a (expected --no-sanitize, --large)" >&2; exit 2 ;;
  esac
done

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" -LE large
if [ "$large" = 1 ]; then
  bash scripts/get-model.sh qwen2.5-coder-1.5b
  ctest --test-dir build --output-on-failure -j "$jobs" -L large
fi

if [ "$sanitize" = 1 ]; then
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOMMVQ_SANITIZE=ON \
        -DCOMMVQ_BUILD_BENCH=OFF > /dev/null
  cmake --build build-asan -j "$jobs" --target unit_tests commvq-bench
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -L 'unit|cli'
fi

nvcc=$(command -v nvcc || true)
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ]; then
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DCOMMVQ_CUDA=ON -DCMAKE_CUDA_COMPILER="$nvcc" > /dev/null
  cmake --build build-cuda -j "$jobs" --target commvq-bench gpu_tests
  ctest --test-dir build-cuda --output-on-failure -j "$jobs" -L gpu
fi
