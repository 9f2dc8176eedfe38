#!/usr/bin/env bash
# Creates benchmarks/peers/datatrove/venv with the datatrove peer used by benchmarks/filters.py.
# A peer is never a project dependency: it lives in its own venv (git-ignored) and is only run in a
# subprocess. English word tokenisation comes from spacy.blank("en") (no model download).
# requirements.txt names what we use (filters: datatrove+spacy; dedup: also orjson and psutil); constraints.txt pins every package (a `pip freeze` of a working venv).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x "$HERE/venv/bin/python" ]; then
  "$PYTHON" -m venv "$HERE/venv"
fi
"$HERE/venv/bin/pip" install --quiet --upgrade pip==25.3
"$HERE/venv/bin/pip" install --quiet -r "$HERE/requirements.txt" -c "$HERE/constraints.txt"
"$HERE/venv/bin/python" -c "from importlib.metadata import version; print('datatrove', version('datatrove'), 'spacy', version('spacy'))"
