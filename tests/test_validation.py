"""The validation protocol on the real entry points: held-out images no stage trains on, D's probe, F's validation
scores in metrics.json and report.md, and the guard that keeps frozen F when stage II makes it worse (issue 18)."""
import json, subprocess, sys, warnings
from pathlib import Path
import pytest
import torch
import tocoad.model as model_mod
import tocoad.training as training
from tocoad.core import preset, TocoadWarning
from tocoad.data import make_toy_dataset, load_samples
from tocoad.model import ToCoAD
from tocoad.parts import create_part

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=30, n_test_good=2, n_test_defect=1, size=128)

def drift_cfg(**kw):
    "Stage II only, two epochs at a learning rate 250 times the cpu preset's: a run made to drift."
    return preset('cpu', **{**dict(image_size=128, resize=128, device='cpu', stages='ncl', stage2_epochs=2, stage2_lr=5.0, stage2_bn='frozen',
                                   batch_size=8, coreset_ratio=0.25), **kw})

def _fit(cfg, samples):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); m = ToCoAD(cfg).fit(samples, progress=False)
    return m, [str(x.message) for x in w if issubclass(x.category, TocoadWarning) and 'thresholds rest on' not in str(x.message)]  # the guard's words (30 images leave 3 to set thresholds on: that warning is 10_model's)

def test_a_drifting_stage2_warns_and_keeps_frozen_F_by_default(toy):
    samples = load_samples(toy, 'washer')
    guarded, said = _fit(drift_cfg(), samples)  # stage2_guard='best', the default
    v = guarded.report['validation']
    assert v['after'] < v['before'] - 2 * v['noise'], v  # the drift made the validation score worse beyond noise
    assert v['kept_epoch'] == 0 and len(said) == 1 and 'worse' in said[0] and f"{v['before']:.4f}" in said[0] and 'keeping frozen F' in said[0]
    F0 = dict(create_part('F', guarded.cfg).named_parameters())
    assert all(torch.equal(p, F0[n]) for n, p in guarded.trained['F'].named_parameters())  # frozen F, parameter by parameter
    assert all(torch.equal(p, F0[n]) for n, p in guarded.F.named_parameters())           # and the bank was built on it
    off, said_off = _fit(drift_cfg(stage2_guard='off'), samples)
    assert said_off == [] and off.report['validation']['kept_epoch'] == 2  # without the guard: the drifted F, silently
    assert any(not torch.equal(p, F0[n]) for n, p in off.F.named_parameters())
    assert off.report['validation']['scores'][0] == v['scores'][0]  # the same frozen F, scored the same way

def test_stages_never_see_the_held_out_images_and_the_bank_sees_all(toy, monkeypatch):
    samples, seen = load_samples(toy, 'washer'), {}
    real_train, real_bank = model_mod.train_tocoad, ToCoAD.fit_bank
    def spy_train(cfg, train, *a, held=None, guard=None, **k): seen.update(train=train, held=held, guard=guard); return real_train(cfg, train, *a, held=held, guard=guard, **k)
    def spy_bank(self, s, *a, **k): seen['bank'] = s; return real_bank(self, s, *a, **k)
    monkeypatch.setattr(model_mod, 'train_tocoad', spy_train); monkeypatch.setattr(ToCoAD, 'fit_bank', spy_bank)
    m = ToCoAD(preset('tiny', device='cpu', image_size=64, resize=64, stage1_pool=16, stage1_epochs=1, stage2_epochs=1)).fit(samples, progress=False)
    train, held = [s.path for s in seen['train']], [s.path for s in seen['held']]
    assert len(held) == 3 and not set(train) & set(held) and sorted(train + held) == sorted(s.path for s in samples)
    assert seen['guard'] is not None and seen['guard'].held == seen['held']
    assert [s.path for s in seen['bank']] == [s.path for s in samples]  # the memory bank uses every training image
    assert 0 <= m.report['d_probe_auroc'] and set(m.report['validation']['scores']) == {0, 1}

def test_fit_records_the_probe_and_the_validation_scores(toy, tmp_path):
    out = tmp_path / 'run'
    r = subprocess.run([str(Path(sys.executable).parent / 'tocoad'), 'fit', '--data', str(toy), '--category', 'washer', '--preset', 'tiny',
                        '--set', 'image_size=64', 'resize=64', 'stage1_pool=16', 'stage2_epochs=2', 'device=cpu', '--out', str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    m = json.loads((out / 'metrics.json').read_text())
    assert isinstance(m['d_probe_auroc'], float) and set(m['validation']['scores']) == {'0', '1', '2'}
    assert m['val_score_before'] == m['validation']['scores']['0'] and m['val_score_after'] == m['validation']['scores']['2']
    report = (out / 'report.md').read_text()
    assert 'Did training help?' in report and f"{m['d_probe_auroc']:.4f}" in report and (out / 'validation.png').is_file()

def test_a_resumed_fit_makes_the_guards_choice_as_the_uninterrupted_one(toy, tmp_path, monkeypatch):
    samples, cfg = load_samples(toy, 'washer'), drift_cfg(stage2_epochs=3, stage2_lr=0.5)
    full = ToCoAD(cfg).fit(samples, out_dir=tmp_path / 'full', progress=False)
    real_save, calls = training.save_checkpoint, []
    def save_then_crash(*a, **k):
        real_save(*a, **k); calls.append(1)
        if len(calls) == 1: raise KeyboardInterrupt  # after the first epoch of stage II (the guard may end this drifting run there)
    monkeypatch.setattr(training, 'save_checkpoint', save_then_crash)
    with pytest.raises(KeyboardInterrupt): ToCoAD(cfg).fit(samples, out_dir=tmp_path / 'cut', progress=False)
    monkeypatch.setattr(training, 'save_checkpoint', real_save)
    resumed = ToCoAD(cfg).fit(samples, out_dir=tmp_path / 'cut', resume=True, progress=False)
    assert resumed.report['validation'] == full.report['validation']
    assert all(torch.equal(v, dict(resumed.F.state_dict())[k]) for k, v in full.F.state_dict().items())
