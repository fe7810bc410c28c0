#!/usr/bin/env bash
# Bad input through the real CLI: one clear error line naming the problem, non-zero exit, no crash.
set -u
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

# expect_error NAME PATTERN -- command...
expect_error() {
  local name=$1 pattern=$2
  shift 3
  "$@" > "$tmp/out" 2> "$tmp/err"
  local rc=$?
  if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -q -- "$pattern" "$tmp/err"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL $name: exit $rc, stderr:"
    sed 's/^/    /' "$tmp/err"
  fi
}

printf 'XXXXthis is not a gguf file at all' > "$tmp/bad_magic.gguf"
printf 'GGUF\003\000\000\000' > "$tmp/truncated.gguf"
: > "$tmp/empty.gguf"
head -c 1000000 /dev/urandom > "$tmp/random.gguf"

expect_error missing-model "nope.gguf" -- "$bin" info --model "$tmp/nope.gguf"
expect_error bad-magic "bad magic" -- "$bin" info --model "$tmp/bad_magic.gguf"
expect_error truncated "truncated" -- "$bin" info --model "$tmp/truncated.gguf"
expect_error empty "not a GGUF file" -- "$bin" info --model "$tmp/empty.gguf"
expect_error random "random.gguf" -- "$bin" info --model "$tmp/random.gguf"
expect_error directory "not a regular file" -- "$bin" info --model "$tmp"
expect_error unknown-subcommand "" -- "$bin" frobnicate

model="${COMMVQ_MODEL:-$HOME/.cache/commvq-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$model" ]; then
  head -c 5000000 "$model" > "$tmp/cut.gguf"
  expect_error truncated-real-model "past the end" -- "$bin" info --model "$tmp/cut.gguf"
  expect_error unknown-kv "unknown KV method 'nope'" -- "$bin" generate --model "$model" --prompt hi --kv nope
  expect_error bad-kv-option "unknown option 'x'" -- "$bin" generate --model "$model" --prompt hi --kv fp16:x=1
  expect_error missing-data "no/such/file.txt" -- "$bin" eval --model "$model" --task perplexity --data "$tmp/no/such/file.txt"
elif [ "${CI:-}" = "true" ]; then
  echo "FAIL: $model is missing (CI must install it with scripts/setup.sh)"
  fail=$((fail + 1))
fi

echo "cli error paths: $pass passed, $fail failed"
[ $fail -eq 0 ]
