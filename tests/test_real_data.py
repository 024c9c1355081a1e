"""The method on real data: MVTec AD bottle, offline ImageNet backbone, CPU preset, frozen baseline (Table 5, first row)."""
import warnings
from conftest import MVTEC, needs_mvtec
from tocoad.core import preset
from tocoad.data import load_samples
from tocoad.model import ToCoAD

@needs_mvtec
def test_frozen_baseline_on_bottle():
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # the centre crop trims a few border pixels of some masks (the paper's protocol)
        m = ToCoAD(preset('cpu', stages='none', device='cpu')).fit(load_samples(MVTEC, 'bottle'), progress=False)
        r = m.evaluate(load_samples(MVTEC, 'bottle', split='test'), progress=False)
    assert r['image_auroc'] >= 0.99 and r['pixel_auroc'] >= 0.97, r
    assert r['pixel_aupro'] > 0.85 and set(r['per_defect']) == {'broken_large', 'broken_small', 'contamination'}
    assert m.timings['bank_size'] == round(0.1 * m.timings['n_patches'])
