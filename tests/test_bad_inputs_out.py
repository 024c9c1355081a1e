# ruff: noqa: F811  (the shared `world` fixture is imported, then taken as an argument)
"""Bad input, second round (issue 22), the half about what tocoad writes and reads back: run folders (resume, overwrite,
locks), model folders (one atomic unit, every number checked, no code or download from a folder), settings ranges,
predict's outputs, Ctrl-C and make-toy. Each case runs the real `tocoad` command (or `main` in-process where a failure
has to be injected) and checks the one line, the exit code and that nothing the user made changed."""
import json, os, shutil
from types import SimpleNamespace
from pathlib import Path
import pytest
import torch
from dataclasses import fields
from hypothesis import given, settings, strategies as st, HealthCheck
from safetensors.torch import load_file, save_file
from tocoad.core import TocoadError, ToCoADConfig, RANGES, CHOICES
from test_bad_inputs import world, tocoad, tree_digest, _copy, _first, _model_json  # noqa: F401  (world: the shared fitted model)

def _fit(data, out, *extra): return ('fit', '--data', data, '--category', 'washer', '--preset', 'tiny', '--device', 'cpu', '--quiet', '--out', out, *extra)

def _one_error(r, code=2, *words):
    "The run failed with exit `code` and one `tocoad: error:` line holding every word; that line."
    assert r.returncode == code, (r.returncode, r.stderr[-1500:])
    errors = [l for l in r.stderr.splitlines() if l.startswith('tocoad: error:')]
    assert len(errors) == 1 and 'Traceback' not in r.stderr, r.stderr[-1500:]
    for w in words: assert w.lower() in errors[0].lower(), (w, errors[0])
    return errors[0]

def _run(world, tmp):
    "A copy of the world's run folder (stages none, washer)."
    shutil.copytree(world / 'run', tmp / 'run'); return tmp / 'run'

def _predict(m, img, out): return ('predict', '--model', m, img, '--out', out, '--quiet')

def cli(capsys, *argv):
    "Run the `tocoad` command through `main` in this process (fast: torch is loaded once): its exit code, stdout and stderr."
    from tocoad.cli import main
    capsys.readouterr()
    try: main([str(a) for a in argv]); code = 0
    except SystemExit as e: code = e.code
    except KeyboardInterrupt: pytest.fail('Ctrl-C escaped main as a KeyboardInterrupt traceback')
    out, err = capsys.readouterr()
    return SimpleNamespace(returncode=code, stdout=out, stderr=err)

# --- 1, 2: run folders: resume only the same run; another run is refused unless --overwrite; a lock while a run writes ---

def test_resume_with_other_data_is_refused(world, tmp_path, capsys):
    data, _ = _copy(world, tmp_path); run = _run(world, tmp_path); before = tree_digest(run)
    _first(data / 'washer' / 'train' / 'good').unlink()  # one image fewer: other data
    err = _one_error(cli(capsys, *_fit(data, run, '--resume', '--train-stages', 'none')), 2, 'resume', 'training images')
    assert str(run) in err
    shutil.copytree(data / 'washer', data / 'other')  # another category
    argv = list(_fit(data, run, '--resume', '--train-stages', 'none')); argv[argv.index('washer')] = 'other'
    _one_error(cli(capsys, *argv), 2, 'washer', 'other')
    assert tree_digest(run) == before  # the washer model is untouched

def test_fit_into_another_run_needs_overwrite_and_leaves_nothing_stale(world, tmp_path, capsys):
    data, _ = _copy(world, tmp_path); run = _run(world, tmp_path); before = tree_digest(run)
    _one_error(cli(capsys, *_fit(data, run, '--train-stages', 'none')), 2, 'holds a run', '--overwrite')
    assert tree_digest(run) == before
    (run / 'losses.png').write_bytes(b'old'); (run / 'drift.png').write_bytes(b'old')
    (run / 'checkpoints' / 'stage2').mkdir(parents=True); (run / 'checkpoints' / 'stage2' / 'checkpoint.safetensors').write_bytes(b'old')
    r = cli(capsys, *_fit(data, run, '--train-stages', 'none', '--overwrite')); assert r.returncode == 0, r.stderr[-1500:]
    assert not (run / 'losses.png').exists() and not (run / 'drift.png').exists() and not (run / 'checkpoints' / 'stage2').exists()
    assert (run / 'report.md').is_file() and (run / 'model' / 'model.json').is_file()

