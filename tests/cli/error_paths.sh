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

# KV specs and `memory` (no model needed with --arch).
expect_error kv-unknown-method "unknown KV method 'kivy'" -- "$bin" memory --arch llama-3.1-8b --kv kivy
expect_error kv-unknown-option "unknown option 'grup'" -- "$bin" memory --arch llama-3.1-8b --kv kivi:grup=32
expect_error kv-bad-bits "k and v must be 1, 2 or 4" -- "$bin" memory --arch llama-3.1-8b --kv kivi:k=3
expect_error kv-bad-window "multiple of group" -- "$bin" memory --arch llama-3.1-8b --kv kivi:window=100
expect_error kv-bad-mode "mode=fast" -- "$bin" memory --arch llama-3.1-8b --kv q8_0:mode=fast
expect_error kv-bad-compress "compress must be both, keys or values" -- "$bin" memory --arch llama-3.1-8b --kv commvq:bits=2,compress=all
expect_error memory-unknown-arch "llama-9b" -- "$bin" memory --arch llama-9b --kv fp16

# Experiment grids, tables and re-scoring (no model needed: these fail before loading one).
printf '{"name": "x", "methods": ["fp16"], "tasks": [{"name": "p", "task": "paskey"}]}' > "$tmp/bad_task.json"
printf '{"name": "x", "methods": ["fp16"], "tasks": [{"name": "p", "task": "passkey"}], "metods": 1}' > "$tmp/bad_key.json"
printf '{"name": "x", "methods": [' > "$tmp/bad_json.json"
printf '{"id": 0, "prediction": "1"}\n' > "$tmp/no_gold.jsonl"
expect_error config-missing "no/such.json" -- "$bin" eval --config "$tmp/no/such.json" --out "$tmp/o"
expect_error config-json "not valid JSON" -- "$bin" eval --config "$tmp/bad_json.json" --out "$tmp/o"
expect_error config-task "unknown task 'paskey'" -- "$bin" eval --config "$tmp/bad_task.json" --out "$tmp/o"
expect_error config-key "unknown key 'metods'" -- "$bin" eval --config "$tmp/bad_key.json" --out "$tmp/o"
expect_error config-no-out "needs --out" -- "$bin" eval --config "$tmp/bad_task.json"
expect_error bad-shard "expected i/n" -- "$bin" eval --config "$tmp/bad_task.json" --out "$tmp/o" --shard 3/2
expect_error tables-no-runs "no runs/ folder" -- "$bin" tables --results "$tmp"
expect_error score-missing "no/preds.jsonl" -- "$bin" score --task passkey --predictions "$tmp/no/preds.jsonl"
expect_error score-no-gold "no gold answer" -- "$bin" score --task passkey --predictions "$tmp/no_gold.jsonl"
expect_error score-bad-task "not supported" -- "$bin" score --task qqq --predictions "$tmp/no_gold.jsonl"

# --device cuda where no CUDA device can be used (a build without CUDA, or no GPU): one clear line.
# Skipped only when this binary has CUDA support and a device (then the command succeeds).
if ! "$bin" bench gpu-attention --context 64 --reps 1 > /dev/null 2>&1; then
  expect_error device-cuda-unavailable "bench gpu-attention: \(this build has no CUDA support (configure with -DCOMMVQ_CUDA=ON)\|no CUDA device was found\)" -- "$bin" bench gpu-attention --context 64 --reps 1
  expect_error device-cuda-eval "^error: --device cuda: " -- "$bin" eval --task perplexity --device cuda --model "$tmp/nope.gguf"
fi
expect_error unknown-device "gpu not in {cpu,cuda}" -- "$bin" eval --task perplexity --device gpu

model="${COMMVQ_MODEL:-$HOME/.cache/commvq-bench/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
if [ -f "$model" ]; then
  head -c 5000000 "$model" > "$tmp/cut.gguf"
  expect_error truncated-real-model "past the end" -- "$bin" info --model "$tmp/cut.gguf"
  expect_error unknown-kv "unknown KV method 'nope'" -- "$bin" generate --model "$model" --prompt hi --kv nope
  expect_error bad-kv-option "unknown option 'x'" -- "$bin" generate --model "$model" --prompt hi --kv fp16:x=1
  expect_error missing-data "no/such/file.txt" -- "$bin" eval --model "$model" --task perplexity --data "$tmp/no/such/file.txt"
  expect_error arith-other-kv "use --kv fp16" -- "$bin" eval --model "$model" --task perplexity --max-tokens 64 --ctx 32 --arith llamacpp --kv q8_0
  expect_error arith-unknown "exact not in" -- "$bin" generate --model "$model" --prompt hi --arith exact
  expect_error arith-bad-kv-option "arith must be native or llamacpp" -- "$bin" generate --model "$model" --prompt hi --kv fp16:arith=exact

  # Hugging Face folders: one written by `convert` loads; broken ones name the file at fault.
  if "$bin" convert --model "$model" --dtype bf16 --out "$tmp/hf" > /dev/null 2> "$tmp/err" &&
     "$bin" info --model "$tmp/hf" 2> "$tmp/err" | grep -q "HF checkpoint"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL hf-convert-info:"
    sed 's/^/    /' "$tmp/err"
  fi
  expect_error hf-exists "already exists" -- "$bin" convert --model "$model" --out "$tmp/hf"
  expect_error hf-dtype "--dtype 'q4' is not one of" -- "$bin" convert --model "$model" --dtype q4 --out "$tmp/hf2"
  mkdir -p "$tmp/hf-noweights" "$tmp/hf-notok" "$tmp/hf-cut"
  cp "$tmp/hf/config.json" "$tmp/hf/tokenizer.json" "$tmp/hf-noweights/"
  expect_error hf-no-weights "neither model.safetensors nor model.safetensors.index.json" -- "$bin" info --model "$tmp/hf-noweights"
  cp "$tmp/hf/config.json" "$tmp/hf/model.safetensors" "$tmp/hf-notok/"
  expect_error hf-no-tokenizer "hf-notok/tokenizer.json: not found" -- "$bin" info --model "$tmp/hf-notok"
  cp "$tmp/hf/config.json" "$tmp/hf/tokenizer.json" "$tmp/hf-cut/"
  head -c 3000000 "$tmp/hf/model.safetensors" > "$tmp/hf-cut/model.safetensors"
  expect_error hf-truncated "hf-cut/model.safetensors" -- "$bin" info --model "$tmp/hf-cut"
  expect_error chat-template-unknown "chat-template: mistral not in" -- "$bin" generate --model "$model" --prompt hi --chat --chat-template mistral
elif [ "${CI:-}" = "true" ]; then
  echo "FAIL: $model is missing (CI must install it with scripts/setup.sh)"
  fail=$((fail + 1))
fi

echo "cli error paths: $pass passed, $fail failed"
[ $fail -eq 0 ]
