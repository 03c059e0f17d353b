"""Helpers for the training tests: a training folder's saved state, compared tensor by tensor; the ``src`` folder
for running the CLI in a subprocess."""
import os

import torch

from dediffusion.train.loop import read_train_state

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def saved_state(folder, group="params"):
    """One group ("params", "optimizer", "ema") of a training folder's saved train state."""
    return read_train_state(folder)[1][group]


def same_tensors(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