def test_a_second_run_into_a_locked_folder_is_refused(world, tmp_path, capsys):
    from tocoad.run import run_lock
    data, _ = _copy(world, tmp_path)
    with run_lock(tmp_path / 'o'):
        _one_error(cli(capsys, *_fit(data, tmp_path / 'o', '--train-stages', 'none')), 2, 'in use', str(tmp_path / 'o'))
    r = cli(capsys, *_fit(data, tmp_path / 'o', '--train-stages', 'none')); assert r.returncode == 0, r.stderr[-1500:]  # released

# --- 3: the model folder is one unit ---

def test_an_interrupted_save_leaves_the_old_model_whole(world, tmp_path, monkeypatch):
    from tocoad.model import ToCoAD
    from tocoad.memory import MemoryBank
    _, model = _copy(world, tmp_path); m = ToCoAD.load(model, device='cpu'); before = tree_digest(model)
    with torch.no_grad(): next(m.F.parameters()).add_(0.5)  # a new backbone
    def boom(self): raise KeyboardInterrupt
    monkeypatch.setattr(MemoryBank, 'state', boom)
    with pytest.raises(KeyboardInterrupt): m.save(model)
    assert tree_digest(model) == before and sorted(p.name for p in tmp_path.iterdir()) == ['data', 'model']  # no temp folder left

def test_a_mixed_model_folder_fails_to_load(world, tmp_path, capsys):
    from tocoad.model import ToCoAD
    data, model = _copy(world, tmp_path); m = ToCoAD.load(model, device='cpu')
    with torch.no_grad(): next(m.F.parameters()).add_(0.5)
    m.save(tmp_path / 'other'); shutil.copy(tmp_path / 'other' / 'backbone.safetensors', model / 'backbone.safetensors')
    _one_error(cli(capsys, *_predict(model, _first(data / 'washer' / 'test' / 'good'), tmp_path / 'p')), 2, 'backbone.safetensors', 'save the model again')

def test_save_refuses_a_folder_that_is_not_a_model(world, tmp_path):
    from tocoad.model import ToCoAD
    _, model = _copy(world, tmp_path); (tmp_path / 'mine').mkdir(); (tmp_path / 'mine' / 'thesis.tex').write_text('keep')
    with pytest.raises(TocoadError, match='not a model folder'): ToCoAD.load(model, device='cpu').save(tmp_path / 'mine')
    assert (tmp_path / 'mine' / 'thesis.tex').read_text() == 'keep'

# --- 5, 6, 8: every number a model folder holds is checked; nothing from the folder is run or downloaded ---

def _backbone(m, fn):
    t = load_file(str(m / 'backbone.safetensors')); fn(t); save_file(t, str(m / 'backbone.safetensors'))

def _raw_json(m, text:bytes): (m / 'model.json').write_bytes(text)

def _bank_and_shape(m, fn):
    t = load_file(str(m / 'bank.safetensors')); t['bank'] = fn(t['bank']); t.pop('bank_knn', None); save_file(t, str(m / 'bank.safetensors'))
    _model_json(m, lambda i: i.update(bank_shape=list(t['bank'].shape)))

def _cfg(m, **kw): _model_json(m, lambda i: i['config'].update(kw))

