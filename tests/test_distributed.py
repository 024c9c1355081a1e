"""Two CPU processes under torchrun (gloo): identical weights on both ranks, and the same memory bank as one process."""
import subprocess, sys, textwrap
import pytest
import torch
from safetensors.torch import load_file

SCRIPT = textwrap.dedent('''
    import os, sys, torch
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    from pathlib import Path
    from safetensors.torch import save_file
    from tocoad.core import preset
    from tocoad.data import load_samples
    from tocoad.training import train_tocoad
    from tocoad.model import ToCoAD
    out, data = Path(sys.argv[1]), sys.argv[2]
    rank = int(os.environ.get('RANK', 0))
    samples = load_samples(data, 'washer')
    cfg = preset('tiny', device='cpu', stage1_epochs=1, stage2_epochs=2, batch_size=2)
    F, D, h, _ = train_tocoad(cfg, samples, progress=False)
    save_file({k: v.contiguous() for k, v in F.state_dict().items()}, str(out / f'F{rank}.safetensors'))
    save_file({k: v.detach().contiguous() for k, v in F.named_parameters()}, str(out / f'P{rank}.safetensors'))
    m = ToCoAD(cfg.replace(stages='none')).fit(samples, progress=False)
    save_file({'bank': m.bank.vectors.contiguous()}, str(out / f'bank{rank}.safetensors'))
''')

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    from tocoad.data import make_toy_dataset
    return make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=8, n_test_good=1, n_test_defect=1, size=80)

def test_two_processes_end_identical(tmp_path, toy):
    script = tmp_path / 'ddp.py'; script.write_text(SCRIPT)
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(script), str(tmp_path), str(toy)],
                       capture_output=True, text=True, timeout=600, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    f0, f1 = load_file(str(tmp_path / 'F0.safetensors')), load_file(str(tmp_path / 'F1.safetensors'))
    assert f0.keys() == f1.keys() and all(torch.equal(f0[k], f1[k]) for k in f0)
    # stage II under DDP fine-tuned F's weights (not only its batch-norm statistics)
    from tocoad.core import preset
    from tocoad.parts import create_part
    p0 = load_file(str(tmp_path / 'P0.safetensors'))
    init = dict(create_part('F', preset('tiny', device='cpu', stage1_epochs=1, stage2_epochs=2, batch_size=2)).named_parameters())
    assert p0.keys() == init.keys() and sum(not torch.equal(init[k], p0[k]) for k in p0) > 0.9 * len(p0)
    b0, b1 = load_file(str(tmp_path / 'bank0.safetensors'))['bank'], load_file(str(tmp_path / 'bank1.safetensors'))['bank']
    assert torch.equal(b0, b1)
    # the bank gathered from two processes equals the single-process bank
    from tocoad.data import load_samples
    from tocoad.model import ToCoAD
    single = ToCoAD(preset('tiny', device='cpu', stage1_epochs=1, stage2_epochs=2, batch_size=2, stages='none')).fit(load_samples(toy, 'washer'), progress=False)
    torch.testing.assert_close(single.bank.vectors, b0)
