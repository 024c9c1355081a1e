"""Bad input, second round (issue 22), what comes in: globs over symlink loops, in-memory images converted like
files, EXIF orientation, non-finite and degenerate inputs to `predict`, masks of any two values, maps in the image's
own pixel grid, multi-frame and .gif/.webp files, defective samples given to `fit`, thresholds resting on few images,
the ONNX graph's declared shapes and opsets, and a file name that starts with '-'."""
import csv, os, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st, HealthCheck
from PIL import Image
from tocoad.core import preset, TocoadError, TocoadWarning
from tocoad.data import make_toy_dataset, load_samples, read_image, expand_images, ImageTransform, AnomalyDataset, Sample, check_samples, image_size_for
from tocoad.model import ToCoAD, to_pil

def tocoad(*args, **kw):
    return subprocess.run([str(Path(sys.executable).parent / 'tocoad'), *map(str, args)], capture_output=True, text=True, timeout=300, **kw)

@pytest.fixture(scope='module')
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp('toy'), categories=('washer',), n_train=8, n_test_good=2, n_test_defect=1, size=64)

@pytest.fixture(scope='module')
def model(toy):
    "A tiny model without training (tiny preset: 64 px input, resize 72, centre crop)."
    with warnings.catch_warnings(): warnings.simplefilter('ignore', TocoadWarning); return ToCoAD(preset('tiny', stages='none', device='cpu')).fit(load_samples(toy, 'washer'), progress=False)

def _rgb(h, w, seed=0): return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

# --- 1. globs and folders over symlink loops ---

def test_glob_and_folder_over_symlink_loops_end_and_list_each_file_once(tmp_path):
    g = tmp_path / 'g'; g.mkdir(); Image.fromarray(_rgb(8, 8)).save(g / 'a.png'); (g / 'sub').mkdir(); Image.fromarray(_rgb(8, 8)).save(g / 'sub' / 'b.png')
    os.symlink('.', g / 'l1'); os.symlink('.', g / 'l2'); os.symlink('..', g / 'sub' / 'up')
    code = ('import sys; from tocoad.data import expand_images; '
            'print(len(expand_images([sys.argv[1]])), len(expand_images([sys.argv[2]])), len(expand_images([sys.argv[1], sys.argv[2]])))')
    try: r = subprocess.run([sys.executable, '-c', code, str(g / '**' / '*.png'), str(g)], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired: pytest.fail('expanding a ** glob over symlink loops did not end in 300 s (it ends in seconds; the old code never did)')
    assert r.returncode == 0, r.stderr[-1500:]
    assert r.stdout.split() == ['2', '2', '2'], r.stdout  # a.png and sub/b.png, each once, by the glob, the folder and both
    assert len(expand_images([str(g / 'a.png'), str(g / 'l1' / 'a.png')])) == 1  # one file by two names: scored once

# --- 2. in-memory images converted like files ---

_SAVE = {'1': 'png', 'L': 'png', 'LA': 'png', 'P': 'png', 'RGB': 'png', 'RGBA': 'png', 'CMYK': 'tif', 'YCbCr': 'tif', 'LAB': 'tif',
         'I': 'tif', 'I;16': 'png', 'I;16B': 'tif', 'F': 'tif', 'PA': 'tif'}
_UNSAVED = ['HSV', 'RGBX', 'RGBa', 'La', 'I;16L', 'I;16N']

def _pil(mode, rng, h, w, big):
    if mode.startswith('I;16'): return Image.fromarray(rng.integers(0, 65536 if big else 256, (h, w), dtype=np.uint16)).convert(mode) if mode != 'I;16' else Image.fromarray(rng.integers(0, 65536 if big else 256, (h, w), dtype=np.uint16))
    if mode == 'I': return Image.fromarray(rng.integers(0, 65536 if big else 256, (h, w)).astype(np.int32))
    if mode == 'F': return Image.fromarray(rng.random((h, w), dtype=np.float32))
    if mode == 'HSV': return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), 'RGB').convert('HSV')
    return Image.fromarray(rng.integers(0, 256, (h, w, 4), dtype=np.uint8), 'RGBA').convert(mode) if mode in ('LA', 'La', 'PA', 'RGBa', 'RGBA', 'RGBX') else \
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).convert(mode)

def _outcome(fn):
    "The network input of `fn()`'s image, or the error it gives (a `TocoadError`; anything else fails the test)."
    try: return ImageTransform(32, 36).image(fn())
    except TocoadError as e: return e

