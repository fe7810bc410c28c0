#!/usr/bin/env bash
# The project's C++ (src/, kernels/, tests/, bench/) against .clang-format.
#   scripts/check-format.sh          list the files clang-format would change; exit 1 if any
#   scripts/check-format.sh --fix    reformat them in place
# Formatting differs between clang-format releases; the tree is formatted with 14 (Debian bookworm's
# clang-format package), which this script prefers when several are installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [ -z "$cf" ]; then
  echo "check-format: clang-format not found (apt-get install clang-format, or scripts/setup.sh)" >&2
  exit 2
fi
mapfile -t files < <(git ls-files 'src/*.cpp' 'src/*.h' 'kernels/*.cpp' 'kernels/*.h' 'kernels/*.cu' 'kernels/*.cuh' \
                                  'tests/*.cpp' 'tests/*.h' 'bench/*.cpp' 'bench/*.h')
if [ "${1:-}" = "--fix" ]; then
  "$cf" -i "${files[@]}"
  echo "check-format: formatted ${#files[@]} files with $("$cf" --version)"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  "$cf" --dry-run --Werror "$f" > /dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "check-format: ${#bad[@]} of ${#files[@]} files differ from .clang-format ($("$cf" --version)):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files match .clang-format"
