#!/usr/bin/env bash
# Creates benchmarks/peers/datatrove/venv with datatrove's MinHash stages (pinned; offline at run time).
# spacy is needed by datatrove's word tokenizer (spacy.blank("en"), no model download).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${PYTHON:-python3}"
test -x "$here/venv/bin/python" || "$python" -m venv "$here/venv"
"$here/venv/bin/python" -m pip install -q --upgrade pip
"$here/venv/bin/python" -m pip install -q "datatrove[processing]==0.10.1" "spacy==3.8.18" "orjson==3.13.0" "psutil==7.2.2"
"$here/venv/bin/python" -c "import datatrove, spacy; print('datatrove', datatrove.__version__ if hasattr(datatrove, '__version__') else 'ok')"
