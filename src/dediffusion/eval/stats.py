"""Paired bootstrap intervals for evaluation metrics, and FD / KID recomputed from stored per-scene features.

A *metric function* takes ``(data, idx)``: per-scene data (an array, or a tuple
of arrays, first axis = scene) and ``idx`` (B, n) scene indices, one resample
per row; it returns (B,) metric values. :func:`paired_bootstrap` resamples
scenes with replacement and evaluates both sources on the *same* resampled
scenes, so the interval is that of the paired difference A - B.

The Frechet distance is torchmetrics' (``FrechetInceptionDistance.compute``,
float64) on features; KID is the unbiased MMD^2 with torchmetrics' polynomial
kernel ``(x.y / d + 1)^3`` over all n scenes (torchmetrics averages subsets;
with ``subset_size = n`` the two agree). A resample is a vector of counts per
scene, so means, covariances and kernel sums become weighted sums (no copies).

Intervals: accuracy and KID are unbiased, so the percentile interval is used.
FD is biased upwards by a term that grows as the sample shrinks, and a resample
holds only ~63% distinct scenes, so resampled FDs are shifted away from the
observed one; FD therefore uses the basic (reverse percentile) interval
``[2 d - q_hi, 2 d - q_lo]``, which removes that shift (it targets the
large-sample difference and need not contain the observed ``diff``).
"""
from __future__ import annotations

import numpy as np
import torch


