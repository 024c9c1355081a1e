"""The GPU check runs where no GPU is: its `--dry` path on the CPU goes through every part (prediction, training and memory per step)."""
import os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def test_gpu_check_dry_run_goes_through_every_part(tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'OMP_NUM_THREADS': '1', 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, str(ROOT / 'benchmarks' / 'gpu_check.py'), '--dry', '--work', str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for part in ('1. prediction per step', 'predict washer (64, 64)', 'peer ratio', '2. training per step', "stage II at", '3. memory by size', '96x64 micro_batch 2 (uses 2)'):
        assert part in r.stdout, (part, r.stdout[-2000:])
    assert not (ROOT / 'results' / 'gpu_check.json').exists() or 'dry' not in (ROOT / 'results' / 'gpu_check.json').read_text()  # a dry run writes no results
