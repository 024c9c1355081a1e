"""Memory bank and metrics against independent computations (brute force, sklearn, the textbook greedy)."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from tocoad.memory import greedy_coreset, greedy_coreset_simple, NearestNeighbours, MemoryBank, covering_radius
from tocoad.metrics import aupro, auroc, evaluate_scores

def clustered(n=6000, d=24, k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 4
    return centres[torch.randint(k, (n,), generator=g)] + torch.randn(n, d, generator=g)

@pytest.mark.parametrize('projection', [None, 12])
def test_pruned_greedy_equals_textbook_greedy(projection):
    x = clustered()
    assert torch.equal(greedy_coreset(x, 600, projection, seed=5), greedy_coreset_simple(x, 600, projection, seed=5))

def test_coreset_covers_better_than_random():
    x = clustered(6000, 3); idx = greedy_coreset(x, 300, None)
    assert len(set(idx.tolist())) == 300
    rnd = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:300]
    assert covering_radius(x, idx) < 0.8 * covering_radius(x, rnd)

@pytest.mark.parametrize('approximate', [False, True])
def test_faiss_and_torch_find_the_same_neighbours(approximate):
    x = clustered(4000, 32); q = clustered(700, 32, seed=1)
    d_t, i_t = NearestNeighbours(x, 'torch', chunk=256).search(q, 4)
    d_f, i_f = NearestNeighbours(x, 'faiss', approximate=approximate).search(q, 4)
    if approximate:  # an IVF index may miss some neighbours, but finds most
        assert (i_f[:, 0] == i_t[:, 0]).float().mean() > 0.9
    else:
        assert torch.equal(i_t, i_f)
        torch.testing.assert_close(d_t, d_f, atol=1e-3, rtol=1e-4)
    brute = torch.cdist(q.double(), x.double()).min(1)
    assert torch.equal(i_t[:, 0], brute.indices)

def test_bank_backends_score_identically():
    x, q = clustered(3000, 16), clustered(500, 16, seed=2)
    a = MemoryBank(0.1, backend='torch').fit(x).score(q); b = MemoryBank(0.1, backend='faiss').fit(x).score(q)
    torch.testing.assert_close(a[0], b[0], atol=1e-3, rtol=1e-4); torch.testing.assert_close(a[1], b[1], atol=1e-3, rtol=1e-4)

def test_plain_distance_when_b_is_zero():
    x, q = clustered(2000, 8), clustered(100, 8, seed=3)
    raw, s = MemoryBank(0.2, b=0).fit(x).score(q)
    assert torch.equal(raw, s)

def test_pixel_auroc_matches_sklearn():
    rng = np.random.default_rng(0); masks = rng.random((3, 16, 16)) > 0.9; maps = rng.random((3, 16, 16)) + masks
    assert auroc(masks, maps) == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()))

def test_aupro_against_a_loop_over_thresholds_and_images():
    rng = np.random.default_rng(1)
    masks = np.zeros((3, 48, 48), bool); masks[0, 4:20, 4:20] = True; masks[1, 30:33, 30:33] = True; masks[1, 5:8, 40:44] = True
    maps = rng.random(masks.shape) + 0.6 * masks
    lab = [ndimage.label(m, structure=np.ones((3, 3)))[0] for m in masks]
    regions = [(i, k) for i in range(3) for k in range(1, lab[i].max() + 1)]
    normal = maps[~masks]; pts = []
    for t in np.quantile(normal, 1 - np.linspace(0, 0.3, 300), method='higher'):
        pro = np.mean([(maps[i][lab[i] == k] > t).mean() for i, k in regions])
        pts.append(((normal > t).mean(), pro))
    f, p = np.array(sorted(pts)).T; keep = f <= 0.3
    expected = np.trapezoid(np.r_[p[keep], np.interp(0.3, f, p)], np.r_[f[keep], 0.3]) / 0.3
    assert aupro(masks, maps) == pytest.approx(expected, abs=1e-9)
    assert 0.5 < expected < 1

def test_category_without_defects_says_auroc_is_undefined():
    r = evaluate_scores(np.zeros(5), np.arange(5.), np.zeros((5, 4, 4), bool), np.random.rand(5, 4, 4), ['good'] * 5)
    assert r['image_auroc'] is None and r['pixel_auroc'] is None
    assert any('undefined' in n for n in r['notes'])
