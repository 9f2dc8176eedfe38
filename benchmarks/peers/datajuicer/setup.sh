#!/usr/bin/env bash
# Creates benchmarks/peers/datajuicer/venv with Data-Juicer (pinned; offline at run time).
# torch is pinned to the CPU wheel on this machine; aiohttp is a missing dependency of 1.6.1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
test -x "$here/venv/bin/python" || "$python" -m venv "$here/venv"
"$here/venv/bin/python" -m pip install -q --upgrade pip
"$here/venv/bin/python" -m pip install -q "torch==2.13.0" "py-data-juicer==1.6.1" "aiohttp==3.14.5" "psutil==7.2.2"
"$here/venv/bin/python" -c "from data_juicer.ops.deduplicator import DocumentMinhashDeduplicator; print('data-juicer ok')"
