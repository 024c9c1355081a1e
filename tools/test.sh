#!/usr/bin/env bash
# The whole test suite: the library is exactly what the notebooks export, the notebooks run, and pytest passes.
# Run it through the README's test command, which first creates .venv and installs everything.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg PYTHONWARNINGS=ignore::UserWarning
bin=.venv/bin

echo "== 0/3 lint: no unused imports or variables, no undefined names (ruff.toml)"
"$bin/ruff" check --quiet tocoad tests benchmarks tools

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
# headless Chromium for the rendered-page screenshot test (Debian's package; the test skips, saying why, without it)
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  timeout 400 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null 2>&1 \
    || echo "(chromium could not be installed: the screenshot test will be skipped)"
fi
"$bin/python" -m pytest tests -q -p no:cacheprovider "$@"
