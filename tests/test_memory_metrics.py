"""Memory bank and metrics against independent computations (brute force, sklearn, the textbook greedy)."""
import numpy as np
import pytest
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from tocoad.memory import greedy_coreset_simple, MemoryBank, covering_radius, CELLS_MARGIN
from tocoad.search import greedy_coreset, greedy_coreset_cells, NearestNeighbours, ivf_cells, tune_probe, SCREEN_MAX_GROUPS
from tocoad.metrics import aupro, auroc, evaluate_scores

def clustered(n=6000, d=24, k=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * 4
    return centres[torch.randint(k, (n,), generator=g)] + torch.randn(n, d, generator=g)

@pytest.mark.parametrize('projection', [None, 12])
def test_pruned_greedy_equals_textbook_greedy(projection):
    x = clustered()
    assert torch.equal(greedy_coreset(x, 600, projection=projection, seed=5), greedy_coreset_simple(x, 600, projection=projection, seed=5))

def test_coreset_covers_better_than_random():
    x = clustered(6000, 3); idx = greedy_coreset(x, 300, projection=None)
    assert len(set(idx.tolist())) == 300
    rnd = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:300]
    assert covering_radius(x, idx) < 0.8 * covering_radius(x, rnd)

def test_faiss_and_torch_find_the_same_neighbours():
    x = clustered(4000, 32); q = clustered(700, 32, seed=1)
    d_t, i_t = NearestNeighbours(x, 'torch', chunk=256).search(q, 4)
    d_f, i_f = NearestNeighbours(x, 'faiss').search(q, 4)
    assert torch.equal(i_t, i_f)
    torch.testing.assert_close(d_t, d_f, atol=1e-3, rtol=1e-4)
    brute = torch.cdist(q.double(), x.double()).min(1)
    assert torch.equal(i_t[:, 0], brute.indices)

def test_faiss_ivf_over_our_cells_finds_what_the_torch_ivf_finds():
    x = clustered(4000, 32); q = clustered(700, 32, seed=1)
    order, c, off = ivf_cells(x, 60, seed=0); xs = x[order]
    for probe in (1, 5, 60):
        d_t, i_t = NearestNeighbours(xs, 'torch', kind='ivf', centroids=c, offsets=off, probe=probe).search(q, 4)
        d_f, i_f = NearestNeighbours(xs, 'faiss', kind='ivf', centroids=c, offsets=off, probe=probe).search(q, 4)
        assert (i_t == i_f).float().mean() > 0.999; torch.testing.assert_close(d_t, d_f, atol=1e-3, rtol=1e-4)
    assert torch.equal(order[i_t], torch.cdist(q.double(), x.double()).topk(4, largest=False).indices)  # all 60 cells: exact

def test_flat_search_with_small_chunks_equals_brute_force():
    x, q = clustered(3000, 16), clustered(900, 16, seed=4)
    d, i = NearestNeighbours(x, chunk=100, bank_chunk=700).search(q, 5)
    brute = torch.cdist(q.double(), x.double()).topk(5, largest=False)
    assert torch.equal(i, brute.indices); torch.testing.assert_close(d.double(), brute.values, atol=1e-4, rtol=1e-5)

def test_ivf_bank_is_never_nearer_and_rarely_farther_than_exact():
    data = clustered(22000, 24, k=80); x, normal = data[:20000], data[20000:]  # held-out queries from the same distribution
    far = torch.randn(200, 24, generator=torch.Generator().manual_seed(9)) * 6  # anomalies: far from every cluster
    ivf, flat = MemoryBank(0.3, knn_index='ivf').fit(x), MemoryBank(0.3, knn_index='flat').fit(x)
    assert ivf.search_kind == 'ivf' and flat.search_kind == 'flat' and ivf.probe_recall >= 0.999
    for q, missed, excess in ((normal, 0.005, 0.1), (far, 0.15, 0.1)):  # far queries miss more often, by little
        r1, r2 = ivf.score(q)[0], flat.score(q)[0]
        assert (r1 >= r2 - 1e-3).all()                                # a subset of the bank is searched: never nearer
        assert ((r1 - r2) > 1e-3 * r2).float().mean() < missed        # the exact neighbour is missed rarely
        assert ((r1 - r2) / r2).max() < excess                        # and then by little
    assert MemoryBank(0.3).fit(x).search_kind == 'ivf' and MemoryBank(0.01).fit(x).search_kind == 'flat'  # 'auto': cells from IVF_FROM vectors

