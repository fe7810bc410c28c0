#!/usr/bin/env bash
# The whole test suite, configured from CMakePresets.json:
#  1. the Release build + every test (unit, integration on the real model, CLI error paths). Where
#     nvcc exists this is the `cuda` preset (build-cuda: the same code plus the GPU backend, whose
#     `gpu` tests skip without a device), otherwise the `release` preset (build);
#  2. the `asan` preset (ASan/UBSan, CPU-only, so the build without CUDA is compiled too) running
#     the unit and CLI tests.
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

nvcc=$(command -v nvcc || true)
if [ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ]; then nvcc=/usr/local/cuda/bin/nvcc; fi
if [ -n "$nvcc" ]; then
  preset=cuda; dir=build-cuda
  cmake --preset cuda -DCMAKE_CUDA_COMPILER="$nvcc" > /dev/null
else
  preset=release; dir=build
  cmake --preset release > /dev/null
fi
echo "test.sh: $preset build in $dir"
cmake --build "$dir" -j "$jobs"
ctest --test-dir "$dir" --output-on-failure -j "$jobs" -LE large
if [ "$large" = 1 ]; then
  bash scripts/get-model.sh qwen2.5-coder-1.5b
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" -L large
fi

if [ "$sanitize" = 1 ]; then
  cmake --preset asan > /dev/null
  cmake --build build-asan -j "$jobs" --target unit_tests commvq-bench
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
    ctest --test-dir build-asan --output-on-failure -j "$jobs" -L 'unit|cli'
fi
