"""Stages I and II on CPU with a tiny backbone: learning, frozen parts, reproducibility, resume, safe checkpoints."""
import shutil
import numpy as np
from pathlib import Path
import pytest
import torch
import tocoad.training as training
from tocoad.core import preset, TocoadError, seed_everything
from tocoad.data import make_toy_dataset, load_samples, AnomalyDataset, ImageTransform
from tocoad.backbone import FeatureExtractor
from tocoad.discriminator import DiscriminativeNetwork
from tocoad.contrastive import ContrastiveHead
from tocoad.generators import make_generator
from tocoad.training import StageDataset, Runtime, train_stage1, train_stage2, train_tocoad, load_checkpoint

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=8, n_test_good=1, n_test_defect=1, size=80)
    return load_samples(root, 'washer')

def tiny(**kw): return preset('tiny', device='cpu', **kw)

class FixedBatch(StageDataset):
    "Every epoch sees the same items: a fixed batch to overfit."
    epoch = property(lambda self: 0, lambda self, v: None)

def _parts(cfg, samples):
    seed_everything(cfg.seed)
    F = FeatureExtractor(cfg.backbone, cfg.weights)
    base = AnomalyDataset(samples, ImageTransform(cfg.image_size, cfg.resize, True, F.mean, F.std), normalize=False)
    return F, DiscriminativeNetwork(F.channels, cfg.decoder_width), base

def test_stage1_loss_falls_on_a_fixed_batch(toy):
    cfg = tiny(stage1_epochs=25, batch_size=4, stage1_lr=1e-3)
    F, D, base = _parts(cfg, toy[:4])
    h = train_stage1(F, D, FixedBatch(base, make_generator('perlin'), 0, 0), cfg, Runtime('cpu'), progress=False)
    assert len(h) == 25 and h[-1]['loss'] < 0.6 * h[0]['loss'], (h[0], h[-1])

def test_stage2_loss_falls_on_a_fixed_batch_and_leaves_D_alone(toy):
    cfg = tiny(stage2_epochs=20, batch_size=4, stage2_lr=0.05)
    F, D, base = _parts(cfg, toy[:4])
    head = ContrastiveHead(F.channels, cfg.cl_layers, cfg.cl_concat, cfg.proj_dim, cfg.pred_layers)
    D_before = {k: v.clone() for k, v in D.state_dict().items()}
    F_before = {k: v.clone() for k, v in F.state_dict().items()}
    h = train_stage2(F, D, head, FixedBatch(base, make_generator('perlin'), 2, 0), cfg, Runtime('cpu'), progress=False)
    assert h[-1]['loss'] < h[0]['loss'] - 0.05, (h[0], h[-1])
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in D_before.items())  # D frozen: weights and BN statistics
    assert any(not torch.equal(v, F.state_dict()[k]) for k, v in F_before.items())  # F fine-tuned

def test_stage1_leaves_F_alone(toy):
    cfg = tiny(stage1_epochs=1, batch_size=4)
    F, D, base = _parts(cfg, toy[:4]); before = {k: v.clone() for k, v in F.state_dict().items()}
    train_stage1(F, D, StageDataset(base, make_generator('perlin'), 0, 0), cfg, Runtime('cpu'), progress=False)
    assert all(torch.equal(v, F.state_dict()[k]) for k, v in before.items())

def _weights(m): return {k: v.clone() for k, v in m.state_dict().items()}

def test_seeded_runs_are_reproducible(toy):
    cfg = tiny(stage1_epochs=1, stage2_epochs=1)
    a, _, ha = train_tocoad(cfg, toy, progress=False); b, _, hb = train_tocoad(cfg, toy, progress=False)
    assert ha == hb and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    c, _, _ = train_tocoad(cfg.replace(seed=1), toy, progress=False)
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())

@pytest.mark.parametrize('method', ['simsiam', 'byol'])
def test_resume_continues_to_the_same_result(toy, tmp_path, monkeypatch, method):
    cfg = tiny(stage1_epochs=2, stage2_epochs=2, cl_method=method)
    full, _, h_full = train_tocoad(cfg, toy, out_dir=tmp_path / 'full', progress=False)
    real_save, calls = training.save_checkpoint, []
    def save_then_crash(*a, **k):
        real_save(*a, **k); calls.append(1)
        if len(calls) == 3: raise KeyboardInterrupt  # after stage I and the first epoch of stage II
    monkeypatch.setattr(training, 'save_checkpoint', save_then_crash)
    with pytest.raises(KeyboardInterrupt): train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', progress=False)
    monkeypatch.setattr(training, 'save_checkpoint', real_save)
    resumed, _, h_res = train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', resume=True, progress=False)
    assert h_res == h_full
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())

def test_resume_refuses_another_config(toy, tmp_path):
    cfg = tiny(stage1_epochs=1, stage2_epochs=0, stages='dnp+ncl')
    train_tocoad(cfg, toy, out_dir=tmp_path, progress=False)
    with pytest.raises(TocoadError, match='another config'): train_tocoad(cfg.replace(lam=0.3), toy, out_dir=tmp_path, resume=True, progress=False)

def test_ncl_only_trains_without_D(toy):
    F, D, h = train_tocoad(tiny(stages='ncl', stage2_epochs=1), toy, progress=False)
    assert D is None and {x['stage'] for x in h} == {2} and 'l_neg' not in h[0]

def test_corrupt_checkpoint_is_refused(toy, tmp_path):
    train_tocoad(tiny(stage1_epochs=1, stage2_epochs=0), toy, out_dir=tmp_path, progress=False)
    ck = tmp_path / 'stage1'; (ck / 'tensors.safetensors').write_bytes(b'\x80\x04garbage')
    F = FeatureExtractor('resnet18', 'random')
    with pytest.raises(TocoadError, match='not a valid safetensors file'): load_checkpoint(ck, {'D': DiscriminativeNetwork(F.channels)})

@pytest.mark.parametrize('generator', ['perlin', 'cutpaste', 'nsa'])
def test_every_generator_trains_from_the_config(toy, generator):
    F, D, h = train_tocoad(tiny(generator=generator, stage1_epochs=1, stage2_epochs=1), toy, progress=False)
    assert {x['stage'] for x in h} == {1, 2} and all(np.isfinite(x['loss']) for x in h)
