"""nbsim's counter-based generator: every value a function of (seed, element), the right
distributions (uniform, normal through every part of the ziggurat, Poisson on both sides of
the switch between inversion and rejection), and the same values on every device."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nbsim.physics.counter_random import CounterRandom, key_of

N = 1_000_000


def chi_square(counts: np.ndarray, expected: np.ndarray) -> float:
    """Pearson's statistic per degree of freedom (about 1 for a right distribution)."""
    keep = expected > 20  # the sparse bins pooled into one
    observed, wanted = counts[keep], expected[keep]
    if not keep.all():
        observed, wanted = np.append(observed, counts[~keep].sum()), np.append(wanted, expected[~keep].sum())
    return float(((observed - wanted) ** 2 / wanted).sum() / (len(wanted) - 1))


def test_a_value_depends_on_the_seed_and_its_element_only():
    gen = CounterRandom(5)
    whole = gen.normal((1000,))
    assert torch.equal(gen.normal((600,), offset=400), whole[400:])  # a chunk alone is the same
    assert torch.equal(CounterRandom(5).normal((10, 100)).reshape(-1), whole)  # the shape does not matter
    assert not torch.equal(CounterRandom(6).normal((1000,)), whole)
    means = torch.linspace(0.0, 40.0, 1000, dtype=torch.float64)
    counts = gen.poisson(means)
    assert torch.equal(gen.poisson(means[250:], offset=250), counts[250:])
    # neighbouring seeds give unrelated keys
    assert bin(key_of(1) ^ key_of(2)).count("1") > 16


def test_float32_values_are_the_float64_values_rounded():
    gen = CounterRandom(3)
    assert torch.equal(gen.normal((5000,), dtype=torch.float32), gen.normal((5000,)).to(torch.float32))
    assert torch.equal(gen.uniform((5000,), dtype=torch.float32), gen.uniform((5000,)).to(torch.float32))


def test_uniform_deviates_are_uniform_in_the_open_interval():
    u = CounterRandom(11).uniform((N,)).numpy()
    assert 0.0 < u.min() and u.max() < 1.0
    counts = np.histogram(u, bins=100, range=(0.0, 1.0))[0]
    assert chi_square(counts, np.full(100, N / 100)) < 1.5
    # successive elements are not correlated
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5.0 / math.sqrt(N)


def test_normal_deviates_follow_the_normal_distribution_into_the_tail():
    g = CounterRandom(12).normal((4 * N,)).numpy()
    assert abs(g.mean()) < 5.0 / math.sqrt(g.size) and abs(g.std() - 1.0) < 5.0 / math.sqrt(2 * g.size)
    edges = np.concatenate(([-np.inf], np.linspace(-4.5, 4.5, 91), [np.inf]))
    cdf = np.array([0.5 * (1.0 + math.erf(e / math.sqrt(2.0))) if np.isfinite(e) else float(e > 0) for e in edges])
    counts = np.histogram(g, bins=edges)[0]
    assert chi_square(counts, np.diff(cdf) * g.size) < 1.5
    # beyond the ziggurat's base (r = 3.654): the tail's own sampler
    tail = 1.0 - 0.5 * (1.0 + math.erf(3.6541528853610088 / math.sqrt(2.0)))
    beyond = np.count_nonzero(np.abs(g) > 3.6541528853610088)
    assert abs(beyond - 2 * tail * g.size) < 5 * math.sqrt(2 * tail * g.size)
    assert np.abs(g).max() > 4.5


@pytest.mark.parametrize("mean", [0.05, 1.0, 4.5, 9.99, 10.0, 10.01, 37.0, 1234.5, 2e6])
def test_poisson_deviates_have_the_poisson_distribution(mean):
    counts = CounterRandom(13).poisson(torch.full((N,), mean, dtype=torch.float64)).numpy()
    assert np.array_equal(counts, np.round(counts)) and counts.min() >= 0
    standard_error = math.sqrt(mean / N)
    assert abs(counts.mean() - mean) < 5 * standard_error
    assert counts.var() == pytest.approx(mean, rel=5 * math.sqrt(2.0 / N) + 5 / math.sqrt(N * mean))
    if mean < 100:  # the whole distribution against the probabilities, k by k
        k = np.arange(int(mean + 12 * math.sqrt(mean) + 12))
        pmf = np.exp(k * math.log(mean) - mean - np.array([math.lgamma(i + 1.0) for i in k]))
        observed = np.bincount(counts.astype(np.int64), minlength=k.size)[:k.size]
        assert chi_square(observed, pmf * N) < 1.5


def test_poisson_of_a_mean_that_is_not_positive_is_zero():
    means = torch.tensor([0.0, -3.0, float("nan"), -float("inf")], dtype=torch.float32)
    counts = CounterRandom(1).poisson(means)
    assert counts.dtype == torch.float32 and torch.equal(counts, torch.zeros(4))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
def test_every_device_gets_the_same_values():
    gen = CounterRandom(8)
    assert torch.equal(gen.normal((1000,), device="cuda").cpu(), gen.normal((1000,)))
    means = torch.linspace(0.0, 30.0, 1000)
    assert torch.equal(gen.poisson(means.cuda()).cpu(), gen.poisson(means))


def test_the_parallel_noise_image_is_reproducible_and_the_same_in_any_roi(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from nbsim_cli.app import cli

    monkeypatch.chdir(tmp_path)
    base = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-lambda", "6.2", "-N", "5",
            "-distance", "100", "-pixel", "0.1", "-detpixels", "64", "-seed", "7", "-nopgm", "-noprogress",
            "--noise-rng", "parallel", "-adc", "0"]

    def noise(name, *extra):
        result = CliRunner().invoke(cli, ["run", *base, *extra, "-noisefile", f"{name}.img",
                                          "-floatfile", f"{name}.bin"], catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        pixels = np.fromfile(f"{name}.img", dtype=np.uint16)[-64 * 64:].reshape(64, 64)
        return pixels, np.fromfile(f"{name}.bin", dtype=np.float32).reshape(64, 64)

    whole, photons = noise("whole")
    assert np.array_equal(noise("again")[0], whole)
    part, _ = noise("roi", "-roi", "10", "40", "20", "50")
    assert np.array_equal(part[20:51, 10:41], whole[20:51, 10:41]) and not part[:20].any()
    other = CliRunner().invoke(cli, ["run", *base, "-seed", "8", "-noisefile", "other.img"], catch_exceptions=False)
    assert other.exit_code == 0 and not np.array_equal(np.fromfile("other.img", dtype=np.uint16)[-64 * 64:], whole.ravel())
    # Poisson counts of the float image: unbiased, with its variance
    residual = whole.astype(np.float64) - photons
    assert abs(residual.sum()) < 5 * math.sqrt(photons.sum())
    assert float((residual ** 2).sum()) == pytest.approx(float(photons.sum()), rel=0.1)