def test_cells_coreset_covers_almost_as_well_as_the_exact_greedy():
    for seed in (0, 1):
        x = clustered(60000, 24, k=200, seed=seed)
        exact, cells = greedy_coreset(x, 3000, projection=None), greedy_coreset_cells(x, 3000, projection=None, cell_size=4096)
        assert len(set(cells.tolist())) == 3000
        assert covering_radius(x, cells) <= 1.15 * covering_radius(x, exact)
    assert MemoryBank(0.05).fit(x).selected_by == 'cells' and MemoryBank(0.05).fit(x[:40000]).selected_by == 'global'

def test_bank_backends_score_identically():
    x, q = clustered(3000, 16), clustered(500, 16, seed=2)
    a = MemoryBank(0.1, knn_backend='torch').fit(x).score(q); b = MemoryBank(0.1, knn_backend='faiss').fit(x).score(q)
    torch.testing.assert_close(a[0], b[0], atol=1e-3, rtol=1e-4); torch.testing.assert_close(a[1], b[1], atol=1e-3, rtol=1e-4)

def test_plain_distance_when_b_is_zero():
    x, q = clustered(2000, 8), clustered(100, 8, seed=3)
    raw, s = MemoryBank(0.2, reweight_b=0).fit(x).score(q)
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
    r = evaluate_scores(np.zeros(5), np.arange(5.), masks=np.zeros((5, 4, 4), bool), maps=np.random.rand(5, 4, 4), defects=['good'] * 5)
    assert r['image_auroc'] is None and r['pixel_auroc'] is None
    assert any('undefined' in n for n in r['notes'])

def test_ivf_searches_only_the_probed_cells():
    x, q = torch.randn(4000, 32, generator=torch.Generator().manual_seed(3)), torch.randn(500, 32, generator=torch.Generator().manual_seed(4))
    order, c, off = ivf_cells(x, 60, seed=0); nn = NearestNeighbours(x[order], kind='ivf', centroids=c, offsets=off, probe=1)
    exact = torch.cdist(q, x).min(1).values
    one = (nn.search(q, 1)[0][:, 0] <= exact + 1e-4).float().mean()
    nn.probe = 60; every = (nn.search(q, 1)[0][:, 0] <= exact + 1e-4).float().mean()
    assert one < 0.8 and every == 1.0  # structureless vectors: one cell of 60 misses many neighbours, all cells none

def test_duplicated_features_leave_no_empty_cell_and_no_infinite_score():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 16, generator=g).repeat(100, 1)  # 50 distinct rows, 100 copies each
    mb = MemoryBank(0.5, knn_index='ivf').fit(x)
    assert (mb.cells[1].diff() > 0).all()  # every cell holds vectors
    raw, s = mb.score(torch.cat([x[:200], torch.randn(50, 16, generator=g)]))
    assert torch.isfinite(raw).all() and torch.isfinite(s).all() and (raw[:200] < 1e-2).all()
    assert mb.probe_recall >= 0.999 and mb.probe < len(mb.cells[0]) or len(mb.cells[0]) <= 2

# --- a search that never loses to exact (issue 21) ---