MODEL_CASES = {  # how the folder is spoilt -> words of the one line
    'std = 0': (lambda m: _model_json(m, lambda i: i.update(std=[0, 0, 0])), ['std']),
    'threshold Infinity': (lambda m: _model_json(m, lambda i: i['thresholds'].update(image=float('inf'))), ['thresholds']),
    'negative running_var': (lambda m: _backbone(m, lambda t: t[next(k for k in t if k.endswith('running_var'))].__setitem__(0, -1.0)), ['running_var']),
    'NaN weight': (lambda m: _backbone(m, lambda t: t[next(k for k in t if k.endswith('conv1.weight'))].view(-1).__setitem__(0, float('nan'))), ['NaN or infinite']),
    'top-level list': (lambda m: _raw_json(m, b'[1, 2, 3]'), ['model.json', 'not an object']),
    'nesting 100,000 deep': (lambda m: _raw_json(m, b'[' * 100000 + b']' * 100000), ['model.json', 'nested']),
    'invalid UTF-8': (lambda m: _raw_json(m, b'{"format": 1, "x": "\xff\xfe"}'), ['model.json', 'UTF-8']),
    'mean as strings': (lambda m: _model_json(m, lambda i: i.update(mean=['0.5', '0.5', '0.5'])), ['mean']),
    'batch_size "4"': (lambda m: _cfg(m, batch_size='4'), ['model.json', 'batch_size']),
    'reweight_b 9.5': (lambda m: _cfg(m, reweight_b=9.5), ['model.json', 'reweight_b']),
    'patch_size 0': (lambda m: _cfg(m, patch_size=0), ['model.json', 'patch_size']),
    'memory_layers edited': (lambda m: _cfg(m, memory_layers=['layer3']), ['bank', 'width']),
    'bank 3-D': (lambda m: _bank_and_shape(m, lambda b: b[None]), ['bank', '2-D']),
    'bank of another width': (lambda m: _bank_and_shape(m, lambda b: b[:, :10].contiguous()), ['bank', 'width']),
    'bank empty': (lambda m: _bank_and_shape(m, lambda b: b[:0]), ['bank', 'empty']),
    'hf-hub backbone': (lambda m: _cfg(m, backbone='hf-hub:someone/model'), ['hf-hub:someone/model', 'not one tocoad loads']),
    'local-dir backbone': (lambda m: _cfg(m, backbone='local-dir:/tmp/x'), ['not one tocoad loads']),
}

@pytest.mark.parametrize('case', list(MODEL_CASES))
def test_a_spoilt_model_folder_gives_one_line(world, tmp_path, case, capsys):
    data, model = _copy(world, tmp_path); spoil, words = MODEL_CASES[case]; spoil(model); before = tree_digest(model)
    _one_error(cli(capsys, *_predict(model, _first(data / 'washer' / 'test' / 'good'), tmp_path / 'p')), 2, *words)
    assert tree_digest(model) == before and not (tmp_path / 'p' / 'scores.csv').exists()

def test_a_model_naming_a_hub_backbone_fails_through_the_real_command_without_the_network(world, tmp_path):
    data, model = _copy(world, tmp_path); _cfg(model, backbone='hf-hub:someone/model')
    r = tocoad(*_predict(model, _first(data / 'washer' / 'test' / 'good'), tmp_path / 'p'), env={**os.environ, 'HF_HUB_OFFLINE': '0', 'HF_ENDPOINT': 'http://127.0.0.1:9'})
    _one_error(r, 2, 'not one tocoad loads')  # refused by name: with the hub reachable, timm would have fetched it

def _valid_info(world):
    return json.loads((world / 'run' / 'model' / 'model.json').read_text())

_json = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats() | st.text(max_size=5),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3), max_leaves=8)

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.sampled_from(['format', 'config', 'mean', 'std', 'grid', 'bank_shape', 'thresholds', 'timings', 'digests', 'config.batch_size',
                            'config.image_size', 'config.memory_layers', 'config.reweight_b', 'config.backbone', 'config.coreset_ratio']), value=_json)
def test_the_model_json_validator_accepts_or_names_the_problem(world, key, value):
    from tocoad.model import check_model_json
    info = _valid_info(world); check_model_json(info, Path('model.json'))  # the real one passes
    d, k = (info['config'], key.split('.')[1]) if '.' in key else (info, key); d[k] = value
    try: out = check_model_json(info, Path('model.json'))
    except TocoadError: return
    assert isinstance(out, ToCoADConfig)  # accepted: then every value is one tocoad can use
    assert all(isinstance(v, (int, float)) and v > 0 for v in info['std']) and len(info['grid']) == 2

# --- 7: permissions ---

def test_the_model_files_share_the_usual_permissions(world, tmp_path):
    from tocoad.model import ToCoAD
    _, model = _copy(world, tmp_path); old = os.umask(0o022)
    try: ToCoAD.load(model, device='cpu').save(tmp_path / 'saved')
    finally: os.umask(old)
    modes = {p.name: oct(p.stat().st_mode & 0o777) for p in (tmp_path / 'saved').iterdir()}
    assert set(modes.values()) == {'0o644'}, modes
    assert oct((tmp_path / 'saved').stat().st_mode & 0o777) == '0o755'