def _same(a, b, tol=1 / 255 + 1e-6):
    if isinstance(a, TocoadError) or isinstance(b, TocoadError): return isinstance(a, TocoadError) and isinstance(b, TocoadError)
    return a.shape == b.shape and float((a - b).abs().max()) <= tol

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(list(_SAVE) + _UNSAVED), st.integers(4, 40), st.integers(4, 40), st.booleans(), st.integers(0, 2**31 - 1))
def test_every_pil_mode_is_converted_like_its_file(tmp_path, mode, h, w, big, seed):
    im = _pil(mode, np.random.default_rng(seed), h, w, big)
    mem = _outcome(lambda: to_pil(im))
    if mode in _SAVE:
        path = tmp_path / f'{seed}.{_SAVE[mode]}'; im.save(path)
        assert _same(mem, _outcome(lambda: read_image(path))), (mode, mem if isinstance(mem, Exception) else 'converted')
    if not isinstance(mem, TocoadError): assert 0 <= mem.min() and mem.max() <= 1 and torch.isfinite(mem).all()
    if mode.startswith('I;16') and big: assert float(mem.mean()) < 0.9  # 16-bit pixels scaled, never clipped to white

_DTYPES = ['uint8', 'uint16', 'int8', 'int16', 'int32', 'int64', 'uint32', 'float16', 'float32', 'float64', 'bool']

def _reference_file(a, tmp_path):
    "The file that holds the same pixels as 2-D array `a`, where a format tocoad reads allows it (floats: the 8-bit file of a × 255)."
    if a.dtype == bool: im = Image.fromarray(a)
    elif a.dtype.kind == 'f': im = Image.fromarray(np.round(a.astype(np.float64) * 255).astype(np.uint8))
    elif a.dtype in (np.uint8, np.uint16): im = Image.fromarray(a)
    else: im = Image.fromarray(a.astype(np.int32))  # wider integers: a 32-bit TIFF, mode I
    path = tmp_path / f'ref.{"tif" if im.mode == "I" else "png"}'; im.save(path); return path

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(_DTYPES), st.sampled_from([(), (1,), (3,), (4,)]), st.sampled_from(['in range', 'small', 'negative', 'too big', 'nan', 'inf']),
       st.integers(0, 2**31 - 1))
def test_every_numpy_dtype_is_converted_like_its_file_or_refused(tmp_path, dtype, channels, values, seed):
    rng = np.random.default_rng(seed); dt = np.dtype(dtype); h, w = 12, 9
    if dt.kind == 'b': a = rng.random((h, w, *channels)) > 0.5
    elif dt.kind == 'f': a = rng.random((h, w, *channels)).astype(dt)
    else: a = rng.integers(0, min(np.iinfo(dt).max, 65535 if values == 'in range' else 255) + 1, (h, w, *channels)).astype(dt)
    bad = {'negative': -1, 'too big': (2.0 if dt.kind == 'f' else 70000), 'nan': np.nan, 'inf': np.inf}.get(values)
    refuse = bad is not None and dt.kind != 'b' and (dt.kind == 'f' or (values in ('negative', 'too big') and np.iinfo(dt).min <= bad <= np.iinfo(dt).max))
    if refuse: a.flat[int(rng.integers(a.size))] = bad
    mem = _outcome(lambda: to_pil(a))
    if refuse: assert isinstance(mem, TocoadError), (dtype, values); return
    assert not isinstance(mem, TocoadError), (dtype, channels, values, mem)
    if not channels:
        assert _same(mem, _outcome(lambda: read_image(_reference_file(a, tmp_path)))), (dtype, values)
    else:  # a colour array: each channel as its grey array would be
        for c in range(min(3, channels[0])):
            assert _same(mem[c if channels[0] > 1 else 0], _outcome(lambda: to_pil(np.ascontiguousarray(a[..., c])))[0]), (dtype, channels, c)

# --- 4. non-finite and degenerate input to predict ---

def test_predict_refuses_non_finite_wrong_dtype_empty_images_and_bad_batch_sizes(model):
    x = torch.zeros(2, 3, 64, 64); x[1, 0, 5, 5] = float('nan')
    with pytest.raises(TocoadError, match='NaN or infinite'): model.predict(x)
    x[1, 0, 5, 5] = float('inf')
    with pytest.raises(TocoadError, match='NaN or infinite'): model.predict(x)
    with pytest.raises(TocoadError, match='uint8'): model.predict(torch.zeros(1, 3, 64, 64, dtype=torch.uint8))
    a = np.full((20, 20, 3), 0.5); a[3, 3, 1] = np.nan
    with pytest.raises(TocoadError, match='NaN or infinite'): model.predict(a)
    with pytest.raises(TocoadError, match='0×0|empty'): model.predict(np.zeros((0, 0, 3), np.uint8))
    with pytest.raises(TocoadError, match='0×0|empty'): model.predict(Image.new('RGB', (0, 0)))
    for bs in (-1, 0, 1.5):
        with pytest.raises(TocoadError, match='batch_size'): model.predict(_rgb(20, 20), batch_size=bs)

# --- 6. maps and masks in the image's own pixel grid ---