def test_a_probe_over_most_cells_is_the_exact_search_not_a_loop(monkeypatch):
    x, q = torch.randn(4000, 32, generator=torch.Generator().manual_seed(3)), torch.randn(200, 32, generator=torch.Generator().manual_seed(4))
    order, c, off = ivf_cells(x, 60, seed=0); nn = NearestNeighbours(x[order], kind='ivf', centroids=c, offsets=off, probe=31)
    cells_read = []; real_addmm = torch.addmm
    monkeypatch.setattr(torch, 'addmm', lambda *a, **kw: cells_read.append(1) or real_addmm(*a, **kw))
    d, i = nn.search(q, 3); n_calls = len(cells_read)
    monkeypatch.setattr(torch, 'addmm', real_addmm)
    flat = NearestNeighbours(x[order]).search(q, 3)
    assert torch.equal(d, flat[0]) and torch.equal(i, flat[1])  # 31 of 60 cells: the exact answer
    assert n_calls == 1  # by one matrix product (one chunk of 200 queries against the bank), not one per probed cell

def test_auto_search_drops_the_cells_on_a_uniform_bank_and_follows_the_timings():
    uniform = torch.randn(20000, 32, generator=torch.Generator().manual_seed(5))  # a uniform texture's patches: no clumps
    u = MemoryBank(0.5, reweight_b=0).fit(uniform)
    t = u.search_timings
    p, K = map(int, t['knn_cells_probe'].split('/')); assert p > 0.5 * K  # calibration asked for most cells: the cells are out
    assert t['knn_exact_ms'] > 0 and t['knn_cells_ms'] > 0 and t['knn_screen_ms'] > 0 and u.cells is None
    won = 'screen' if t['knn_screen_ms'] < CELLS_MARGIN * t['knn_exact_ms'] else 'exact'  # the choice follows this run's timings (none is asserted: the machine may be busy)
    assert (u.search_kind, t['knn_choice']) == ({'screen': 'screen', 'exact': 'flat'}[won], won), t
    assert won == 'exact' or u.probe_recall >= 0.999  # the screen kept meets the recall target on the held-out patches
    data = clustered(24000, 24, k=120); x, normal = data[:22000], data[22000:]
    cl = MemoryBank(0.3, reweight_b=0).fit(x); t = cl.search_timings
    p, K = map(int, t['knn_cells_probe'].split('/')); assert p <= 0.5 * K  # clumps: a few cells find the neighbour
    ms = {'cells': t['knn_cells_ms'], 'screen': t['knn_screen_ms']}; best = min(ms, key=ms.get)
    won = best if ms[best] < CELLS_MARGIN * t['knn_exact_ms'] else 'exact'
    assert cl.search_kind == {'cells': 'ivf', 'screen': 'screen', 'exact': 'flat'}[won] and t['knn_choice'] == won, t
    cl = MemoryBank(0.3, reweight_b=0, knn_index='ivf').fit(x)  # the cells' answers, whichever was faster here
    r_cells = cl.score(normal)[0]
    with cl.exact_search(): r_exact = cl.score(normal)[0]
    assert (r_cells >= r_exact - 1e-3).all() and ((r_cells - r_exact) > 1e-3 * r_exact).float().mean() < 0.005  # equal to exact within the recall target
    forced = MemoryBank(0.5, reweight_b=0, knn_index='ivf').fit(uniform)
    assert forced.search_kind == 'ivf' and forced.search_timings['knn_choice'] == 'cells'  # asked for cells: kept (and searched exactly, above half the cells)

@pytest.mark.parametrize('data', ['uniform', 'clumped'])
def test_screen_search_against_brute_force(data):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5003, 40, generator=g) if data == 'uniform' else clustered(5003, 40, k=60, seed=7)  # 5,003: the last group filled up
    q = torch.randn(900, 40, generator=g) if data == 'uniform' else clustered(900, 40, k=60, seed=8)
    brute = torch.cdist(q.double(), x.double()).topk(5, largest=False)
    every = NearestNeighbours(x, kind='screen', candidates=10**6)  # every group re-ranked: the exact answer in float32
    d, i = every.search(q, 5)
    assert torch.equal(i, brute.indices) and torch.allclose(d.double(), brute.values, atol=1e-4)
    one = NearestNeighbours(x, kind='screen', candidates=1)
    assert (one.search(q, 1)[1][:, 0] == brute.indices[:, 0]).float().mean() < 1  # bfloat16 alone swaps near ties: the re-ranking has work to do
    nn = NearestNeighbours(x, kind='screen'); r, got = tune_probe(nn, q[:400], recall=0.999)
    assert got >= 0.999 and nn.candidates == r and r < nn.groups
    d, i = nn.search(q[400:], 5)
    assert (i[:, 0] == brute.indices[400:, 0]).float().mean() >= 0.995  # fresh queries: calibration holds
    found = i[:, 0] == brute.indices[400:, 0]
    assert torch.allclose(d[found, 0].double(), brute.values[400:][found, 0], atol=1e-4)  # and its distances are float32's
    assert (d[:, 0].double() >= brute.values[400:, 0] - 1e-4).all()  # a miss is a farther vector, never a nearer one
    assert i.max() < len(x) and all(len(set(row)) == 5 for row in i.tolist())  # the fill-up copies of the last row never come back

