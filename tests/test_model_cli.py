"""The model object and the `tocoad` command end to end on the toy data, and the bad inputs they must refuse."""
import json, pickle, subprocess, sys
from pathlib import Path
import pytest
import torch
from tocoad.core import preset, TocoadError, load_json
from tocoad.data import make_toy_dataset, load_samples
from tocoad.model import ToCoAD

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=10, n_test_good=4, n_test_defect=2)

@pytest.fixture(scope='module')
def fitted(toy, tmp_path_factory):
    m = ToCoAD(preset('cpu', stages='none', device='cpu')).fit(load_samples(toy, 'washer'), progress=False)
    return m, m.save(tmp_path_factory.mktemp('model') / 'model')

def tocoad(*args, **kw):
    "Run the installed `tocoad` console script."
    return subprocess.run([str(Path(sys.executable).parent / 'tocoad'), *map(str, args)], capture_output=True, text=True, **kw)

def test_save_load_predicts_the_same(fitted, toy):
    m, path = fitted
    paths = [s.path for s in load_samples(toy, 'washer', split='test')]
    a, b = m.predict(paths), ToCoAD.load(path).predict(paths)
    torch.testing.assert_close(a['scores'], b['scores']); torch.testing.assert_close(a['maps'], b['maps'])
    assert a['maps'].shape == (len(paths), 224, 224)
    labels = torch.tensor([s.label for s in load_samples(toy, 'washer', split='test')])
    assert a['scores'][labels == 1].mean() > a['scores'][labels == 0].max()  # the defective washers score above every good one, on average

def test_untrusted_model_folder_cannot_run_code(fitted, tmp_path):
    import shutil
    _, path = fitted; evil = tmp_path / 'evil'; shutil.copytree(path, evil)
    class Boom:
        def __reduce__(self): return (exec, ("open(%r, 'w').write('pwned')" % str(tmp_path / 'pwned'),))
    (evil / 'bank.safetensors').write_bytes(pickle.dumps({'bank': Boom()}))
    with pytest.raises(TocoadError, match='not a valid safetensors file'): ToCoAD.load(evil)
    assert not (tmp_path / 'pwned').exists()

def test_model_folder_from_another_version_or_incomplete(fitted, tmp_path):
    import shutil
    _, path = fitted; other = tmp_path / 'other'; shutil.copytree(path, other)
    info = load_json(other / 'model.json'); info['format'] = 99; (other / 'model.json').write_text(json.dumps(info))
    with pytest.raises(TocoadError, match='model format 99'): ToCoAD.load(other)
    (path.parent / 'partial').mkdir(); shutil.copy(path / 'model.json', path.parent / 'partial')
    with pytest.raises(TocoadError, match='missing backbone.safetensors'): ToCoAD.load(path.parent / 'partial')

def test_predict_refuses_wrong_tensors_and_evaluate_empty(fitted):
    m, _ = fitted
    with pytest.raises(TocoadError, match=r'B×3×224×224'): m.predict(torch.zeros(2, 1, 224, 224))
    with pytest.raises(TocoadError, match='empty'): m.evaluate([])

