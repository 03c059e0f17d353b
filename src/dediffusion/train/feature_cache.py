"""Frozen-backbone features computed once and read back: ``dediffusion train --cache-features DIR``.

With a frozen backbone (paper, Sec. 3) its output for an image never changes during training, yet the
loop recomputes it every time the image comes round again. Here each image's features (B, M, C) are
stored the first time, keyed by what the image is (``source.keys``: the world's scene seed and index, or
a file / shard key), and read back afterwards; the pooler, text head and decoder still run every step.

When it pays off: epochs over a fixed dataset (``--data``), or several runs over the same image stream
(seed sweeps, ablations, a resumed run). The embedded world draws fresh scenes every step, so a single
world run never sees an image twice and only pays the writing. The decoder still needs the pixels, so
images are loaded either way; only the backbone's forward pass is saved.

Layout of DIR: ``cache.json`` (which backbone, resolution and feature shape; another backbone's
features are refused) and ``features-*.safetensors`` shards of up to ``shard_bytes`` each, one tensor
per image named by its key, written atomically (a killed run loses only what was not yet written;
several processes write their own shards). Features are stored as computed (fp32), so a cached run
gives the loss curve of an uncached one; within a batch of mixed hits and misses the misses are
computed on a smaller batch, which can move them in the last bits (~1e-7).
"""
from __future__ import annotations
from safetensors import safe_open

import hashlib
import pathlib
import uuid

import torch

from dediffusion.checkpoint import read_json, save_tensors, write_json

MANIFEST = "cache.json"


def backbone_fingerprint(encoder) -> dict:
    """What the cached features depend on: the backbone's kind, weights, buffers and preprocessing."""
    h = hashlib.sha256()
    for name, t in sorted(encoder.backbone.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # 0-d too
    prep = getattr(encoder.backbone, "prep", None)  # hf: resize / crop / normalisation
    h.update(repr((type(encoder.backbone).__name__, prep, getattr(encoder.backbone, "input_size", None))).encode())
    return {"backbone": encoder.cfg.backbone.split("/")[-1], "sha256": h.hexdigest()}


class FeatureCache:
    """``features(keys, images, encoder)``: the backbone's output for ``images``, read where cached."""

    def __init__(self, folder, encoder, resolution: int, rank: int = 0, shard_bytes: int = 256 << 20):
        if not encoder.backbone_frozen:
            raise ValueError(f"--cache-features needs a frozen backbone; {encoder.cfg.backbone!r} is trained "
                             "with the encoder (use a pretrained backbone, e.g. attribute_cnn, efficientnet_lite0 "
                             "or hf:..., without --unfreeze-backbone)")
        self.folder = pathlib.Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rank, self.shard_bytes = rank, shard_bytes
        self.manifest = {"kind": "dediffusion-feature-cache", "resolution": resolution, **backbone_fingerprint(encoder)}
        self._check_manifest()
        self.index: dict[str, pathlib.Path] = {}  # key -> shard
        self._seen: set[str] = set()  # shard names already indexed
        self._mtime = -1
        self.pending: dict[str, torch.Tensor] = {}
        self.hits = self.misses = 0
        self._refresh()

    def _check_manifest(self) -> None:
        path = self.folder / MANIFEST
        if not path.is_file():
            write_json(path, self.manifest)
            return
        saved = read_json(path)
        for field in ("kind", "resolution", "sha256"):
            if saved.get(field) != self.manifest[field]:
                raise ValueError(f"{self.folder}: a feature cache of another backbone or image size "
                                 f"({field} {saved.get(field)!r}, this run: {self.manifest[field]!r}); "
                                 "give --cache-features another folder")

    def _refresh(self) -> None:
        """Index shards not seen yet (other processes write theirs beside ours); a no-op while the folder
        is unchanged (a shard is renamed into place, which updates the folder's mtime)."""
        mtime = self.folder.stat().st_mtime_ns
        if mtime == self._mtime:
            return
        self._mtime = mtime
        for shard in sorted(self.folder.glob("features-*.safetensors")):
            if shard.name in self._seen:
                continue
            with safe_open(str(shard), framework="pt") as f:
                self.index.update(dict.fromkeys(f.keys(), shard))
            self._seen.add(shard.name)

    def _read(self, keys: list[str]) -> dict[str, torch.Tensor]:
        out = {k: self.pending[k] for k in keys if k in self.pending}
        by_shard: dict[pathlib.Path, list[str]] = {}
        for k in keys:
            if k not in out:
                by_shard.setdefault(self.index[k], []).append(k)
        for shard, names in by_shard.items():
            with safe_open(str(shard), framework="pt") as f:
                out.update({k: f.get_tensor(k) for k in names})
        return out

    def _known(self, key: str | None) -> bool:
        return key is not None and (key in self.pending or key in self.index)

    def features(self, keys: list[str | None], images: torch.Tensor, encoder) -> torch.Tensor:
        """(B, M, C) for ``images`` (B,3,H,W); ``keys[i]`` names image i (None: not cacheable)."""
        if not all(self._known(k) for k in keys):
            self._refresh()
        miss = [i for i, k in enumerate(keys) if not self._known(k)]
        self.hits, self.misses = self.hits + len(keys) - len(miss), self.misses + len(miss)
        computed = encoder.backbone_features(images[miss]) if miss else None  # (m, M, C)
        found = self._read([k for k in keys if self._known(k)])
        where = {i: j for j, i in enumerate(miss)}  # batch position -> row of ``computed``
        rows: list[torch.Tensor] = []
        for i, k in enumerate(keys):
            if i in where:
                row = computed[where[i]]
                if k is not None:
                    self.pending[k] = row.detach().cpu().clone()
            else:
                row = found[k].to(images.device)
            rows.append(row)
        if sum(t.numel() * t.element_size() for t in self.pending.values()) >= self.shard_bytes:
            self.flush()
        return torch.stack(rows)

    def flush(self) -> None:
        """Write pending features as one new shard (atomically)."""
        if not self.pending:
            return
        shard = self.folder / f"features-r{self.rank}-{uuid.uuid4().hex[:12]}.safetensors"
        save_tensors(shard, self.pending)
        self.index.update(dict.fromkeys(self.pending, shard))
        self._seen.add(shard.name)
        self.pending = {}
