"""Stages I and II on CPU with a tiny backbone: learning, frozen parts, reproducibility, resume, safe checkpoints."""
import copy
import numpy as np
import pytest
import torch
import tocoad.training as training
import tocoad.checkpoints as checkpoints
from tocoad.core import preset, TocoadError, hw
from tocoad.data import make_toy_dataset, load_samples
from tocoad.discriminator import DiscriminativeNetwork
from tocoad.parts import create_part
from tocoad.training import StageDataset, stage_parts, train_stage1, train_stage2, train_tocoad
from tocoad.checkpoints import load_checkpoint

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    root = make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=8, n_test_good=1, n_test_defect=1, size=80)
    return load_samples(root, 'washer')

def tiny(**kw): return preset('tiny', device='cpu', **kw)

class FixedBatch(StageDataset):
    "Every epoch sees the same items: a fixed batch to overfit."
    epoch = property(lambda self: 0, lambda self, v: None)

def _parts(cfg, samples):
    "F, D and C as `train_tocoad` builds them (`stage_parts`), and the training images, un-normalised, for a fixed batch."
    p = stage_parts(cfg.replace(stages='dnp+ncl', stage1_epochs=max(cfg.stage1_epochs, 1), stage2_epochs=max(cfg.stage2_epochs, 1)), samples)
    return p, p.stage1.base

def test_stage1_loss_falls_on_a_fixed_batch(toy):
    cfg = tiny(stage1_epochs=25, batch_size=4, stage1_lr=1e-3)
    p, base = _parts(cfg, toy[:4]); F, D = p.F, p.D
    h = train_stage1(F, D, dataset=FixedBatch(base, p.G, seed=0), cfg=cfg, rt=p.runtime, progress=False)
    assert len(h) == 25 and h[-1]['loss'] < 0.6 * h[0]['loss'], (h[0], h[-1])

def test_stage2_loss_falls_on_a_fixed_batch_and_leaves_D_alone(toy):
    cfg = tiny(stage2_epochs=20, batch_size=4, stage2_lr=0.05)
    p, base = _parts(cfg, toy[:4]); F, D, C = p.F, p.D, p.C
    D_before = {k: v.clone() for k, v in D.state_dict().items()}
    F_before = {k: v.clone() for k, v in F.state_dict().items()}
    h = train_stage2(F, D, C=C, dataset=FixedBatch(base, p.G, views=2, seed=0), cfg=cfg, rt=p.runtime, progress=False)
    assert h[-1]['loss'] < h[0]['loss'] - 0.05, (h[0], h[-1])
    assert all(torch.equal(v, D.state_dict()[k]) for k, v in D_before.items())  # D frozen: weights and BN statistics
    assert any(not torch.equal(v, F.state_dict()[k]) for k, v in F_before.items())  # F fine-tuned

def test_stage1_leaves_F_alone(toy):  # weights and batch-norm statistics: F runs in eval mode
    cfg = tiny(stage1_epochs=1, batch_size=4)
    p, base = _parts(cfg, toy[:4]); F = p.F; before = {k: v.clone() for k, v in F.state_dict().items()}
    train_stage1(F, p.D, dataset=p.stage1, cfg=cfg, rt=p.runtime, progress=False)
    assert all(torch.equal(v, F.state_dict()[k]) for k, v in before.items())

def _weights(m): return {k: v.clone() for k, v in m.state_dict().items()}

def test_seeded_runs_are_reproducible(toy):
    cfg = tiny(stage1_epochs=1, stage2_epochs=1)
    a, _, ha, _ = train_tocoad(cfg, toy, progress=False); b, _, hb, _ = train_tocoad(cfg, toy, progress=False)
    assert ha == hb and all(torch.equal(v, b.state_dict()[k]) for k, v in a.state_dict().items())
    c, _, _, _ = train_tocoad(cfg.replace(seed=1), toy, progress=False)
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())