def test_cli_fit_predict_and_errors(toy, tmp_path):
    r = tocoad('fit', '--data', toy, '--category', 'washer', '--preset', 'cpu', '--train-stages', 'none', '--out', tmp_path / 'run', '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    m = load_json(tmp_path / 'run' / 'metrics.json')
    assert m['image_auroc'] > 0.8 and m['pixel_auroc'] > 0.8 and 'fit_s' in m['timings'] and (tmp_path / 'run' / 'report.md').is_file()
    imgs = sorted((toy / 'washer' / 'test' / 'foreign').glob('*.png'))
    r = tocoad('predict', '--model', tmp_path / 'run' / 'model', *imgs, '--out', tmp_path / 'pred')
    assert r.returncode == 0, r.stderr[-2000:]
    assert len((tmp_path / 'pred' / 'scores.csv').read_text().splitlines()) == len(imgs) + 1
    assert len(list((tmp_path / 'pred' / 'heatmaps').glob('*.png'))) == len(imgs)
    r = tocoad('fit', '--data', toy, '--category', 'wahser', '--out', tmp_path / 'bad')
    assert r.returncode == 2 and "unknown category 'wahser'" in r.stderr
    (tmp_path / 'mine').mkdir(); (tmp_path / 'mine' / 'notes.txt').write_text('keep me')
    r = tocoad('fit', '--data', toy, '--category', 'washer', '--out', tmp_path / 'mine')
    assert r.returncode == 2 and 'did not write' in r.stderr and (tmp_path / 'mine' / 'notes.txt').read_text() == 'keep me'
    r = tocoad('fit', '--data', toy, '--category', 'washer', '--out', tmp_path / 'x', '--set', 'lam=2')
    assert r.returncode == 2 and 'lam=2' in r.stderr
    r = tocoad('predict', '--model', tmp_path / 'run' / 'model', tmp_path / 'nope.png', '--out', tmp_path / 'pred2')
    assert r.returncode == 2 and 'nope.png does not exist' in r.stderr

def test_cli_make_toy(tmp_path):
    r = tocoad('data', 'make-toy', '--out', tmp_path / 't', '--categories', 'brick', '--n-train', '3')
    assert r.returncode == 0 and len(load_samples(tmp_path / 't', 'brick')) == 3

def test_cli_ablate_writes_table_and_plot(toy, tmp_path):
    r = tocoad('ablate', '--data', toy, '--category', 'washer', '--axis', 'generator', '--values', 'perlin', 'nsa',
               '--preset', 'tiny', '--device', 'cpu', '--quiet', '--out', tmp_path / 'abl')
    assert r.returncode == 0, r.stderr[-2000:]
    md = (tmp_path / 'abl' / 'ablation.md').read_text()
    assert "Table 7" in md and '| perlin |' in md and '| nsa |' in md and (tmp_path / 'abl' / 'ablation.png').stat().st_size > 1000
    import csv
    rows = list(csv.DictReader(open(tmp_path / 'abl' / 'ablation.csv')))
    assert [r['setting'] for r in rows] == ['perlin', 'nsa'] and all(0 <= float(r['image_auroc']) <= 1 for r in rows)
    r = tocoad('ablate', '--data', toy, '--category', 'washer', '--axis', 'layers', '--values', '5', '--out', tmp_path / 'abl2')
    assert r.returncode == 2 and "has no setting(s) ['5']" in r.stderr

def test_cli_ablate_with_seeds_gives_mean_and_spread(toy, tmp_path):
    import csv, statistics
    r = tocoad('ablate', '--data', toy, '--category', 'washer', '--axis', 'stages', '--values', 'none', 'ncl', '--seeds', '3',
               '--preset', 'tiny', '--device', 'cpu', '--quiet', '--out', tmp_path / 'abl')
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / 'abl' / 'ablation.csv')))
    assert [(x['setting'], x['seed']) for x in rows] == [(s, str(k)) for s in ('none', 'ncl') for k in range(3)]
    ncl = [float(x['pixel_auroc']) for x in rows if x['setting'] == 'ncl']
    want = f'{100 * statistics.mean(ncl):.2f} ± {100 * statistics.stdev(ncl):.2f}'  # the sample std, as pandas computes it
    line = next(l for l in (tmp_path / 'abl' / 'ablation.md').read_text().splitlines() if l.startswith('| ncl |'))
    assert want in line and '3 seeds (mean ± std)' in r.stdout, (want, line)
    assert 'on washer, generator perlin, 3 seeds' in r.stdout  # Table 5 ran on Perlin noise, as in the paper

