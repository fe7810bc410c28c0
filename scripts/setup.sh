#!/usr/bin/env bash
# One-time setup on a fresh Debian machine: system packages, the default model, the evaluation
# data, and a Release build in build/. Safe to re-run.
#   scripts/setup.sh [--no-build]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

packages=(build-essential cmake ninja-build pkg-config python3 python3-pip curl ca-certificates
          libeigen3-dev libcli11-dev nlohmann-json3-dev libopenblas-dev libpcre2-dev
          libgtest-dev libgmock-dev libbenchmark-dev
          clang-format         # scripts/check-format.sh (CI checks the tree against .clang-format)
          python3-matplotlib   # PNG plots of `commvq-bench tables` (scripts/plot.py)
          slurmctld slurmd slurm-client munge)  # grids as Slurm job arrays (scripts/slurm/, tests/cli/slurm.sh)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" > /dev/null
fi

# The interpreter `tables` draws its PNG plots with (src/eval/tables.h, plot_interpreters): Debian's
# python3 with python3-matplotlib, called by path — whatever `python3` on PATH is (pyenv, conda, a venv).
if ! /usr/bin/python3 -c 'import matplotlib' 2> /dev/null; then
  echo "setup: /usr/bin/python3 cannot import matplotlib although python3-matplotlib is installed" >&2
  exit 1
fi
echo "setup: plots with /usr/bin/python3 (matplotlib $(/usr/bin/python3 -c 'import matplotlib; print(matplotlib.__version__)'))"

bash scripts/get-model.sh
bash scripts/get-data.sh

if [ "${1:-}" != "--no-build" ]; then
  cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release > /dev/null
  cmake --build build --target commvq-bench
  echo "setup: built build/commvq-bench"
fi