@pytest.mark.parametrize('method', ['simsiam', 'byol'])
def test_resume_continues_to_the_same_result(toy, tmp_path, monkeypatch, method):
    cfg = tiny(stage1_epochs=2, stage2_epochs=2, cl_method=method)
    full, _, h_full, _ = train_tocoad(cfg, toy, out_dir=tmp_path / 'full', progress=False)
    real_save, calls = training.save_checkpoint, []
    def save_then_crash(*a, **k):
        real_save(*a, **k); calls.append(1)
        if len(calls) == 3: raise KeyboardInterrupt  # after stage I and the first epoch of stage II
    monkeypatch.setattr(training, 'save_checkpoint', save_then_crash)
    with pytest.raises(KeyboardInterrupt): train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', progress=False)
    monkeypatch.setattr(training, 'save_checkpoint', real_save)
    resumed, _, h_res, _ = train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', resume=True, progress=False)
    assert h_res == h_full
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())

def test_resume_refuses_another_config(toy, tmp_path):
    cfg = tiny(stage1_epochs=1, stage2_epochs=0, stages='dnp+ncl')
    train_tocoad(cfg, toy, out_dir=tmp_path, progress=False)
    with pytest.raises(TocoadError, match='another config'): train_tocoad(cfg.replace(lam=0.3), toy, out_dir=tmp_path, resume=True, progress=False)

def test_ncl_only_trains_without_D(toy):
    F, D, h, _ = train_tocoad(tiny(stages='ncl', stage2_epochs=1), toy, progress=False)
    assert D is None and {x['stage'] for x in h} == {2} and 'l_neg' not in h[0]

def test_corrupt_checkpoint_is_refused(toy, tmp_path):
    train_tocoad(tiny(stage1_epochs=1, stage2_epochs=0), toy, out_dir=tmp_path, progress=False)
    ck = tmp_path / 'stage1'; (ck / 'checkpoint.safetensors').write_bytes(b'\x80\x04garbage')
    cfg = tiny(); F = create_part('F', cfg)
    with pytest.raises(TocoadError, match='not a valid tocoad checkpoint'): load_checkpoint(ck, {'D': create_part('D', cfg, F=F)})

@pytest.mark.parametrize('generator', ['perlin', 'cutpaste', 'nsa'])
def test_every_generator_trains_from_the_config(toy, generator):
    F, D, h, _ = train_tocoad(tiny(generator=generator, stage1_epochs=1, stage2_epochs=1), toy, progress=False)
    assert {x['stage'] for x in h} == {1, 2} and all(np.isfinite(x['loss']) for x in h)

# --- the trainable set of every stage, on the real `train_tocoad` path (issue 8) ---

def _snap(parts, what='named_parameters'):
    return {name: {n: t.detach().clone() for n, t in getattr(m, what)()} for name, m in parts.items()}

def _one_step_each(toy, **kw):
    "Snapshots of every part before and after the single optimizer step of each stage (8 images, batch 8, 1 epoch each)."
    cfg = tiny(backbone='tf_efficientnet_lite0', weights='offline', stage1_epochs=1, stage2_epochs=1, batch_size=8, **{'weight_decay': 0.0, **kw})  # no decay: changed = had a gradient
    seen = {}
    def on_step(stage, k, parts): seen[stage, k] = (_snap(parts), _snap(parts, 'named_buffers'))
    F, D, h, _ = train_tocoad(cfg, toy, progress=False, on_step=on_step)
    return cfg, seen, F

def _changed(a, b): return {n for n, v in a.items() if not torch.equal(v, b[n])}