def resample_indices(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) scene indices drawn with replacement, reproducible by ``seed``."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, n) resampled indices -> (B, n) how often each scene was drawn."""
    b = len(idx)
    return np.bincount((idx + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n).astype(np.float64)


def _length(data) -> int:
    return len(data[0]) if isinstance(data, tuple) else len(data)


def paired_bootstrap(metric_fn, a, b, n_boot: int = 1000, seed: int = 0, method: str = "percentile",
                     level: float = 0.95) -> dict:
    """Difference ``metric(a) - metric(b)`` on all scenes and its 95% interval over paired resamples.

    ``method``: "percentile" (unbiased metrics) or "basic" (biased ones such as FD; see the module doc).
    Returns ``{"diff", "lo", "hi", "n_boot", "method"}``; identical inputs give a zero-width interval at 0.
    """
    n = _length(a)
    if _length(b) != n:
        raise ValueError(f"paired bootstrap needs the same scenes for both: {n} vs {_length(b)}")
    if method not in ("percentile", "basic"):
        raise ValueError(f"unknown interval method {method!r} (percentile, basic)")
    every, idx = np.arange(n)[None], resample_indices(n, n_boot, seed)
    diff = float(np.asarray(metric_fn(a, every), np.float64)[0] - np.asarray(metric_fn(b, every), np.float64)[0])
    d = np.asarray(metric_fn(a, idx), np.float64) - np.asarray(metric_fn(b, idx), np.float64)
    lo, hi = (float(q) for q in np.nanquantile(d, [(1 - level) / 2, (1 + level) / 2]))
    if method == "basic":
        lo, hi = 2 * diff - hi, 2 * diff - lo
    return {"diff": diff, "lo": lo, "hi": hi, "n_boot": n_boot, "method": method}


def accuracy(data: tuple[np.ndarray, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Metric function: micro-averaged accuracy from per-scene ``(hits, checks)``."""
    hits, total = (np.asarray(x, np.float64) for x in data)
    w = counts(idx, len(hits))
    return (w @ hits) / (w @ total)


def frechet_from_features(x: torch.Tensor, y: torch.Tensor) -> float:
    """torchmetrics' Frechet distance between feature sets (n, d) and (m, d), in float64."""
    from torchmetrics.image.fid import _compute_fid

    x, y = x.double(), y.double()
    return float(_compute_fid(x.mean(0), torch.cov(x.T), y.mean(0), torch.cov(y.T)))


def kid_from_features(x: torch.Tensor, y: torch.Tensor, gamma: float | None = None) -> float:
    """Unbiased MMD^2 (polynomial kernel) over all of two equal-sized feature sets (torchmetrics' KID at
    subset_size = n)."""
    return float(KidResampled(x, gamma)(y, np.arange(len(x))[None])[0])


def _poly(x: torch.Tensor, y: torch.Tensor, gamma: float | None) -> torch.Tensor:
    x, y = x.double(), y.double()
    return (x @ y.T * (gamma or 1 / x.shape[1]) + 1) ** 3  # torchmetrics.image.kid.poly_kernel (degree 3, coef 1)


def _pair_sum(w: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of k over pairs of draws of *different* scenes, and the number of such pairs: (B, n) counts -> (B,), (B,).

    With every scene drawn once this is torchmetrics' off-diagonal sum over n(n-1) pairs; copies of
    one scene are no pair (their self-similarity would bias the resampled MMD upwards).
    """
    sq = w.square()
    return ((w @ k) * w).sum(1) - sq @ torch.diagonal(k), w.sum(1).square() - sq.sum(1)


class _Resampled:
    """Base of the distance metric functions: the real features are fixed, their per-resample terms cached.

    A paired bootstrap evaluates A and B (and every guidance, with the same seed) on the same resamples,
    so the real side is computed once per ``idx`` (the last two are kept: all scenes, and the resamples).
    """

    def __init__(self, real: torch.Tensor, gamma: float | None = None):
        self.real, self.gamma = torch.as_tensor(real).double().cpu(), gamma
        n, d = self.real.shape
        self.chunk = max(1, min(32, 2**23 // (d * max(n, d))))  # resamples at a time: (chunk, d, n) stays ~64 MB
        self._cache: dict = {}

    def _real_terms(self, idx: np.ndarray):
        key = (idx.shape, hash(idx.tobytes()))
        if key not in self._cache:
            self._cache = {k: v for k, v in list(self._cache.items())[-1:]}
            self._cache[key] = self._compute_real(torch.from_numpy(counts(idx, len(self.real))))
        return self._cache[key]


class FrechetResampled(_Resampled):
    """Metric function: Frechet distance between the resampled real and fake features (data = fake (n, d)).

    One row (all scenes: the reported value) is computed in float64 and equals torchmetrics';
    resamples run in float32 (twice as fast; the error is far below any interval's width).
    """

    def _compute_real(self, w: torch.Tensor):
        x, w = self.real.to(_dtype(w)), w.to(_dtype(w))
        roots, means, traces = [], [], []
        for part in w.split(self.chunk):
            mean, cov = _weighted_moments(x, part)
            vals, vecs = torch.linalg.eigh(cov)
            roots.append(vecs @ torch.diag_embed(vals.clamp(min=0).sqrt()) @ vecs.mT)  # symmetric sqrt (B,d,d)
            means.append(mean)
            traces.append(torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1))
        return torch.cat(roots), torch.cat(means), torch.cat(traces)

    def __call__(self, fake, idx: np.ndarray) -> np.ndarray:
        root, mean_r, trace_r = self._real_terms(idx)
        w = torch.from_numpy(counts(idx, len(fake)))
        fake, w = torch.as_tensor(fake).cpu().to(_dtype(w)), w.to(_dtype(w))
        out = []
        for i, part in zip(range(0, len(w), self.chunk), w.split(self.chunk)):
            mean, cov = _weighted_moments(fake, part)
            r, rows = root[i : i + len(part)], slice(i, i + len(part))
            # eig(S_r S_f) = eig(R S_f R) with R = S_r^(1/2): symmetric, so eigvalsh
            c = torch.linalg.eigvalsh(r @ cov @ r).clamp(min=0).sqrt().sum(-1)
            a = (mean - mean_r[rows]).square().sum(-1)
            out.append(a + trace_r[rows] + torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1) - 2 * c)
        return torch.cat(out).double().numpy()


def _dtype(w: torch.Tensor) -> torch.dtype:
    return torch.float64 if len(w) == 1 else torch.float32


def _weighted_moments(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, d) and unbiased covariance (B, d, d) of x (n, d) with scene counts w (B, n)."""
    n = w.sum(1, keepdim=True)  # (B,1)
    centre = x.mean(0)
    xc = x - centre  # centred first, so float32 sums stay accurate
    mean = w @ xc / n  # (B,d)
    second = (xc.T[None] * w[:, None, :]) @ xc  # (B,d,d)
    cov = (second - n[:, :, None] * mean[:, :, None] * mean[:, None, :]) / (n[:, :, None] - 1)
    return mean + centre, cov


class KidResampled(_Resampled):
    """Metric function: unbiased MMD^2 between the resampled real and fake features (data = fake (n, d)).

    ``gamma``: the kernel scale (torchmetrics' default 1/d if None)."""

    def _compute_real(self, w: torch.Tensor):
        return _pair_sum(w, _poly(self.real, self.real, self.gamma))

    def __call__(self, fake, idx: np.ndarray) -> np.ndarray:
        (xx, pairs), fake = self._real_terms(idx), torch.as_tensor(fake).double().cpu()
        w = torch.from_numpy(counts(idx, len(fake)))
        yy, _ = _pair_sum(w, _poly(fake, fake, self.gamma))
        k_xy = _poly(self.real, fake, self.gamma)
        xy = ((w @ k_xy) * w).sum(1) / w.sum(1).square()  # every (real, fake) pair, as torchmetrics
        return ((xx + yy) / pairs - 2 * xy).numpy()  # NaN if a (tiny-n) resample drew one scene only


def chance_corrected(acc: float | None, empty: float | None, full: float | None) -> float | None:
    """Accuracy rescaled so the empty prompt scores 0 and the full caption 1 (None if undefined)."""
    if None in (acc, empty, full) or full - empty <= 0:
        return None
    return (acc - empty) / (full - empty)