def test_an_unreadable_model_file_is_a_permission_problem(world, tmp_path, monkeypatch):
    import safetensors.torch
    from tocoad.model import ToCoAD
    _, model = _copy(world, tmp_path)
    def denied(path, *a, **k): raise PermissionError(13, 'Permission denied', str(path))
    monkeypatch.setattr(safetensors.torch, 'load_file', denied)
    with pytest.raises(TocoadError, match='permission') as e: ToCoAD.load(model, device='cpu')
    assert 'corrupt' not in str(e.value) and 'not a valid' not in str(e.value)

# --- 8: every numeric setting has a range, checked at the config, at --set and at load ---

def test_every_numeric_field_has_a_declared_range():
    tuples = {'lr_milestones', 'decoder_head', 'cl_layers', 'memory_layers'}  # checked element by element in validate
    numeric = {f.name for f in fields(ToCoADConfig) if any(t in str(f.type) for t in ('int', 'float')) and f.name not in tuples}
    assert numeric - set(RANGES) == set(), f'numeric fields without a declared range: {sorted(numeric - set(RANGES))}'
    assert set(RANGES) <= {f.name for f in fields(ToCoADConfig)} and not set(RANGES) & set(CHOICES)

@pytest.mark.parametrize('setting,words', [('image_size=0', ['image_size']), ('coreset_projection=0', ['coreset_projection']), ('patch_size=0', ['patch_size']),
                                           ('patch_size=-3', ['patch_size']), ('smoothing_sigma=-1', ['smoothing_sigma']), ('feature_dim=0', ['feature_dim']),
                                           ('num_workers=-1', ['num_workers']), ('resize=0', ['resize'])])
def test_a_setting_out_of_range_gives_one_line(world, tmp_path, setting, words, capsys):
    data, _ = _copy(world, tmp_path)
    err = _one_error(cli(capsys, *_fit(data, tmp_path / 'o', '--set', setting)), 2, *words)
    assert err.startswith('tocoad: error: --set') and not (tmp_path / 'o').exists()

def test_the_config_refuses_a_value_out_of_range():
    for kw in (dict(image_size=0), dict(reweight_b=9.5), dict(coreset_projection=0), dict(smoothing_sigma=-0.5)):
        with pytest.raises(TocoadError, match=list(kw)[0]): ToCoADConfig(**kw)

# --- 9: memory is estimated before any work ---

def test_a_huge_image_size_is_refused_before_training(world, tmp_path, capsys):
    data, _ = _copy(world, tmp_path)
    err = _one_error(cli(capsys, *_fit(data, tmp_path / 'o', '--set', 'image_size=8192', 'resize=8192')), 2, 'GiB', 'image_size')
    assert 'memory' in err and not (tmp_path / 'o' / 'checkpoints').exists()

# --- 4: a failure after training keeps the training ---

def test_a_failed_save_keeps_the_checkpoint_and_says_where(world, tmp_path, monkeypatch):
    from tocoad.core import preset
    from tocoad.model import ToCoAD
    from tocoad.run import run_fit
    data, _ = _copy(world, tmp_path)
    def full(self, path): raise OSError(28, 'No space left on device')
    monkeypatch.setattr(ToCoAD, 'save', full)
    cfg = preset('tiny', stages='ncl', device='cpu', val_holdout=0.0)
    with pytest.raises(TocoadError) as e: run_fit(data, 'washer', cfg=cfg, out=tmp_path / 'o', progress=False)
    msg = str(e.value)
    assert 'No space left' in msg and str(tmp_path / 'o' / 'checkpoints') in msg and '--resume' in msg
    assert (tmp_path / 'o' / 'checkpoints' / 'stage2' / 'checkpoint.safetensors').is_file()

def test_an_unwritable_model_folder_is_refused_before_training(world, tmp_path, capsys):
    data, _ = _copy(world, tmp_path); (tmp_path / 'o').mkdir(); (tmp_path / 'o' / 'tocoad_output.json').write_text('{}'); (tmp_path / 'o' / 'model').write_text('in the way')
    _one_error(cli(capsys, *_fit(data, tmp_path / 'o', '--train-stages', 'ncl', '--overwrite')), 2, 'model', 'cannot be written')
    assert not (tmp_path / 'o' / 'checkpoints' / 'stage2').exists()

# --- 10: predict's outputs ---

