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
# one notebook at a time: on 2 cores, two torch processes at once oversubscribe the threads and took ~800 s for what
# one worker does in ~140 s (measured on this project's machine)
"$bin/nbdev_test" --n_workers 1 --timing

echo "== 3/3 pytest"
# headless Chromium and its chromedriver for the rendered-page screenshot test and the browser test of a panel (Debian's
# packages; the tests skip, saying why, without them)
if { ! command -v chromium || ! command -v chromedriver; } >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  timeout 400 bash -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver' >/dev/null 2>&1 \
    || echo "(chromium/chromium-driver could not be installed: the screenshot and browser tests will be skipped)"
fi
"$bin/python" -m pytest tests -q -p no:cacheprovider "$@"