@pytest.mark.parametrize('stages', ['none', 'ncl', 'dnp+ncl'])
@pytest.mark.parametrize('method', ['simsiam', 'byol'])
def test_each_stage_trains_exactly_what_the_paper_says(toy, stages, method):
    # frozen batch-norm statistics: then every weight of F gets a gradient (with 'train' a few biases cannot, see below)
    cfg, seen, F = _one_step_each(toy, stages=stages, cl_method=method, stage2_bn='frozen')
    assert sorted({s for s, _ in seen}) == {'none': [], 'ncl': [2], 'dnp+ncl': [1, 2]}[stages]
    F0 = dict(training.create_part('F', cfg).named_parameters())
    if stages == 'none':  # no training: F is the pre-trained F
        assert all(torch.equal(v, dict(F.named_parameters())[n]) for n, v in F0.items()); return
    if stages == 'dnp+ncl':  # stage I: D only
        (b, _), (a, _) = seen[1, 0], seen[1, 1]
        assert _changed(b['F'], a['F']) == set() and _changed(b['D'], a['D']) == set(b['D'])
        assert all(torch.equal(v, b['F'][n]) for n, v in F0.items())
    (b, _), (a, _) = seen[2, 0], seen[2, 1]
    assert _changed(b['F'], a['F']) == set(b['F']), 'stage II must change every weight of F'
    assert _changed(b['C'], a['C']) == set(b['C']), 'stage II must change every weight of C'
    if stages == 'dnp+ncl': assert _changed(b['D'], a['D']) == set(), 'D is frozen in stage II'
    else: assert 'D' not in b
    if method == 'byol':  # the target moves only by its EMA: target' = τ·target + (1 − τ)·online'
        online = {**{f'backbone.{n}': v for n, v in a['F'].items()}, **{n: v for n, v in a['C'].items() if n.startswith('projectors.')}}
        for n, t in b['target'].items():
            torch.testing.assert_close(a['target'][n], cfg.byol_tau * t + (1 - cfg.byol_tau) * online[n])
    else: assert 'target' not in b
    assert any(not torch.equal(v, dict(F.named_parameters())[n]) for n, v in F0.items())  # what train_tocoad returns is the tuned F

@pytest.mark.parametrize('mode', ['frozen', 'train'])
def test_stage2_batchnorm_mode_decides_F_statistics(toy, mode):
    _, seen, _ = _one_step_each(toy, stages='dnp+ncl', stage2_bn=mode)
    (pb, bb), (pa, ba) = seen[2, 0], seen[2, 1]
    stats = {n for n in bb['F'] if 'running' in n}
    moved = _changed(pb['F'], pa['F'])
    if mode == 'frozen': assert moved == set(pb['F'])
    else:  # batch statistics remove any per-channel shift, so a bias that feeds the next batch norm gets no gradient
        assert len(moved) > 0.75 * len(pb['F']) and all(n.endswith('.bias') for n in set(pb['F']) - moved)
    assert _changed({n: bb['F'][n] for n in stats}, ba['F']) == (set() if mode == 'frozen' else stats)
    assert _changed(pb['C'], pa['C']) == set(pb['C']) and _changed(pb['D'], pa['D']) == set()
    assert _changed(bb['D'], ba['D']) == set()  # D's statistics never move in stage II

@pytest.mark.parametrize('crash_at', [2, 3])  # right after stage I, or after the first epoch of stage II
def test_resume_from_a_stage_checkpoint_still_fine_tunes_F(toy, tmp_path, monkeypatch, crash_at):
    cfg = tiny(stage1_epochs=2, stage2_epochs=2)
    real_save, calls = training.save_checkpoint, []
    def save_then_crash(*a, **k):
        real_save(*a, **k); calls.append(1)
        if len(calls) == crash_at: raise KeyboardInterrupt
    monkeypatch.setattr(training, 'save_checkpoint', save_then_crash)
    with pytest.raises(KeyboardInterrupt): train_tocoad(cfg, toy, out_dir=tmp_path, progress=False)
    monkeypatch.setattr(training, 'save_checkpoint', real_save)
    seen = {}
    F, _, _, _ = train_tocoad(cfg, toy, out_dir=tmp_path, resume=True, progress=False, on_step=lambda s, k, p: seen.setdefault((s, k), _snap(p)))
    steps = sorted(k for s, k in seen if s == 2)
    b, a = seen[2, steps[0]], seen[2, steps[-1]]
    assert len(steps) > 1 and _changed(b['F'], a['F']) and not _changed(b['D'], a['D'])
    F0 = dict(training.create_part('F', cfg).named_parameters())
    assert any(not torch.equal(v, dict(F.named_parameters())[n]) for n, v in F0.items())