def test_predict_out_inside_the_input_folder_does_not_score_itself(world, tmp_path, capsys):
    data, model = _copy(world, tmp_path); imgs = tmp_path / 'imgs'; imgs.mkdir()
    for p in sorted((data / 'washer' / 'test' / 'good').glob('*.png')): shutil.copy(p, imgs / p.name)
    for _ in range(2):
        r = cli(capsys, *_predict(model, imgs, imgs / 'p')); assert r.returncode == 0, r.stderr[-1500:]
    assert len((imgs / 'p' / 'scores.csv').read_text().splitlines()) == 1 + 2

def test_a_reused_predict_out_keeps_nothing_of_the_last_run(world, tmp_path, capsys):
    data, model = _copy(world, tmp_path); a, b = sorted((data / 'washer' / 'test' / 'good').glob('*.png'))[:2]
    (tmp_path / 'bad.png').write_bytes(b'nope')
    r = cli(capsys, 'predict', '--model', model, a, tmp_path / 'bad.png', '--out', tmp_path / 'p', '--quiet'); assert r.returncode == 0, r.stderr[-1500:]
    assert (tmp_path / 'p' / 'skipped.csv').is_file()
    r = cli(capsys, *_predict(model, b, tmp_path / 'p')); assert r.returncode == 0, r.stderr[-1500:]
    assert not (tmp_path / 'p' / 'skipped.csv').exists()
    assert sorted(p.name for p in (tmp_path / 'p' / 'heatmaps').iterdir()) == [b.stem + '.png']

def test_predict_interrupted_leaves_the_last_results_whole(world, tmp_path, monkeypatch, capsys):
    from tocoad.model import ToCoAD
    data, model = _copy(world, tmp_path); imgs = sorted((data / 'washer' / 'test').rglob('*.png'))
    r = cli(capsys, 'predict', '--model', model, *imgs, '--out', tmp_path / 'p', '--quiet'); assert r.returncode == 0, r.stderr[-1500:]
    before, calls, predict = tree_digest(tmp_path / 'p'), [], ToCoAD.predict
    def interrupted(self, *a, **k):
        calls.append(1)
        if len(calls) > 1: raise KeyboardInterrupt
        return predict(self, *a, **k)
    monkeypatch.setattr(ToCoAD, 'predict', interrupted)
    r = cli(capsys, 'predict', '--model', model, *imgs[::-1], '--out', tmp_path / 'p', '--quiet'); err = r.stderr
    assert r.returncode == 130 and len(calls) == 2
    assert 'Traceback' not in err and len([l for l in err.splitlines() if l.startswith('tocoad: interrupted')]) == 1, err
    assert tree_digest(tmp_path / 'p') == before and sorted(p.name for p in tmp_path.iterdir()) == ['data', 'model', 'p']

def test_a_dangling_symlink_out_says_so(world, tmp_path, capsys):
    data, model = _copy(world, tmp_path); (tmp_path / 'p').symlink_to(tmp_path / 'gone')
    _one_error(cli(capsys, *_predict(model, _first(data / 'washer' / 'test' / 'good'), tmp_path / 'p')), 2, 'symbolic link', 'gone')

# --- 11: Ctrl-C during fit ---

def test_fit_interrupted_says_what_was_kept_in_one_line(world, tmp_path, monkeypatch, capsys):
    from tocoad.model import ToCoAD
    data, _ = _copy(world, tmp_path)
    def interrupted(self, *a, **k): raise KeyboardInterrupt
    monkeypatch.setattr(ToCoAD, 'fit_bank', interrupted)
    r = cli(capsys, *_fit(data, tmp_path / 'o', '--train-stages', 'none')); err = r.stderr
    assert r.returncode == 130
    lines = [l for l in err.splitlines() if l.startswith('tocoad: interrupted')]
    assert 'Traceback' not in err and len(lines) == 1 and '--resume' in lines[0] and str(tmp_path / 'o') in lines[0], err

# --- 12: make-toy ---

@pytest.mark.parametrize('args,words', [(('--n-train', '-3'), ['--n-train']), (('--size', '0'), ['--size'])])
def test_make_toy_refuses_impossible_sizes(tmp_path, args, words, capsys):
    _one_error(cli(capsys, 'data', 'make-toy', '--out', tmp_path / 't', '--categories', 'washer', *args), 2, *words)
    assert not (tmp_path / 't').exists()
