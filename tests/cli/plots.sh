#!/usr/bin/env bash
# `tables` writes PNG plots with the interpreter it finds (scripts/setup.sh makes one available):
# run it on the committed results/quick and check every PNG decodes (signature, chunk CRCs, IHDR,
# inflated IDAT of the right size) with Python's standard library alone. Without a python that has
# matplotlib this skips locally and fails under CI=true.
set -euo pipefail
bin="${COMMVQ_BIN:?set COMMVQ_BIN to the commvq-bench binary}"
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$bin" tables --results "$root/results/quick" --out "$tmp/tables" > "$tmp/out" 2>&1
if ! grep -q "^plots: " "$tmp/out"; then
  if [ "${CI:-}" = "true" ]; then echo "FAIL: no plots in CI:"; cat "$tmp/out"; exit 1; fi
  echo "SKIP: $(grep -i "plot" "$tmp/out" || cat "$tmp/out")"; exit 77
fi
grep "^plots: " "$tmp/out"
n=$(find "$tmp/tables" -name '*.png' | wc -l)
[ "$n" -ge 1 ] || { echo "FAIL: no PNG written"; exit 1; }
python=$(command -v python3 || echo /usr/bin/python3)
"$python" - "$tmp/tables"/*.png <<'PY'
import struct, sys, zlib
for path in sys.argv[1:]:
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    pos, idat, ihdr, end = 8, b"", None, False
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"{path}: bad CRC in {kind!r}"
        if kind == b"IHDR": ihdr = struct.unpack(">IIBBBBB", body)
        if kind == b"IDAT": idat += body
        if kind == b"IEND": end = True
        pos += 12 + length
    assert ihdr and end, f"{path}: IHDR or IEND missing"
    w, h, depth, color, _, _, interlace = ihdr
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[color]
    raw = zlib.decompress(idat)
    if interlace == 0:
        assert len(raw) == h * (1 + (w * channels * depth + 7) // 8), f"{path}: pixel data of the wrong size"
    assert w > 100 and h > 100, f"{path}: {w}x{h} is not a plot"
    print(f"{path.rsplit('/', 1)[1]}: {w}x{h} PNG decodes")
PY
echo "PASS: $n PNG files decode"