def test_weight_change_and_feature_similarity_against_a_brute_force_loop():
    torch.manual_seed(0)
    a, b = create_part('F', tiny(seed=0)), create_part('F', tiny(seed=1))
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    wc = training.weight_change(a, b)
    for layer in ('layer2', 'layer4'):
        names = [n for n in pa if n.startswith(f'body.{layer}.')]
        num = sum(((pb[n] - pa[n]) ** 2).sum().item() for n in names); den = sum((pa[n] ** 2).sum().item() for n in names)
        assert abs(wc[layer] - (num / den) ** 0.5) < 1e-5
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad(): fa, fb = a.eval()(x)["layer3"], b.eval()(x)["layer3"]
    by_hand = np.mean([float((fa[i] * fb[i]).sum() / (fa[i].norm() * fb[i].norm())) for i in range(2)])  # whole maps, image by image
    assert abs(training.feature_similarity(a, b, x=x, layers=('layer3',))['layer3'] - by_hand) < 1e-5

def test_a_kill_while_writing_a_checkpoint_resumes_from_the_last_whole_one(toy, tmp_path, monkeypatch):
    cfg = tiny(stage1_epochs=5, stage2_epochs=1)  # stage I's learning rate drops at epoch 4: resume must keep that schedule
    full, _, h_full, _ = train_tocoad(cfg, toy, out_dir=tmp_path / 'full', progress=False)
    real_write, calls = checkpoints.atomic_write, []
    def killed_midway(path, data):
        calls.append(path)
        if len(calls) == 3: raise KeyboardInterrupt  # the third checkpoint is never written: the second stays whole
        return real_write(path, data)
    monkeypatch.setattr(checkpoints, 'atomic_write', killed_midway)
    with pytest.raises(KeyboardInterrupt): train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', progress=False)
    monkeypatch.setattr(checkpoints, 'atomic_write', real_write)
    assert [p.name for p in (tmp_path / 'cut' / 'stage1').iterdir()] == ['checkpoint.safetensors']
    resumed, _, h_res, _ = train_tocoad(cfg, toy, out_dir=tmp_path / 'cut', resume=True, progress=False)
    assert [h['lr'] for h in h_res] == [h['lr'] for h in h_full] and h_res == h_full
    assert all(torch.equal(v, resumed.state_dict()[k]) for k, v in full.state_dict().items())

def test_a_checkpoint_of_the_old_two_file_layout_is_refused_by_name(toy, tmp_path):
    (tmp_path / 'stage1').mkdir(); (tmp_path / 'stage1' / 'checkpoint.json').write_text('{}')
    with pytest.raises(TocoadError, match='older tocoad'): train_tocoad(tiny(stage1_epochs=1, stage2_epochs=0), toy, out_dir=tmp_path, resume=True, progress=False)

def test_L_neg_alone_trains_F_through_the_frozen_D(toy):
    "λ = 0 and no weight decay: F can change only through the focal loss of D's output, so its gradient must pass D."
    grads = {}
    def on_step(stage, k, parts):
        if stage == 2 and k == 1: grads.update({name: {n: p.grad for n, p in m.named_parameters()} for name, m in parts.items()})
    cfg, seen, _ = _one_step_each(toy, stages='dnp+ncl', lam=0.0, stage2_bn='frozen')
    train_tocoad(cfg, toy, progress=False, on_step=on_step)
    assert all(g is not None and g.abs().sum() > 0 for g in grads['F'].values()), 'L_neg must reach every weight of F through D'
    assert all(g is None for g in grads['D'].values()), 'D is frozen: no gradient is even computed for it'
    (b, bb), (a, ba) = seen[2, 0], seen[2, 1]
    assert _changed(b['F'], a['F']) and _changed(b['D'], a['D']) == set() and _changed(bb['D'], ba['D']) == set()  # (tiny gradients may round away)

