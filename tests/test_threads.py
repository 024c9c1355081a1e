"""Sharing the CPU's cores among tocoad processes (`THREADS`), on the real call path: `fit` beside a second working process."""
import os, subprocess, sys
import pytest
import torch
from tocoad.core import preset
from tocoad.data import load_samples, make_toy_dataset
from tocoad.model import ToCoAD
from tocoad import runtime

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=8, n_test_good=1, n_test_defect=1, size=80)

HOLD = "import sys, time; from tocoad.runtime import ThreadShare; s = ThreadShare(sys.argv[1]); s.__enter__(); print('working', flush=True); time.sleep(120)"

def _fit_recording_threads(toy, monkeypatch):
    "Fit a tiny model; the thread counts it set, in order."
    seen, real = [], torch.set_num_threads
    monkeypatch.setattr(torch, 'set_num_threads', lambda n: seen.append(n) or real(n))
    ToCoAD(preset('tiny', stages='none', device='cpu')).fit(load_samples(toy, 'washer'), progress=False)
    return seen

def test_fit_takes_half_the_cores_while_another_tocoad_process_works_and_gives_them_back(toy, tmp_path, monkeypatch):
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False); monkeypatch.setattr(runtime.THREADS, 'folder', tmp_path)
    before = torch.get_num_threads(); torch.set_num_threads(4)  # as on a 4-core machine, whatever this one has
    other = subprocess.Popen([sys.executable, '-c', HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == 'working'  # the other process has registered through the library
        seen = _fit_recording_threads(toy, monkeypatch)
        assert seen[0] == 2 and seen[-1] == 4 and torch.get_num_threads() == 4, seen  # its share while fitting, all four after
        assert sorted(p.name for p in tmp_path.iterdir()) == [str(other.pid)]  # the fit's own file is gone
        other.kill(); other.wait()
        seen = _fit_recording_threads(toy, monkeypatch)
        assert 2 not in seen and torch.get_num_threads() == 4 and list(tmp_path.iterdir()) == []  # alone: every core; the ended process's file removed
    finally:
        other.kill(); other.wait(); torch.set_num_threads(before)

def test_a_thread_count_set_by_the_user_is_left_alone(toy, tmp_path, monkeypatch):
    monkeypatch.setenv('OMP_NUM_THREADS', '3'); monkeypatch.setattr(runtime.THREADS, 'folder', tmp_path)
    (tmp_path / str(os.getppid())).touch()  # another working process (the parent, alive)
    assert _fit_recording_threads(toy, monkeypatch) == [] and not (tmp_path / str(os.getpid())).exists()
