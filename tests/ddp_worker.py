"""One process of the 2-process DDP test: ``torchrun --nproc-per-node 2 tests/ddp_worker.py DECODER OUT``.

Trains the tiny encoder through ``train_encoder`` (which joins the gloo group torchrun describes)
and writes this rank's trainable parameters to ``OUT/rank{RANK}.safetensors``.
"""
import os
import sys

import torch

torch.set_num_threads(1)

from dediffusion.checkpoint import save_tensors
from dediffusion.train.fit_encoder import train_encoder
from tests.test_autoencoder import tiny_train_cfg  # noqa: E402

STEPS = 3

if __name__ == "__main__":
    decoder, out = sys.argv[1], sys.argv[2]
    model = train_encoder(tiny_train_cfg(steps=STEPS), out, decoder, progress=False)
    params = {k: p for k, p in model.named_parameters() if p.requires_grad}
    save_tensors(os.path.join(out, f"rank{os.environ['RANK']}.safetensors"), params)
