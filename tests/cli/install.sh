#!/usr/bin/env bash
# `cmake --install` lays out bin/commvq-bench and share/commvq-bench/{experiments,scripts}; the
# installed binary, run from an unrelated directory, finds its share/ (not the checkout it was built
# from) and opens an experiment by name from it.
set -u
build=${1:?usage: install.sh <build dir>}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

if ! cmake --install "$build" --prefix "$tmp/prefix" > "$tmp/install.log" 2>&1; then
  echo "FAIL: cmake --install"; cat "$tmp/install.log"; exit 1
fi
p=$tmp/prefix
check "bin/commvq-bench installed" '[ -x "$p/bin/commvq-bench" ]'
check "experiments installed" '[ -f "$p/share/commvq-bench/experiments/quick.json" ] && [ -f "$p/share/commvq-bench/experiments/paper.json" ]'
check "scripts installed" '[ -x "$p/share/commvq-bench/scripts/get-model.sh" ] && [ -f "$p/share/commvq-bench/scripts/plot.py" ]'

mkdir -p "$tmp/elsewhere" && cd "$tmp/elsewhere" || exit 1
"$p/bin/commvq-bench" --version > version.txt 2>&1
check "--version names the installed share/ ($(tr '\n' ' ' < version.txt))" \
  'grep -qF "share: $p/share/commvq-bench " version.txt'
"$p/bin/commvq-bench" plan --config quick --shards 2 > plan.txt 2>&1
check "plan --config quick (by name, from share/experiments): $(head -c 300 plan.txt)" \
  'grep -qF "$p/share/commvq-bench/experiments/quick.json: 4 task instance" plan.txt'
"$p/bin/commvq-bench" plan --config no-such-grid > bad.txt 2>&1
rc=$?
check "an unknown config is an error naming it (rc $rc: $(head -c 200 bad.txt))" '[ $rc -ne 0 ] && grep -q "no-such-grid" bad.txt'
[ $fail -eq 0 ] && echo "install: passed"
exit $fail