def test_a_map_goes_back_onto_the_image_grid_with_the_crop_border_unscored():
    im = np.zeros((64, 64), np.uint8); im[20:40, 30:50] = 255  # a square defect
    tfm = ImageTransform(64, 72)  # resize to 72, centre crop 64: the border the crop cuts is 4 px of 72, 3.6 px of the 64 px image
    net = tfm.image(Image.fromarray(im))[0]  # the defect as the network sees it, scaled and shifted
    back = tfm.to_image_grid(net, (64, 64))
    assert back.shape == (64, 64) and back.dtype == torch.float32
    scored = ~torch.isnan(back)
    assert not scored[:3].any() and not scored[-3:].any() and not scored[:, :3].any() and not scored[:, -3:].any() and scored[4:-4, 4:-4].all()
    got, want = back.nan_to_num(0) > 0.5, torch.from_numpy(im > 0)
    assert (got & want).sum() / (got | want).sum() > 0.9  # IoU in the image's grid (0.59 when the network's grid is read as the image's)
    wide = ImageTransform((32, 64), crop=False).to_image_grid(torch.rand(32, 64), (50, 120))
    assert wide.shape == (50, 120) and torch.isfinite(wide).all()  # no crop: every pixel scored

def test_predict_gives_maps_and_masks_in_each_images_own_grid(model):
    res = model.predict([_rgb(50, 80), _rgb(64, 64, seed=1)])
    assert res['maps'].shape == (2, 64, 64)  # the network's grid, as before
    assert [tuple(m.shape) for m in res['image_maps']] == [(50, 80), (64, 64)]
    assert [tuple(m.shape) for m in res['image_masks']] == [(50, 80), (64, 64)] and res['image_masks'][0].dtype == torch.bool
    m = res['image_maps'][1]
    assert torch.isnan(m[0]).all() and torch.isfinite(m[8:-8, 8:-8]).all() and not res['image_masks'][1][0].any()  # the crop's border: not scored, not defective

# --- 5. masks of any two values ---

@pytest.mark.parametrize('kind', ['0/255', '0/1', '0/100', '0/2', 'red', 'palette'])
def test_masks_of_any_two_values_read_their_defect(tmp_path, kind):
    m = np.zeros((40, 40), np.uint8); m[10:20, 5:25] = 1
    if kind == 'red': im = Image.fromarray(np.dstack([m * 255, m * 0, m * 0]))
    elif kind == 'palette': im = Image.fromarray(m, 'P'); im.putpalette([0, 0, 0, 0, 0, 255])  # index 1 is blue
    else: im = Image.fromarray(m * int(kind.split('/')[1]))
    im.save(tmp_path / 'm.png'); Image.fromarray(_rgb(40, 40)).save(tmp_path / 'i.png')
    s = Sample(tmp_path / 'i.png', 1, defect='crack', mask_path=tmp_path / 'm.png')
    got = AnomalyDataset([s], ImageTransform(40, crop=False))[0]['mask'][0]
    assert torch.equal(got, torch.from_numpy(m).float()), kind  # 200 defect pixels: AUPRO and pixel AUROC see the defect
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); check_samples([s], 40)
    notes = [str(x.message) for x in w]
    assert (kind == '0/255') == (not any('any non-zero' in n for n in notes)), notes  # anything but 0/255 is named, with how it is read

# --- 3. EXIF orientation ---

def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    up = _rgb(30, 50); mask = np.zeros((30, 50), np.uint8); mask[5:10, 30:45] = 255
    for arr, name in ((up, 'i.png'), (mask, 'm.png')):  # stored turned a quarter, with Orientation 6 saying how to turn it back
        ex = Image.Exif(); ex[0x0112] = 6; Image.fromarray(arr).transpose(Image.Transpose.ROTATE_90).save(tmp_path / name, exif=ex)
    assert np.array_equal(np.asarray(read_image(tmp_path / 'i.png')), up)
    item = AnomalyDataset([Sample(tmp_path / 'i.png', 1, defect='x', mask_path=tmp_path / 'm.png')], ImageTransform((30, 50), crop=False))[0]
    assert torch.equal(item['mask'][0], torch.from_numpy(mask > 0).float())
    assert image_size_for([tmp_path / 'i.png'], short=32) == (32, 64)  # wide, as shown: 30 x 50

# --- 7. formats ---

