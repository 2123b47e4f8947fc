"""hotspots.distributions against scipy.stats (the independent reference), over wide grids and at
the edges the pipeline meets; and the pipeline's modules no longer import scipy.stats."""
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from hotspots import distributions as d
from hotspots.detect.inference import TAIL_FLOOR, gpd_tail_p


def test_normal_tails_equal_scipy():
    z = np.linspace(-40, 40, 4001)
    assert np.array_equal(d.norm_sf(z), stats.norm.sf(z))
    q = np.concatenate([np.geomspace(1e-300, 0.5, 2000), np.linspace(0.5, 1.0, 501)])
    assert np.array_equal(d.norm_isf(q), stats.norm.isf(q))


def test_chi2_quantiles_equal_scipy():
    df = np.arange(1, 4001, dtype=float)
    for q in (0.025, 0.5, 0.975, 1e-9):
        assert np.array_equal(d.chi2_ppf(q, df), stats.chi2.ppf(q, df))


def test_poisson_equal_scipy_with_edges():
    rng = np.random.default_rng(5)
    mu = np.concatenate([rng.random(3000) * 200, [0.0, 1e-12]])
    k = np.concatenate([rng.integers(-3, 400, 3000).astype(float), [0.0, -1.0]])
    assert np.array_equal(d.poisson_sf(k, mu), stats.poisson.sf(k, mu))
    assert d.poisson_sf(2.7, 3.0) == stats.poisson.sf(2.7, 3.0)         # a fractional k is floored
    for m in (0.0, 1e-9, 0.3, 2.0, 17.5, 250.0, 4e4):
        for q in (0.5, 0.9, 0.999, 0.999999):
            assert d.poisson_ppf(q, m) == stats.poisson.ppf(q, m), (q, m)


def test_binomial_tails_match_scipy():
    rng = np.random.default_rng(6)
    n = rng.integers(1, 5000, 3000)
    p = rng.random(3000)
    k = np.floor(rng.random(3000) * (n + 1))
    ours = np.array([[d.binom_cdf(a, b, c), d.binom_sf(a - 1, b, c)] for a, b, c in zip(k, n, p)])
    ref = np.column_stack([stats.binom.cdf(k, n, p), stats.binom.sf(k - 1, n, p)])
    # The same incomplete beta; scipy.stats calls it through another boost policy (2.6e-15 apart).
    assert np.allclose(ours, ref, rtol=1e-12, atol=1e-15)
    for k_, n_, p_ in [(-1, 10, 0.3), (0, 10, 0.3), (10, 10, 0.3), (11, 10, 0.3), (3, 10, 0.0), (3, 10, 1.0),
                       (0, 1, 0.5), (2.5, 5, 0.4)]:
        assert d.binom_cdf(k_, n_, p_) == pytest.approx(stats.binom.cdf(k_, n_, p_), abs=1e-15)
        assert d.binom_sf(k_, n_, p_) == pytest.approx(stats.binom.sf(k_, n_, p_), abs=1e-15)


def test_beta_quantiles_equal_scipy():
    rng = np.random.default_rng(7)
    for _ in range(500):
        a, b, q = rng.integers(1, 5000), rng.integers(1, 50000), rng.random()
        assert d.beta_ppf(q, a, b) == stats.beta.ppf(q, a, b)


def test_genpareto_sf_equals_scipy():
    x = np.linspace(0, 30, 301)
    for c in (-0.5, -0.1, 0.0, 0.2, 1.5):
        assert np.allclose(d.genpareto_sf(x, c, 2.5), stats.genpareto.sf(x, c, loc=0, scale=2.5),
                           rtol=1e-13, atol=0)


@pytest.mark.parametrize("shape", [-0.6, -0.3, -0.1, 0.0, 0.15, 0.5, 0.8])
def test_genpareto_fit_is_the_maximum_likelihood(shape):
    """At least as likely as scipy's fit (Nelder-Mead from its own start), and the same to its
    tolerance, for 250 exceedances: the number gpd_tail_p fits."""
    rng = np.random.default_rng(int(100 * shape) + 1000)
    for _ in range(4):
        y = stats.genpareto.rvs(shape, scale=3.0, size=250, random_state=rng)
        c, s = d.genpareto_fit(y)
        c0, _, s0 = stats.genpareto.fit(y, floc=0)
        ll = stats.genpareto.logpdf(y, c, scale=s).sum()
        ll0 = stats.genpareto.logpdf(y, c0, scale=s0).sum()
        assert ll >= ll0 - 1e-9
        assert c == pytest.approx(c0, abs=2e-3) and s == pytest.approx(s0, rel=2e-3)


def test_genpareto_fit_of_exponential_and_ties():
    rng = np.random.default_rng(11)
    y = rng.exponential(2.0, 250)
    c, s = d.genpareto_fit(y)
    assert abs(c) < 0.15 and s == pytest.approx(2.0, rel=0.2)
    # Permutation sums of counts tie, and ties at the threshold make exceedances of 0, towards which the
    # likelihood grows without bound for shapes above 1: the fit stays at scipy's (a shape of -0.3 for
    # the council's sums that showed it, not 10).
    rng = np.random.default_rng(13)
    tied = np.concatenate([np.zeros(66), rng.choice([0.8, 1.6, 2.4, 3.2], 184, p=[0.55, 0.3, 0.1, 0.05])
                           + rng.normal(0, 0.01, 184).clip(0)])
    c, s = d.genpareto_fit(tied)
    c0, _, s0 = stats.genpareto.fit(tied, floc=0)
    assert -1 <= c <= 1 and c == pytest.approx(c0, abs=2e-3) and s == pytest.approx(s0, rel=2e-3)
    # The tail p stays between the floor and 1 / (draws + 1), falling with obs.
    sims = np.sort(np.repeat(np.arange(12.0), [4000, 2500, 1500, 900, 500, 300, 150, 80, 40, 20, 8, 2]))
    p = gpd_tail_p(sims, np.array([11.5, 12.0, 15.0, 30.0]))
    assert np.all((p >= TAIL_FLOOR) & (p <= 1 / (sims.size + 1))) and np.all(np.diff(p) <= 0)


def test_gpd_tail_p_against_scipy_fit():
    """The extrapolated tail p with scipy's fit and sf in place of ours: the same to 1 %."""
    rng = np.random.default_rng(12)
    sims = np.sort(rng.gamma(4.0, 1.0, 9999))
    obs = sims[-1] + np.array([0.1, 1.0, 3.0, 8.0, 40.0])
    ours = gpd_tail_p(sims, obs)
    u = sims[9999 - 250 - 1]
    c, _, s = stats.genpareto.fit(sims[-250:] - u, floc=0)
    ref = np.clip(250 / 9999 * stats.genpareto.sf(obs - u, c, scale=s), TAIL_FLOOR, 1 / 10000)
    assert np.allclose(ours, ref, rtol=0.01)
    assert np.all(np.diff(ours) <= 0) and ours[0] <= 1 / 10000 and ours[-1] == TAIL_FLOOR


def test_pipeline_modules_do_not_import_scipy_stats():
    """scipy.stats costs about 1.3 s to import: no module of a run may pull it in."""
    code = ("import sys, hotspots.pipeline, hotspots.cli, hotspots.profile, hotspots.detect.clusters, "
            "hotspots.detect.combine, hotspots.detect.spacetime, hotspots.detect.inference, "
            "hotspots.publish.map, hotspots.publish.briefing; "
            "print(sorted(m for m in sys.modules if m.startswith('scipy.stats')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