def test_screen_is_refused_with_faiss_by_the_search_the_bank_and_the_config():
    from tocoad.core import TocoadError
    with pytest.raises(TocoadError, match="use knn_backend='torch'"): NearestNeighbours(torch.randn(100, 8), 'faiss', kind='screen')
    with pytest.raises(TocoadError, match="knn_backend='torch'"): MemoryBank(1.0, knn_index='screen', knn_backend='faiss').index_bank(torch.randn(100, 8), torch.randn(10, 8))
    from tocoad.core import preset
    with pytest.raises(TocoadError, match="knn_index='screen' is not allowed"): preset('tiny', knn_index='screen', knn_backend='faiss')  # at the config, before any work

def test_screen_with_more_neighbours_than_real_rows_in_its_groups_falls_back_to_exact():
    v = torch.randn(9, 6, generator=torch.Generator().manual_seed(0)); v[8] += 10  # the last row alone in a group of 8 (7 fill-up copies)
    d, i = NearestNeighbours(v, kind='screen', candidates=1).search(v[8:9] + 0.01, 3)
    flat = NearestNeighbours(v).search(v[8:9] + 0.01, 3)
    assert torch.equal(i, flat[1]) and torch.isfinite(d).all()  # no copy, no index past the bank
    w = torch.randn(4097, 16, generator=torch.Generator().manual_seed(1)); w[-1] += 20
    d, i = NearestNeighbours(w, kind='screen', candidates=2).search(w[-1:], 10)
    assert torch.equal(i, NearestNeighbours(w).search(w[-1:], 10)[1]) and i.max() < len(w)
    assert NearestNeighbours(v[:3], kind='screen').search(v[:2], 5)[1].shape == (2, 3)  # k above the bank's size: the bank's size, as exact

def test_a_screen_that_cannot_meet_the_recall_target_is_left_out_or_warned_about():
    g = torch.Generator().manual_seed(2)
    far = torch.cat([torch.randn(3000, 16, generator=g) * 0.01 + 1000 * torch.randn(1, 16, generator=g) for _ in range(2)])  # tiny distances, huge coordinates
    auto = MemoryBank(0.8, reweight_b=0).fit(far); t = auto.search_timings  # 4,800 vectors: 'auto' times its searches
    assert t['knn_choice'] != 'screen' and auto.search_kind != 'screen', t  # bfloat16 cannot order these neighbours
    assert t['knn_screen_groups'].startswith(f'{SCREEN_MAX_GROUPS}/') or t['knn_screen_groups'].endswith('not calibrated'), t  # calibration hit its limit (or the screen was slower here anyway)
    with pytest.warns(UserWarning, match="knn_index='screen' finds the exact neighbour of only"):
        forced = MemoryBank(0.5, reweight_b=0, knn_index='screen').fit(far)
    assert forced.candidates == SCREEN_MAX_GROUPS and forced.probe_recall < 0.999

def test_auto_with_faiss_tries_only_the_cells():
    x = clustered(12000, 24, k=80)
    t = MemoryBank(0.5, reweight_b=0, knn_backend='faiss').fit(x).search_timings
    assert 'knn_screen_ms' not in t and 'knn_cells_ms' in t
