"""Dataset readers for every layout, and the errors a user sees for bad input."""
import warnings
import numpy as np
import pytest
from PIL import Image
from conftest import MVTEC, needs_mvtec, write_mask
from tocoad.core import TocoadError
from tocoad.data import load_samples, AnomalyDataset, ImageTransform, make_toy_dataset, TOY_DEFECTS

TF = ImageTransform(32, 36)

@pytest.mark.parametrize('fmt,fixture,cat,n_train,n_test,n_bad', [
    ('mvtec', 'mvtec_tiny', 'widget', 4, 4, 2), ('visa', 'visa_tiny', 'candle', 2, 3, 2),
    ('btad', 'btad_tiny', '03', 3, 2, 1), ('folder', 'folder_tiny', 'part', 3, 2, 1)])
def test_layouts(request, fmt, fixture, cat, n_train, n_test, n_bad):
    root = request.getfixturevalue(fixture)
    tr, te = load_samples(root, cat, split='train', data_format=fmt), load_samples(root, cat, split='test', data_format=fmt)
    assert (len(tr), len(te), sum(s.label for s in te)) == (n_train, n_test, n_bad)
    ds = AnomalyDataset(te, TF)
    items = [ds[i] for i in range(len(ds))]
    for it, s in zip(items, te):
        assert it['image'].shape == (3, 32, 32)  # grayscale inputs become 3 channels
        assert it['mask'].shape == (1, 32, 32) and set(it['mask'].unique().tolist()) <= {0.0, 1.0}
        assert (it['mask'].sum() > 0) == bool(s.label) and it['path'] == str(s.path)

@needs_mvtec
def test_real_mvtec_bottle():
    te = load_samples(MVTEC, 'bottle', split='test')
    assert len(load_samples(MVTEC, 'bottle', split='train')) == 209 and len(te) == 83
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        it = AnomalyDataset(te, ImageTransform())[[s.defect for s in te].index('broken_large')]
    assert it['image'].shape == (3, 224, 224) and it['label'] == 1 and it['mask'].sum() > 100

def test_missing_root_and_unknown_category(mvtec_tiny):
    with pytest.raises(TocoadError, match='does not exist'): load_samples(mvtec_tiny / 'nope', 'widget')
    with pytest.raises(TocoadError, match="unknown category 'widgte'.*found: widget"): load_samples(mvtec_tiny, 'widgte')
    with pytest.raises(TocoadError, match="unknown dataset format"): load_samples(mvtec_tiny, 'widget', data_format='coco')

def test_empty_train_folder(mvtec_tiny):
    for p in (mvtec_tiny / 'widget' / 'train' / 'good').iterdir(): p.unlink()
    with pytest.raises(TocoadError, match=r'train/good holds no images'): load_samples(mvtec_tiny, 'widget')

def test_corrupt_image_names_the_file(mvtec_tiny):
    bad = mvtec_tiny / 'widget' / 'train' / 'good' / '001.png'; bad.write_bytes(b'not a png at all')
    ds = AnomalyDataset(load_samples(mvtec_tiny, 'widget'), TF)
    with pytest.raises(TocoadError, match='001.png is not a readable image'): ds[1]

def test_missing_mask(mvtec_tiny):
    (mvtec_tiny / 'widget' / 'ground_truth' / 'crack' / '001_mask.png').unlink()
    with pytest.raises(TocoadError, match=r'mask missing for defective image .*crack/001.png'): load_samples(mvtec_tiny, 'widget', split='test')

def test_mask_of_other_size(mvtec_tiny):
    write_mask(mvtec_tiny / 'widget' / 'ground_truth' / 'crack' / '000_mask.png', size=(30, 30))
    ds = AnomalyDataset(load_samples(mvtec_tiny, 'widget', split='test'), TF)
    i = [s.defect for s in ds.samples].index('crack')
    with pytest.raises(TocoadError, match=r'000_mask.png is 30x30 but its image .* is 40x40'): ds[i]

def test_non_image_files_are_skipped_with_a_warning(mvtec_tiny):
    (mvtec_tiny / 'widget' / 'train' / 'good' / 'Thumbs.db').write_bytes(b'x')
    with pytest.warns(UserWarning, match='ignoring 1 non-image'): assert len(load_samples(mvtec_tiny, 'widget')) == 4

def test_visa_needs_its_split_file(visa_tiny):
    (visa_tiny / 'split_csv' / '1cls.csv').unlink()
    with pytest.raises(TocoadError, match='split_csv/1cls.csv'): load_samples(visa_tiny, 'candle', data_format='visa')

def test_crop_warns_when_it_cuts_a_defect(mvtec_tiny):
    write_mask(mvtec_tiny / 'widget' / 'ground_truth' / 'crack' / '000_mask.png', box=(0, 0, 3, 3))
    ds = AnomalyDataset(load_samples(mvtec_tiny, 'widget', split='test'), ImageTransform(32, 40))
    i = [s.defect for s in ds.samples].index('crack')
    with pytest.warns(UserWarning, match='crop cuts away'): ds[i]
    assert AnomalyDataset(ds.samples, ImageTransform(32, crop=False))[i]['mask'].sum() > 0

def test_toy_dataset_is_deterministic_and_masks_are_exact(tmp_path):
    a = make_toy_dataset(tmp_path / 'a', categories=('gravel',), n_train=2, n_test_good=1, n_test_defect=2, size=64, seed=3)
    b = make_toy_dataset(tmp_path / 'b', categories=('gravel',), n_train=2, n_test_good=1, n_test_defect=2, size=64, seed=3)
    files = sorted(p.relative_to(a) for p in a.rglob('*.png'))
    assert len(files) == 2 + 1 + 2 * 3 * 2
    for f in files: assert np.array_equal(np.asarray(Image.open(a / f)), np.asarray(Image.open(b / f)))
    for d in TOY_DEFECTS['gravel']:
        for m in (a / 'gravel' / 'ground_truth' / d).iterdir(): assert np.asarray(Image.open(m)).max() == 255
