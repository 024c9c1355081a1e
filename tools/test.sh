#!/usr/bin/env bash
# The whole test suite: the library is exactly what the notebooks export, the notebooks run, and pytest passes.
# Run it through the README's test command, which first creates .venv and installs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONWARNINGS=ignore::UserWarning
bin=.venv/bin

echo "== 1/3 nbdev_export leaves no diff"
before=$(git status --porcelain -- tocoad; git diff -- tocoad)
"$bin/nbdev_export"
after=$(git status --porcelain -- tocoad; git diff -- tocoad)
if [ "$before" != "$after" ]; then
  echo "nbdev_export changed tocoad/: the library was edited by hand or a notebook was not exported:"; git status --porcelain -- tocoad; exit 1
fi

echo "== 2/3 nbdev_test (cells flagged slow or cuda are skipped)"
"$bin/nbdev_test" --n_workers 2 --timing

echo "== 3/3 pytest"
"$bin/python" -m pytest tests -q -p no:cacheprovider "$@"
