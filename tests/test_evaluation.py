"""tocoad.evaluation: bootstrap_auroc against a plain numpy + scikit-learn resampling loop and against Hanley–McNeil's
closed form, and the inputs it refuses (the lesson is nbs/09b_evaluation.ipynb)."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from tocoad.core import TocoadError
from tocoad.evaluation import auroc_rows, bootstrap_auroc, hanley_mcneil_se

def binormal(n0:int, n1:int, d:float, seed:int=0):
    "Labels and scores: n0 normal items from N(0, 1), then n1 anomalous ones from N(d, 1)."
    rng = np.random.default_rng(seed)
    return np.r_[np.zeros(n0, int), np.ones(n1, int)], np.r_[rng.normal(0, 1, n0), rng.normal(d, 1, n1)]

def loop(y, s, n_boot:int, seed:int, level:float=0.95):
    "The bootstrap as its docstring states it: one `rng.integers(0, n, n)` per resample, scikit-learn's AUROC, one-class resamples skipped."
    rng, vals = np.random.default_rng(seed), []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(y): vals.append(roc_auc_score(y[i], s[i]))
    lo, hi = np.quantile(vals, [(1 - level) / 2, (1 + level) / 2])
    return dict(auroc=roc_auc_score(y, s), lo=lo, hi=hi, se=np.std(vals, ddof=1), n_used=len(vals))

def mixed_resamples(n_boot:int, seed:int)->int:
    "How many of the `n_boot` resamples of 2 items that `seed` draws hold both of them."
    idx = np.random.default_rng(seed).integers(0, 2, (n_boot, 2))
    return sum(len(set(r)) == 2 for r in idx)

@pytest.mark.parametrize('n0,n1,n_boot,seed,level', [(20, 63, 400, 0, 0.95), (100, 200, 200, 3, 0.9), (9, 1, 300, 7, 0.8)])
def test_bootstrap_equals_a_numpy_sklearn_loop_with_the_same_seed(n0, n1, n_boot, seed, level):
    y, s = binormal(n0, n1, d=1.5, seed=seed)
    s = np.round(s, 1)  # ties: midranks and scikit-learn must still agree
    got, want = bootstrap_auroc(y, s, n_boot=n_boot, seed=seed, level=level), loop(y, s, n_boot=n_boot, seed=seed, level=level)
    assert got['n_used'] == want['n_used'] and got['level'] == level
    assert np.allclose([got[k] for k in ('auroc', 'lo', 'hi', 'se')], [want[k] for k in ('auroc', 'lo', 'hi', 'se')], rtol=0, atol=1e-12)
    if n1 == 1: assert got['n_used'] < n_boot  # one anomalous item in ten: resamples without it were skipped

def test_bootstrap_draws_in_chunks_without_changing_the_resamples():
    y, s = binormal(20_000, 30_000, d=0.5)  # 50,000 items: resamples are drawn 40 at a time
    got, want = bootstrap_auroc(y, s, n_boot=50, seed=1), loop(y, s, n_boot=50, seed=1)
    assert np.allclose([got[k] for k in ('lo', 'hi', 'se')], [want[k] for k in ('lo', 'hi', 'se')], rtol=0, atol=1e-12)

def test_a_different_seed_gives_a_different_interval():
    y, s = binormal(20, 63, d=2.0)
    assert bootstrap_auroc(y, s, seed=0)['lo'] != bootstrap_auroc(y, s, seed=1)['lo']

def test_bootstrap_se_is_within_25_percent_of_hanley_mcneil():
    y, s = binormal(100, 200, d=1.5)
    a = roc_auc_score(y, s); q1, q2 = a / (2 - a), 2 * a**2 / (1 + a)
    hm = np.sqrt((a * (1 - a) + (200 - 1) * (q1 - a**2) + (100 - 1) * (q2 - a**2)) / (200 * 100))  # written out again, independently
    assert hanley_mcneil_se(a, n_pos=200, n_neg=100) == pytest.approx(hm, rel=1e-12)
    assert bootstrap_auroc(y, s)['se'] == pytest.approx(hm, rel=0.25)

def test_hanley_mcneil_at_one_half_is_the_mann_whitney_null_variance():
    for n1, n0 in [(10, 10), (63, 20), (5, 40)]:
        assert hanley_mcneil_se(0.5, n_pos=n1, n_neg=n0) == pytest.approx(np.sqrt((n1 + n0 + 1) / (12 * n1 * n0)), rel=1e-12)

def test_perfect_separation_gives_a_degenerate_interval():
    y, s = binormal(20, 63, d=20.0)
    b = bootstrap_auroc(y, s)
    assert (b['auroc'], b['lo'], b['hi'], b['se']) == (1.0, 1.0, 1.0, 0.0)

@pytest.mark.parametrize('labels', [[0, 0, 0, 0], [1, 1, 1, 1], []])
def test_one_class_is_refused(labels):
    with pytest.raises(TocoadError, match='one class only'): bootstrap_auroc(labels, np.arange(len(labels), dtype=float))

def test_lengths_that_differ_are_refused():
    with pytest.raises(TocoadError, match='3 labels but 2 scores'): bootstrap_auroc([0, 1, 1], [0.1, 0.2])

@pytest.mark.parametrize('level', [0, 1, -0.5, 1.5, 95])
def test_a_level_outside_0_1_is_refused(level):
    with pytest.raises(TocoadError, match=f'level={level} must be in \\(0, 1\\)'): bootstrap_auroc([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], level=level)

def test_other_bad_inputs_name_the_fix():
    with pytest.raises(TocoadError, match='0 \\(normal\\) or 1'): bootstrap_auroc([0, 2, 1], [0.1, 0.2, 0.3])
    with pytest.raises(TocoadError, match='NaN or infinite'): bootstrap_auroc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(TocoadError, match='n_boot=1'): bootstrap_auroc([0, 1], [0.1, 0.2], n_boot=1)
    seed = next(k for k in range(100) if mixed_resamples(n_boot=3, seed=k) < 2)  # a seed whose resamples of two items rarely hold both
    with pytest.raises(TocoadError, match='fewer than 2'): bootstrap_auroc([0, 1], [0.1, 0.2], n_boot=3, seed=seed)
    with pytest.raises(TocoadError, match='one label per score'): auroc_rows([0, 1, 1], np.zeros((2, 4)))
    with pytest.raises(TocoadError, match='hanley_mcneil_se'): hanley_mcneil_se(1.2, n_pos=3, n_neg=3)