def test_cli_fit_dnp_ncl_moves_F_and_reports_it(toy, tmp_path):
    r = tocoad('fit', '--data', toy, '--category', 'washer', '--preset', 'tiny', '--train-stages', 'dnp+ncl', '--out', tmp_path / 'run',
               '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    drift = load_json(tmp_path / 'run' / 'metrics.json')['drift']
    assert set(drift['weight_change']) == {'layer1', 'layer2', 'layer3', 'layer4'} and min(drift['weight_change'].values()) > 0
    assert all(c < 1 for c in drift['feature_cosine'].values())
    report = (tmp_path / 'run' / 'report.md').read_text()
    assert 'relative weight change' in report and (tmp_path / 'run' / 'drift.png').is_file()
    # and the saved backbone is the fine-tuned F, not the initial one
    from safetensors.torch import load_file
    from tocoad.parts import create_part
    saved = load_file(str(tmp_path / 'run' / 'model' / 'backbone.safetensors'))
    init = {k[len('body.'):]: v for k, v in create_part('F', preset('tiny')).named_parameters()}
    shared = [k for k in saved if k in init]
    assert shared and sum(not torch.equal(saved[k], init[k]) for k in shared) > 0.9 * len(shared)

def test_cli_fit_none_leaves_F_and_reports_no_drift(toy, tmp_path):
    r = tocoad('fit', '--data', toy, '--category', 'washer', '--preset', 'tiny', '--train-stages', 'none', '--out', tmp_path / 'run',
               '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'drift' not in load_json(tmp_path / 'run' / 'metrics.json') and not (tmp_path / 'run' / 'drift.png').exists()

def test_a_failing_evaluation_keeps_the_trained_model(toy, tmp_path, monkeypatch):
    from tocoad.run import run_fit
    def broken(self, samples, progress=True): raise RuntimeError('evaluation broke')
    monkeypatch.setattr(ToCoAD, 'evaluate', broken)
    with pytest.raises(RuntimeError, match='evaluation broke'):
        run_fit(toy, 'washer', cfg=preset('tiny', stages='none', device='cpu'), out=tmp_path / 'run', progress=False)
    saved = ToCoAD.load(tmp_path / 'run' / 'model')  # saved before the evaluation ran
    paths = [s.path for s in load_samples(toy, 'washer', split='test')][:2]
    torch.testing.assert_close(saved.predict(paths)['maps'], ToCoAD(preset('tiny', stages='none', device='cpu')).fit(load_samples(toy, 'washer'), progress=False).predict(paths)['maps'])  # the whole model, as a fresh fit

@pytest.fixture(scope='module')
def fitted_ivf(toy, tmp_path_factory):
    m = ToCoAD(preset('cpu', stages='none', device='cpu', knn_index='ivf', coreset_ratio=0.5)).fit(load_samples(toy, 'washer'), progress=False)
    return m, m.save(tmp_path_factory.mktemp('model_ivf') / 'model')

def test_ivf_model_scores_like_the_exact_search_and_survives_save_load(fitted_ivf, toy):
    m, path = fitted_ivf; paths = [s.path for s in load_samples(toy, 'washer', split='test')]
    assert m.bank.search_kind == 'ivf' and m.timings['knn_index'] == 'ivf' and m.timings['knn_probe'] == m.bank.probe < len(m.bank.cells[0])
    a = m.predict(paths)
    with m.bank.exact_search(): exact = m.predict(paths)
    assert (a['raw_scores'] >= exact['raw_scores'] - 1e-3).all()  # searching fewer vectors never finds a nearer one
    torch.testing.assert_close(a['scores'], exact['scores'], rtol=0.02, atol=0)  # the stated tolerance: 2 % of an image score
    b = ToCoAD.load(path)
    assert b.bank.search_kind == 'ivf' and b.bank.probe == m.bank.probe
    torch.testing.assert_close(b.predict(paths)['maps'], a['maps'])

def test_float16_bank_halves_the_file_and_keeps_the_scores(fitted, toy, tmp_path):
    m32, p32 = fitted; paths = [s.path for s in load_samples(toy, 'washer', split='test')]
    m16 = ToCoAD(preset('cpu', stages='none', device='cpu', bank_dtype='float16')).fit(load_samples(toy, 'washer'), progress=False)
    p16 = m16.save(tmp_path / 'm16'); loaded = ToCoAD.load(p16)
    assert loaded.bank.vectors.dtype == torch.float16 and torch.equal(loaded.bank.vectors.float(), m32.bank.vectors.half().float())  # same coreset, rounded
    assert (p16 / 'bank.safetensors').stat().st_size < 0.6 * (p32 / 'bank.safetensors').stat().st_size
    torch.testing.assert_close(loaded.predict(paths)['scores'], m32.predict(paths)['scores'], rtol=0.01, atol=0)

@pytest.fixture(scope='module')
def fitted_screen(toy, tmp_path_factory):
    m = ToCoAD(preset('cpu', stages='none', device='cpu', knn_index='screen', coreset_ratio=0.5)).fit(load_samples(toy, 'washer'), progress=False)
    return m, m.save(tmp_path_factory.mktemp('model_screen') / 'model')

def test_screen_model_scores_like_the_exact_search_and_survives_save_load(fitted_screen, toy, tmp_path):
    from safetensors.torch import load_file, save_file
    import shutil
    m, path = fitted_screen; paths = [s.path for s in load_samples(toy, 'washer', split='test')]
    assert m.bank.search_kind == 'screen' and m.timings['knn_index'] == 'screen' and m.timings['knn_screen_candidates'] == m.bank.candidates
    assert m.timings['knn_choice'] == 'screen' and m.timings['knn_probe_recall'] >= 0.999 and 'screen' in repr(m)
    a = m.predict(paths)
    with m.bank.exact_search(): exact = m.predict(paths)
    assert (a['raw_scores'] >= exact['raw_scores'] - 1e-3).all()
    torch.testing.assert_close(a['scores'], exact['scores'], rtol=0.02, atol=0)
    b = ToCoAD.load(path)
    assert b.bank.search_kind == 'screen' and b.bank.candidates == m.bank.candidates
    torch.testing.assert_close(b.predict(paths)['maps'], a['maps'])
    for bad_value in (torch.tensor([0]), torch.tensor([10**9]), torch.tensor([2.0]), torch.tensor(4), torch.tensor([True])):
        bad = tmp_path / f'bad{len(list(tmp_path.iterdir()))}'; shutil.copytree(path, bad)
        t = load_file(str(bad / 'bank.safetensors')); t['screen_candidates'] = bad_value; save_file(t, str(bad / 'bank.safetensors'))
        with pytest.raises(TocoadError, match='screen_candidates does not fit the bank'): ToCoAD.load(bad)

def test_corrupt_search_cells_are_refused(fitted_ivf, tmp_path):
    import shutil
    from safetensors.torch import load_file, save_file
    _, path = fitted_ivf; bad = tmp_path / 'bad'; shutil.copytree(path, bad)
    t = load_file(str(bad / 'bank.safetensors')); t['ivf_offsets'][-1] += 5; save_file(t, str(bad / 'bank.safetensors'))
    with pytest.raises(TocoadError, match='search cells'): ToCoAD.load(bad)

def test_a_model_saved_before_a_config_field_existed_loads_as_it_was_built(toy, tmp_path):
    m = ToCoAD(preset('cpu', stages='none', device='cpu', patch_pool_pad='exclude')).fit(load_samples(toy, 'washer'), progress=False)
    path = m.save(tmp_path / 'old'); info = json.loads((path / 'model.json').read_text())
    del info['config']['patch_pool_pad']; (path / 'model.json').write_text(json.dumps(info))  # as the former version wrote it
    paths = [s.path for s in load_samples(toy, 'washer', split='test')]
    old = ToCoAD.load(path)
    assert old.cfg.patch_pool_pad == 'exclude'
    torch.testing.assert_close(old.predict(paths)['maps'], m.predict(paths)['maps'])

def test_python_fit_refuses_an_unreadable_image_before_training(toy, tmp_path, monkeypatch):
    import shutil, tocoad.model as tm
    data = tmp_path / 'd'; shutil.copytree(toy, data)
    bad = sorted((data / 'washer' / 'train' / 'good').glob('*.png'))[3]; bad.write_bytes(b'not an image')
    monkeypatch.setattr(tm, 'train_tocoad', lambda *a, **k: pytest.fail('training started'))
    with pytest.raises(TocoadError, match=bad.name): ToCoAD(preset('cpu', stages='none', device='cpu')).fit(load_samples(data, 'washer'), progress=False)

def test_cli_export_onnx_scores_like_torch_and_never_overwrites(fitted_ivf, toy, tmp_path):
    import numpy as np, onnxruntime as ort
    from tocoad.data import AnomalyDataset
    m, path = fitted_ivf; out = tmp_path / 'm.onnx'
    r = tocoad('export', '--model', path, '--out', out)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'mean (0.5, 0.5, 0.5)' in r.stdout and out.is_file()
    test = load_samples(toy, 'washer', split='test'); x = torch.stack([AnomalyDataset(test, m.transform)[i]['image'] for i in range(len(test))])
    scores, maps = ort.InferenceSession(str(out), providers=['CPUExecutionProvider']).run(None, {'image': x.numpy()})
    with m.bank.exact_search(): exact = m.predict(x)  # the graph searches exactly
    np.testing.assert_allclose(scores, exact['scores'].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(maps, exact['maps'].numpy(), rtol=1e-3, atol=1e-3)
    before = out.read_bytes(); r = tocoad('export', '--model', path, '--out', out)
    assert r.returncode == 2 and r.stderr.startswith('tocoad: error:') and 'exists' in r.stderr and out.read_bytes() == before

def test_top_level_names_import_lazily():
    code = ('import sys, tocoad; light = "torch" not in sys.modules\n'
            'from tocoad import ToCoAD, preset, load_samples\n'
            'from tocoad.model import ToCoAD as M\n'
            'print(light, ToCoAD is M, preset("tiny").backbone, "ToCoAD" in dir(tocoad))')
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert r.stdout.split() == ['True', 'True', 'resnet18', 'True'], r.stderr[-1500:]
    with pytest.raises(AttributeError, match='no attribute'): import tocoad; tocoad.nothing_here

def test_cli_predict_writes_decisions_on_one_colour_scale(fitted, toy, tmp_path):
    import csv, numpy as np
    from PIL import Image
    m, path = fitted; t = m.thresholds
    assert t and 0 < t['image'] and 0 < t['pixel'] and 'held-out' in t['rule']
    imgs = sorted((toy / 'washer' / 'test').rglob('*.png'))
    r = tocoad('predict', '--model', path, *imgs, '--out', tmp_path / 'all', '--quiet'); assert r.returncode == 0, r.stderr[-2000:]
    good = next(p for p in imgs if p.parent.name == 'good')  # its map is weaker than the batch's strongest: a per-call scale would differ
    r1 = tocoad('predict', '--model', path, good, '--out', tmp_path / 'one', '--quiet'); assert r1.returncode == 0, r1.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / 'all' / 'scores.csv')))
    ref = m.predict(imgs)
    for row, s, d, ref_map in zip(rows, ref['scores'], ref['is_defective'], ref['image_maps']):
        assert row['label'] == ('defective' if d else 'good') and abs(float(row['normalized_score']) - float(s) / t['image']) < 1e-4
        mask = np.asarray(Image.open(tmp_path / 'all' / row['mask'])) > 0; mp = np.load(tmp_path / 'all' / row['map'])
        assert mp.shape == Image.open(row['image']).size[::-1] and np.allclose(mp, ref_map.numpy(), atol=1e-5, equal_nan=True)  # on the image's own grid
        assert np.isnan(mp[0]).all() and np.array_equal(mask, np.nan_to_num(mp, nan=-np.inf) >= t['pixel'])  # the crop's border unscored; the mask is the map at the pixel threshold
    one = list(csv.DictReader(open(tmp_path / 'one' / 'scores.csv')))[0]
    same = next(row for row in rows if Path(row['image']).resolve() == Path(one['image']).resolve())
    a, b = (np.asarray(Image.open(d / x['heatmap']).convert('RGB')).astype(int) for d, x in ((tmp_path / 'one', one), (tmp_path / 'all', same)))
    assert a.shape == b.shape and np.abs(a - b).max() <= 3  # alone or in a batch: the same picture (to float rounding)