def test_fit_keeps_the_frozen_D_and_the_probe_scores_it_by_a_brute_force_count(toy):
    from tocoad.model import ToCoAD
    from tocoad.parts import create_part
    from tocoad.training import probe_discriminator
    m = ToCoAD(tiny(stage1_epochs=1, stage2_epochs=1)).fit(toy[:6], progress=False)
    F, D = m.trained['F'], m.trained['D']  # as training left them: the whole F and stage I's D
    assert isinstance(D, DiscriminativeNetwork) and not any(p.requires_grad for p in D.parameters())  # stage II froze it
    assert all(torch.equal(p, dict(F.named_parameters())[n]) for n, p in m.F.named_parameters())  # the model's F is the trained one, cut
    pr = probe_discriminator(F, D, G=create_part('G', m.cfg), transform=m.transform, samples=toy[6:])
    assert pr['probs'].shape == pr['masks'].shape == (2, *hw(m.cfg.image_size)) and pr['masks'].any()
    pos, neg = pr['probs'][pr['masks']], pr['probs'][~pr['masks']]
    pairs = (pos[:, None] > neg[None]).double().mean() + 0.5 * (pos[:, None] == neg[None]).double().mean()  # Mann-Whitney: P(anomalous pixel > normal)
    assert abs(pr['auroc'] - pairs.item()) < 1e-9
    assert ToCoAD(tiny(stages='none')).fit(toy[:6], progress=False).trained == {}  # nothing trained

# --- micro-batches (issue 21): memory bounded by a setting, the gradient unchanged ---

def _grads(params): return torch.cat([p.grad.flatten() for p in params if p.grad is not None])

