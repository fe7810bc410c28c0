#!/usr/bin/env bash
# Fills <checkout>/data (or $COMMVQ_DATA) with the evaluation data. Copies from ../shared/datasets
# when it exists beside the checkout; otherwise fetches each file from its public origin (see
# datasets/README.md). Files are checked against datasets/manifest.sha256.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="${COMMVQ_DATA:-$root/data}"
shared="${COMMVQ_SHARED_DATASETS:-$root/../shared/datasets}"
manifest="$root/datasets/manifest.sha256"
mkdir -p "$data"

if [ -d "$shared" ]; then
  echo "data: copying from $shared"
  cp -r --no-preserve=mode "$shared"/. "$data"/
else
  echo "data: $shared not found; fetching from the public origins"
  while read -r rel url; do
    [ -z "$rel" ] || [ "${rel:0:1}" = "#" ] && continue
    if [ ! -f "$data/$rel" ]; then
      mkdir -p "$(dirname "$data/$rel")"
      curl -fsSL --retry 3 -o "$data/$rel.partial" "$url"
      mv "$data/$rel.partial" "$data/$rel"
    fi
  done < "$root/datasets/sources.txt"
fi

cd "$data"
check_flags="--quiet"
[ -d "$shared" ] || check_flags="--quiet --ignore-missing"
if ! sha256sum -c $check_flags "$manifest"; then
  echo "data: checksum mismatch in $data (see above)" >&2
  exit 1
fi
echo "data: $data (verified against datasets/manifest.sha256)"
