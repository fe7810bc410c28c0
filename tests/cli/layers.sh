#!/usr/bin/env bash
# cmake/check_layers.cmake: the tree passes; a tree where core/ includes an eval/ header fails, and
# the error names the file, the header and both layers.
set -u
root=${1:?usage: layers.sh <source root>}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
if ! cmake -DROOT="$root" -P "$root/cmake/check_layers.cmake" > "$tmp/out" 2>&1; then
  echo "FAIL: the tree itself does not pass:"; cat "$tmp/out"; fail=1
fi
mkdir -p "$tmp/tree/src/core" "$tmp/tree/src/eval" "$tmp/tree/src/tasks"
printf '#include "eval/tables.h"\n' > "$tmp/tree/src/core/bad.h"
printf '#include "core/error.h"\n#include "tasks/task.h"\n' > "$tmp/tree/src/eval/good.cpp"
if cmake -DROOT="$tmp/tree" -P "$root/cmake/check_layers.cmake" > "$tmp/out" 2>&1; then
  echo "FAIL: an upward include was not caught"; fail=1
elif ! grep -q 'src/core/bad.h (core) includes eval/tables.h (eval)' "$tmp/out"; then
  echo "FAIL: the error does not name the file and layers:"; cat "$tmp/out"; fail=1
elif grep -q 'good.cpp' "$tmp/out"; then
  echo "FAIL: a downward include was reported"; cat "$tmp/out"; fail=1
fi
[ $fail -eq 0 ] && echo "layers: 2 passed, 0 failed"
exit $fail