@pytest.mark.parametrize('stage', [1, 2])
def test_micro_batches_give_the_whole_batch_gradient_with_batchnorm_frozen(toy, stage):
    "The real step functions (`dnp_step`, `ncl_step`) through `accumulate`: unequal pieces (3, 2, 2) of a batch of 7 sum to the whole batch's gradient."
    cfg = tiny(batch_size=7); p, base = _parts(cfg, toy[:7]); rt = p.runtime
    ds = StageDataset(base, p.G, views=2 if stage == 2 else 0, seed=0)
    batch = next(iter(rt.train_loader(ds, batch_size=7, num_workers=0, seed=0, epoch=0)))
    key = 'mask' if stage == 1 else 'views'
    assert len(batch[key]) == 7 and [len(x[key]) for x in training.split_batch(batch, 3)] == [3, 2, 2]
    def grads(micro):
        F, D, C = (copy.deepcopy(m) for m in (p.F, p.D, p.C))
        if stage == 1: net = D.eval(); step = training.dnp_step(F.eval(), net, cfg=cfg, rt=rt)
        else: net = training.set_batchnorm(training.FineTuned(F, C).eval(), 'frozen').requires_grad_(True); step = training.ncl_step(net, D.eval(), target=None, cfg=cfg, rt=rt)
        net.zero_grad(); out = training.accumulate(step, batch, micro=micro)
        return _grads(net.parameters()), out['loss']
    (g6, l6), (g3, l3), (g2, l2) = grads(7), grads(3), grads(2)  # pieces of 2 would leave one alone: split_batch makes them 3, 2, 2 as well
    assert g6.abs().sum() > 0 and len(g6) > 1000
    torch.testing.assert_close(g3, g6, rtol=1e-4, atol=1e-6); torch.testing.assert_close(g2, g6, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(l3, l6); torch.testing.assert_close(l2, l6)
    # and with batch norm in train mode they differ: each micro-batch is normalised by its own statistics (the documented choice)
    if stage == 2:
        def train_bn(micro):
            F, C = copy.deepcopy(p.F), copy.deepcopy(p.C); net = training.FineTuned(F, C).train().requires_grad_(True)
            net.zero_grad(); training.accumulate(training.ncl_step(net, None, target=None, cfg=cfg, rt=rt), batch, micro=micro); return _grads(net.parameters())
        assert not torch.allclose(train_bn(2), train_bn(7), rtol=1e-3, atol=1e-6)  # (a lone image would have made C's BatchNorm1d raise here)

def test_checkpointing_F_keeps_the_gradient(toy):
    "checkpoint_F recomputes F's activations in the backward pass: the same gradient (batch norm frozen), on the real stage II step."
    cfg = tiny(batch_size=4); p, base = _parts(cfg, toy[:4]); rt = p.runtime
    batch = next(iter(rt.train_loader(StageDataset(base, p.G, views=2, seed=0), batch_size=4, num_workers=0, seed=0, epoch=0)))
    def grads(ck):
        F, C = copy.deepcopy(p.F), copy.deepcopy(p.C); F.body.set_grad_checkpointing(ck)
        net = training.set_batchnorm(training.FineTuned(F, C).eval(), 'frozen').requires_grad_(True); net.zero_grad()
        training.accumulate(training.ncl_step(net, copy.deepcopy(p.D).eval(), target=None, cfg=cfg, rt=rt), batch, micro=2); return _grads(net.parameters())
    torch.testing.assert_close(grads(True), grads(False), rtol=1e-4, atol=1e-6)

@pytest.mark.parametrize('checkpoint_F', [False, True])
def test_a_fit_in_micro_batches_trains_what_the_paper_says(toy, checkpoint_F):
    "micro_batch=2 of a batch of 8: F's forwards in training see 2 images (stage I) or 2 × 3 (stage II), and each stage still changes exactly what it should (also with F checkpointed)."
    sizes = []
    def record(stage, parts):
        parts['F'].register_forward_pre_hook(lambda m, a: sizes.append((stage, len(a[0]))) if torch.is_grad_enabled() and m.training else None)
    seen = {}
    def on_step(stage, k, parts):
        if k == 0 and stage == 2: record(2, parts)
        seen[stage, k] = _snap(parts)
    cfg = tiny(backbone='tf_efficientnet_lite0', weights='offline', stage1_epochs=1, stage2_epochs=1, batch_size=8, weight_decay=0.0, stage2_bn='frozen', micro_batch=2, checkpoint_F=checkpoint_F)
    F, D, h, _ = train_tocoad(cfg, toy, progress=False, on_step=on_step)
    assert [s for s in sizes if s[0] == 2] == [(2, 2 * 3)] * 4, sizes  # 4 micro-batches of 2 images, each with 2 views and 1 anomaly
    b, a = seen[1, 0], seen[1, 1]
    assert _changed(b['F'], a['F']) == set() and _changed(b['D'], a['D']) == set(b['D'])
    b, a = seen[2, 0], seen[2, 1]
    assert _changed(b['F'], a['F']) == set(b['F']) and _changed(b['C'], a['C']) == set(b['C']) and _changed(b['D'], a['D']) == set()
    assert len(h) == 2 and all(np.isfinite(x['loss']) for x in h)
    assert not F.body.grad_checkpointing  # off after stage II

def test_micro_batch_setting_and_its_automatic_choice():
    with pytest.raises(TocoadError, match="checkpoint_F.*stage2_bn='train'"): tiny(checkpoint_F=True, stage2_bn='train')  # F's statistics would move twice per step
    assert training.micro_batch_size(tiny()) == 4  # 64 px: the whole batch, as before micro-batches existed
    cpu = lambda **kw: preset('cpu', **kw)
    auto = [training.micro_batch_size(cpu(image_size=s, resize=min(hw(s)))) for s in (128, 224, 256, (640, 256), 1024)]
    assert auto == sorted(auto, reverse=True) and auto[0] == 16 and min(auto) == 2  # fewer images per micro-batch as they grow, never one alone
    assert all(a * h * w <= training.MICRO_PIXELS for a, (h, w) in zip(auto, map(hw, (128, 224, 256, (640, 256)))) if a > 2)
    assert training.micro_batch_size(cpu(image_size=1024, resize=1024), device='cuda') == 16 and training.micro_batch_size(cpu(micro_batch=6)) == 6
    for bad in (1, -1, 2.5):
        with pytest.raises(TocoadError, match='micro_batch'): tiny(micro_batch=bad)