def test_multi_frame_images_are_refused_and_gif_webp_are_read(tmp_path, model):
    frames = [Image.fromarray(_rgb(16, 16, seed=i)) for i in range(3)]
    frames[0].save(tmp_path / 'pages.tif', save_all=True, append_images=frames[1:]); frames[0].save(tmp_path / 'anim.gif', save_all=True, append_images=frames[1:])
    for f in ('pages.tif', 'anim.gif'):
        with pytest.raises(TocoadError, match='3 frames'): read_image(tmp_path / f)
    d = tmp_path / 'imgs'; d.mkdir(); frames[0].save(d / 'a.gif'); frames[1].save(d / 'b.webp'); frames[2].save(d / 'c.png')
    assert [p.name for p in expand_images([str(d)])] == ['a.gif', 'b.webp', 'c.png']
    with pytest.warns(TocoadWarning, match='smaller than the network input'): model.predict([_rgb(1, 1)])
    with pytest.warns(TocoadWarning, match="far from the input's aspect"): model.predict([_rgb(80, 320)])

# --- 8. fit given test samples ---

def test_fit_refuses_defective_samples(toy):
    with pytest.raises(TocoadError, match='defective'): ToCoAD(preset('tiny', stages='none', device='cpu')).fit(load_samples(toy, 'washer', split='test'), progress=False)

# --- 9. thresholds resting on few images; 10. the ONNX graph; 11. a file named -x.png; and the CLI's per-image outputs ---

def test_thresholds_say_how_many_images_they_rest_on(toy, tmp_path):
    with pytest.warns(TocoadWarning, match='rest on 1 held-out'):  # 8 training images, 10 % held out: one image
        m = ToCoAD(preset('tiny', stages='none', device='cpu')).fit(load_samples(toy, 'washer'), progress=False)
    assert 'rest on 1 held-out' in m.threshold_warning()
    m0 = ToCoAD(preset('tiny', stages='none', device='cpu', threshold_holdout=0.0)).fit(load_samples(toy, 'washer'), progress=False)
    assert m0.thresholds is None and 'threshold_holdout' in m0.threshold_warning() and 'older' not in m0.threshold_warning()
    m0.save(tmp_path / 'm0')
    img = tmp_path / 'i.png'; Image.fromarray(_rgb(40, 40)).save(img)
    r = tocoad('predict', '--model', tmp_path / 'm0', img, '--out', tmp_path / 'p', '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'older tocoad' not in r.stderr and 'threshold_holdout' in r.stderr, r.stderr

def test_cli_writes_masks_maps_and_heatmaps_in_the_images_grid_and_skips_multi_frame_files(model, tmp_path):
    model.save(tmp_path / 'model'); d = tmp_path / 'imgs'; d.mkdir()
    Image.fromarray(_rgb(50, 90)).save(d / 'wide.png'); Image.fromarray(_rgb(30, 30, seed=2)).save(d / 'still.gif')
    frames = [Image.fromarray(_rgb(16, 16, seed=i)) for i in range(2)]; frames[0].save(d / 'anim.gif', save_all=True, append_images=frames[1:])
    r = tocoad('predict', '--model', tmp_path / 'model', d, '--out', tmp_path / 'p', '--quiet', '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-2000:]
    rows = {Path(x['image']).name: x for x in csv.DictReader(open(tmp_path / 'p' / 'scores.csv'))}
    assert sorted(rows) == ['still.gif', 'wide.png']
    skipped = list(csv.DictReader(open(tmp_path / 'p' / 'skipped.csv')))
    assert [Path(x['image']).name for x in skipped] == ['anim.gif'] and '2 frames' in skipped[0]['reason']
    for name, hw in (('wide.png', (50, 90)), ('still.gif', (30, 30))):
        assert Image.open(tmp_path / 'p' / rows[name]['mask']).size == hw[::-1]
        mp = np.load(tmp_path / 'p' / rows[name]['map']); assert mp.shape == hw and np.isnan(mp[0]).all() and np.isfinite(mp[hw[0] // 2]).sum() > 0

def test_onnx_map_declares_its_shape_and_bad_opsets_are_one_error(model, tmp_path):
    pytest.importorskip('onnx'); import onnx
    from tocoad.export import export_onnx
    path = export_onnx(model, tmp_path / 'm.onnx')
    dims = {o.name: [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in onnx.load(str(path)).graph.output}
    assert dims == {'score': ['batch'], 'map': ['batch', 64, 64]}, dims
    for opset in (5, 999):
        with pytest.raises(TocoadError, match='opset'): export_onnx(model, tmp_path / f'o{opset}.onnx', opset=opset)
        assert not (tmp_path / f'o{opset}.onnx').exists()

def test_a_file_name_starting_with_a_dash_gets_the_real_cause(tmp_path):
    Image.fromarray(_rgb(8, 8)).save(tmp_path / '-x.png')
    r = tocoad('predict', '--model', tmp_path / 'none', '-x.png', '--out', tmp_path / 'p', cwd=tmp_path)
    errors = [line for line in r.stderr.splitlines() if 'error' in line]
    assert r.returncode == 2 and len(errors) == 1 and errors[0].startswith('tocoad: error:'), r.stderr
    assert "'-x.png'" in errors[0] and '-- -x.png' in errors[0] and './-x.png' in errors[0], errors[0]