def test_cli_fit_without_a_test_split_sets_thresholds_and_says_so(toy, tmp_path):
    import shutil
    data = tmp_path / 'd'; shutil.copytree(toy / 'washer' / 'train', data / 'washer' / 'train')
    r = tocoad('fit', '--data', data, '--category', 'washer', '--preset', 'cpu', '--train-stages', 'none', '--out', tmp_path / 'o', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    assert [l for l in r.stderr.splitlines() if 'evaluation skipped' in l] and 'image AUROC' not in r.stdout
    metrics = load_json(tmp_path / 'o' / 'metrics.json')
    assert metrics['thresholds']['image'] > 0 and ToCoAD.load(tmp_path / 'o' / 'model').thresholds == metrics['thresholds']

def test_a_long_part_keeps_its_aspect_and_its_thin_crack(tmp_path):
    "A tall toy rod with a hairline crack near one end: at native aspect (320 x 128) every crack outscores every good"
    "image; squashed into 128 x 128 the crack is under a pixel high and is found less often. Saved, loaded and exported, it keeps its shape."
    import numpy as np, onnxruntime as ort
    from sklearn.metrics import roc_auc_score
    from tocoad.data import AnomalyDataset
    root = make_toy_dataset(tmp_path / 'toy', categories=('rod',), n_train=10, n_test_good=8, n_test_defect=6, size=128)
    train, test = load_samples(root, 'rod'), load_samples(root, 'rod', split='test')
    found, auc = {}, {}
    for name, size in (('native', (320, 128)), ('squashed', 128)):
        m = ToCoAD(preset('cpu', stages='none', device='cpu', image_size=size, crop=False)).fit(train, progress=False)
        m.evaluate(test, progress=False); ev = m.last_eval
        sc, d = ev['scores'].numpy(), np.array(ev['defects']); keep = (d == 'good') | (d == 'crack')
        auc[name] = roc_auc_score(d[keep] == 'crack', sc[keep]); found[name] = (sc[d == 'crack'] > sc[d == 'good'].max()).mean()
        if name == 'native': native = m; assert ev['maps'].shape[1:] == ev['masks'].shape[1:] == (320, 128)
    assert auc['native'] >= 0.95 and found['native'] >= 0.8, (auc, found)
    assert auc['native'] > auc['squashed'] and found['native'] > found['squashed'], (auc, found)
    back = ToCoAD.load(native.save(tmp_path / 'model'))
    assert back.cfg.image_size == (320, 128) and 'image_size=(320, 128)' in repr(back)
    crack = [s.path for s in test if s.defect == 'crack'][:2]
    a, b = native.predict(crack), back.predict(crack)
    assert a['maps'].shape == (2, 320, 128); torch.testing.assert_close(a['maps'], b['maps'])
    r = tocoad('export', '--model', tmp_path / 'model', '--out', tmp_path / 'rod.onnx'); assert r.returncode == 0, r.stderr[-2000:]
    assert 'B×3×320×128' in r.stdout
    x = torch.stack([AnomalyDataset(test, back.transform)[i]['image'] for i in range(3)])
    scores, maps = ort.InferenceSession(str(tmp_path / 'rod.onnx'), providers=['CPUExecutionProvider']).run(None, {'image': x.numpy()})
    with back.bank.exact_search(): exact = back.predict(x)  # the graph searches exactly
    assert maps.shape == (3, 320, 128)
    np.testing.assert_allclose(scores, exact['scores'].numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(maps, exact['maps'].numpy(), rtol=1e-3, atol=1e-3)
