"""Bad input never crashes or lies: one table of cases run through the real `tocoad` command (exit code, the key words
of the one-line message, and nothing the user made changed), plus property-based tests of the settings parser and
the image readers."""
import csv, hashlib, json, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
from PIL import Image
from safetensors.torch import load_file, save_file
from tocoad.core import TocoadError, LAYERS, parse_field
from tocoad.data import make_toy_dataset, read_image, ImageTransform

def tocoad(*args, **kw):
    return subprocess.run([str(Path(sys.executable).parent / 'tocoad'), *map(str, args)], capture_output=True, text=True, timeout=600, **kw)

def tree_digest(root:Path)->dict:
    "Path -> sha1 of every file under `root`: what the user made, to check that nothing of it changed."
    return {str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob('*')) if p.is_file()}

@pytest.fixture(scope='module')
def world(tmp_path_factory):
    "A toy dataset and a fitted tiny model, made once; each case works on its own copies."
    base = tmp_path_factory.mktemp('world')
    data = make_toy_dataset(base / 'data', categories=('washer',), n_train=6, n_test_good=2, n_test_defect=2, size=64)
    r = tocoad('fit', '--data', data, '--category', 'washer', '--preset', 'tiny', '--train-stages', 'none', '--out', base / 'run', '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    return base

def _copy(world, tmp):
    shutil.copytree(world / 'data', tmp / 'data'); shutil.copytree(world / 'run' / 'model', tmp / 'model')
    return tmp / 'data', tmp / 'model'

def _first(folder, pattern='*.png'): return sorted(Path(folder).glob(pattern))[0]

def _fit(data, out, *extra): return ('fit', '--data', data, '--category', 'washer', '--preset', 'tiny', '--device', 'cpu', '--quiet', '--out', out, *extra)

def _bank(model, fn):
    t = load_file(str(model / 'bank.safetensors')); fn(t); save_file(t, str(model / 'bank.safetensors'))

def _model_json(model, fn):
    info = json.loads((model / 'model.json').read_text()); fn(info); (model / 'model.json').write_text(json.dumps(info))

def _bomb(path):  # 16000 x 16000 one-bit pixels: a tiny file that would decode to 256 million pixels
    Image.new('1', (16000, 16000)).save(path)

# case -> (prepare(data, model, tmp) -> argv, expected exit code, words the message must hold)
CASES = {
    'set: bool typo': (lambda d, m, t: _fit(d, t / 'o', '--set', 'crop=Flase'), 2, ["crop='Flase' is not true or false"]),
    'set: float for an int': (lambda d, m, t: _fit(d, t / 'o', '--set', 'batch_size=1.5'), 2, ['batch_size', 'not an integer']),
    'set: unknown field': (lambda d, m, t: _fit(d, t / 'o', '--set', 'lamda=0.5'), 2, ["unknown config field 'lamda'"]),
    'set: not a layer': (lambda d, m, t: _fit(d, t / 'o', '--set', 'memory_layers=layer9'), 2, ['memory_layers', 'subset']),
    'set: no equals sign': (lambda d, m, t: _fit(d, t / 'o', '--set', 'lam'), 2, ['field=value']),
    'set: NaN': (lambda d, m, t: _fit(d, t / 'o', '--set', 'lam=nan'), 2, ['finite number']),
    'set: b = 1 scores every patch 0': (lambda d, m, t: _fit(d, t / 'o', '--set', 'reweight_b=1'), 2, ['reweight_b=1 is not allowed', 'scores every patch 0']),
    'device: tpu': (lambda d, m, t: ('fit', '--data', d, '--category', 'washer', '--preset', 'tiny', '--device', 'tpu', '--out', t / 'o'), 2, ["device='tpu' is not a device"]),
    'fit: unknown category': (lambda d, m, t: ('fit', '--data', d, '--category', 'wahser', '--preset', 'tiny', '--out', t / 'o'), 2, ["unknown category 'wahser'"]),
    'fit: corrupt train image': (lambda d, m, t: (_first(d / 'washer' / 'train' / 'good').write_bytes(b'\x89PNG broken'), _fit(d, t / 'o'))[1], 2, ['is not a readable image']),
    'fit: corrupt test image': (lambda d, m, t: (_first(d / 'washer' / 'test' / 'good').write_bytes(b'garbage'), _fit(d, t / 'o'))[1], 2, ['is not a readable image']),
    'fit: mask of the wrong size': (lambda d, m, t: (Image.new('L', (10, 10)).save(_first(d / 'washer' / 'ground_truth' / 'scratch')), _fit(d, t / 'o'))[1], 2, ['masks must match their images']),
    'fit: decompression bomb': (lambda d, m, t: (_bomb(_first(d / 'washer' / 'train' / 'good')), _fit(d, t / 'o'))[1], 2, ['too large to open safely']),
    'fit: out is a file': (lambda d, m, t: ((t / 'f.txt').write_text('mine'), _fit(d, t / 'f.txt'))[1], 2, ['is a file, not a folder']),
    'fit: out holds my files': (lambda d, m, t: ((t / 'mine').mkdir(), (t / 'mine' / 'thesis.tex').write_text('keep'), _fit(d, t / 'mine'))[2], 2, ['did not write']),
    'fit: out cannot be written': (lambda d, m, t: _fit(d, '/proc/tocoad_out'), 2, ['cannot be written']),
    'fit: old checkpoint layout': (lambda d, m, t: ((t / 'o' / 'checkpoints' / 'stage1').mkdir(parents=True), (t / 'o' / 'tocoad_output.json').write_text('{}'),
                                                    (t / 'o' / 'checkpoints' / 'stage1' / 'checkpoint.json').write_text('{}'), _fit(d, t / 'o', '--resume', '--train-stages', 'dnp+ncl'))[3], 2, ['older tocoad']),
    'predict: run folder for model folder': (lambda d, m, t: ('predict', '--model', m.parent / 'run_like', _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'), 2, ['the model is in']),
    'predict: corrupt backbone': (lambda d, m, t: ((m / 'backbone.safetensors').write_bytes(b'{"not": "tensors"}'), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['backbone.safetensors is not a valid safetensors file']),
    'predict: empty backbone': (lambda d, m, t: ((m / 'backbone.safetensors').write_bytes(b''), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['not a valid safetensors file']),
    'predict: model.json without a key': (lambda d, m, t: (_model_json(m, lambda i: i.pop('grid')), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['lacks or mistypes', 'grid']),
    'predict: model.json wrong type': (lambda d, m, t: (_model_json(m, lambda i: i.update(mean='0.5')), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['lacks or mistypes', 'mean']),
    'predict: NaN in the bank': (lambda d, m, t: (_bank(m, lambda b: b['bank'].__setitem__((0, 0), float('nan'))), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['NaN']),
    'predict: neighbour table out of range': (lambda d, m, t: (_bank(m, lambda b: b['bank_knn'].__setitem__((0, 0), 10**6)), ('predict', '--model', m, _first(d / 'washer' / 'test' / 'good'), '--out', t / 'p'))[1], 2, ['bank_knn does not index the bank']),
    'predict: nothing matches': (lambda d, m, t: ('predict', '--model', m, str(d / '*.jpg'), '--out', t / 'p'), 2, ['names no image']),
    'ablate: axis without effect': (lambda d, m, t: ('ablate', '--data', d, '--category', 'washer', '--axis', 'generator', '--train-stages', 'none', '--preset', 'tiny', '--out', t / 'a'), 2, ['no effect with stages']),
    'benchmark: a missing category': (lambda d, m, t: ('benchmark', '--data', d, '--categories', 'washer', 'nope', '--preset', 'tiny', '--device', 'cpu', '--out', t / 'b'), 2, ["unknown category 'nope'"]),
}

@pytest.mark.parametrize('case', list(CASES))
def test_bad_input_gives_one_line_and_changes_nothing(world, tmp_path, case):
    data, model = _copy(world, tmp_path)
    if case == 'predict: run folder for model folder': shutil.copytree(model, tmp_path / 'run_like' / 'model')
    prepare, code, words = CASES[case]
    argv = prepare(data, model, tmp_path)
    before = {k: tree_digest(p) for k, p in {'data': data, 'model': model}.items()}
    r = tocoad(*argv)
    assert r.returncode == code, (r.returncode, r.stderr[-1500:])
    errors = [l for l in r.stderr.splitlines() if l.startswith('tocoad: error:')]
    assert len(errors) == 1 and 'Traceback' not in r.stderr, r.stderr[-1500:]
    for w in words: assert w in errors[0], (w, errors[0])
    assert {k: tree_digest(p) for k, p in {'data': data, 'model': model}.items()} == before  # nothing the user made changed
    assert not (tmp_path / 'o' / 'checkpoints' / 'stage1' / 'checkpoint.safetensors').exists()  # refused before any training
    if case == 'benchmark: a missing category': assert not (tmp_path / 'b').exists()  # before fitting washer
    if case == 'fit: out holds my files': assert (tmp_path / 'mine' / 'thesis.tex').read_text() == 'keep'

def test_predict_takes_folders_skips_unreadable_and_keeps_every_heatmap(world, tmp_path):
    data, model = _copy(world, tmp_path)
    imgs = tmp_path / 'imgs'
    for sub in ('good', 'broken_large'):
        (imgs / sub).mkdir(parents=True); shutil.copy(_first(data / 'washer' / 'test' / 'good'), imgs / sub / '000.png')
    shutil.copy(_first(data / 'washer' / 'test' / 'good'), imgs / 'good' / 'a,b.png'); (imgs / 'good' / 'bad.png').write_bytes(b'nope')
    r = tocoad('predict', '--model', model, imgs, '--out', tmp_path / 'p', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    rows = list(csv.DictReader(open(tmp_path / 'p' / 'scores.csv')))
    assert sorted(Path(x['image']).name for x in rows) == ['000.png', '000.png', 'a,b.png']  # the comma did not split the row
    assert len({x['heatmap'] for x in rows}) == 3 and all((tmp_path / 'p' / x['heatmap']).is_file() for x in rows)
    skipped = list(csv.DictReader(open(tmp_path / 'p' / 'skipped.csv')))
    assert [Path(x['image']).name for x in skipped] == ['bad.png'] and 'not a readable image' in skipped[0]['reason']
    assert '3 image(s) scored, 1 skipped' in r.stdout
    assert oct((tmp_path / 'p' / 'scores.csv').stat().st_mode & 0o777) == '0o644'  # the usual permissions under umask 022

def test_a_16_bit_image_is_scored_like_its_8_bit_copy(world, tmp_path):
    data, model = _copy(world, tmp_path)
    eight = np.asarray(Image.open(_first(data / 'washer' / 'test' / 'good')).convert('L'))
    Image.fromarray(eight).save(tmp_path / 'g8.png'); Image.fromarray(eight.astype(np.uint16) * 257).save(tmp_path / 'g16.png')
    r = tocoad('predict', '--model', model, tmp_path / 'g8.png', tmp_path / 'g16.png', '--out', tmp_path / 'p', '--quiet')
    assert r.returncode == 0, r.stderr[-2000:]
    s = {Path(x['image']).name: float(x['score']) for x in csv.DictReader(open(tmp_path / 'p' / 'scores.csv'))}
    assert abs(s['g8.png'] - s['g16.png']) < 1e-4, s

def test_odd_inputs_get_one_warning_line_each(world, tmp_path):
    data, _ = _copy(world, tmp_path)
    train = sorted((data / 'washer' / 'train' / 'good').glob('*.png'))
    Image.open(train[0]).convert('RGBA').save(train[0]); Image.open(train[1]).convert('RGB').resize((200, 40)).save(train[1])
    mask = _first(data / 'washer' / 'ground_truth' / 'scratch'); Image.fromarray((np.asarray(Image.open(mask)) > 127).astype(np.uint8)).save(mask)
    r = tocoad(*_fit(data, tmp_path / 'o', '--train-stages', 'none'))
    assert r.returncode == 0, r.stderr[-2000:]
    warns = [l for l in r.stderr.splitlines() if l.startswith('tocoad: warning:')]
    for words in ('transparency', "far from the input's aspect", 'different sizes', '0/1 values'): assert sum(words in w for w in warns) == 1, (words, warns)
    assert any('image_size=64x320 keeps its aspect' in w for w in warns), '\n'.join(warns)  # 200 x 40 (width x height) at the tiny preset's 64 px: the input that keeps it

def test_help_answers_without_torch():
    r = subprocess.run([sys.executable, '-c', 'import sys; from tocoad.cli import build_parser; build_parser().format_help(); print("torch" in sys.modules)'],
                       capture_output=True, text=True)
    assert r.stdout.strip() == 'False', r.stderr
    parser_help = ' '.join(tocoad('fit', '--help').stdout.split())
    assert 'tiny is for tests: random weights' in parser_help and parser_help.count('--') > 8

# --- property-based: the settings parser and the image readers ---

@given(st.booleans(), st.sampled_from([str.lower, str.upper, str.title]), st.sampled_from(['crop', 'amp', 'cl_concat']))
def test_bools_parse_in_any_spelling(b, case, field):
    words = (['true', 'yes', '1', 'on'] if b else ['false', 'no', '0', 'off'])
    for w in words: assert parse_field(field, case(w)) is b

@given(st.integers(-10**9, 10**9))
def test_ints_round_trip_and_floats_are_refused(i):
    assert parse_field('batch_size', str(i)) == i
    with pytest.raises(TocoadError, match='not an integer'): parse_field('batch_size', f'{i}.5')

@given(st.floats(allow_nan=False, allow_infinity=False))
def test_floats_round_trip(x):
    assert parse_field('lam', repr(x)) == x

@given(st.lists(st.sampled_from(LAYERS), min_size=1, max_size=4))
def test_layer_tuples_parse_from_commas_and_json(layers):
    assert parse_field('cl_layers', ','.join(layers)) == tuple(layers) == parse_field('cl_layers', json.dumps(layers))

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(['L', 'RGB', 'RGBA', 'P', 'I;16', 'CMYK', '1']), st.integers(8, 90), st.integers(8, 90), st.integers(0, 2**31 - 1))
def test_any_readable_image_becomes_a_network_input_in_range(tmp_path, mode, w, h, seed):
    rng = np.random.default_rng(seed)
    if mode == 'I;16': im = Image.fromarray(rng.integers(0, 65536, (h, w), dtype=np.uint16))
    else: im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)
    path = tmp_path / f'{seed}.{"tif" if mode == "CMYK" else "png"}'; im.save(path)
    x = ImageTransform(64, 72).image(read_image(path))
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and torch.isfinite(x).all()
    if mode == 'I;16':  # scaled, never clipped to white
        assert abs(np.asarray(read_image(path, 'L')).astype(float).mean() - np.asarray(im).astype(float).mean() / 257) < 1.0

def test_every_argument_of_every_command_has_help():
    import argparse
    from tocoad.cli import build_parser
    def parsers(p):
        yield p
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in a.choices.values(): yield from parsers(sub)
    missing = [(p.prog, a.dest) for p in parsers(build_parser()) for a in p._actions
               if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and not a.help]
    assert missing == []

def test_benchmark_resumes_category_by_category(world, tmp_path):
    data, _ = _copy(world, tmp_path)
    args = ('benchmark', '--data', data, '--categories', 'washer', '--preset', 'tiny', '--train-stages', 'none', '--device', 'cpu', '--quiet', '--out', tmp_path / 'b')
    first = tocoad(*args); assert first.returncode == 0, first.stderr[-2000:]
    stamp = (tmp_path / 'b' / 'washer' / 'metrics.json').stat().st_mtime_ns
    again = tocoad(*args); assert again.returncode == 0 and 'washer: done before with this config, reused' in again.stdout
    assert (tmp_path / 'b' / 'washer' / 'metrics.json').stat().st_mtime_ns == stamp
    other = tocoad(*args[:-2], '--set', 'reweight_b=0', '--out', tmp_path / 'b'); assert 'reused' not in other.stdout  # another config refits
