"""A fake model and lazy (key, load) items for the bulk-encoding tests: no checkpoint, no image files."""
import torch

from dediffusion.data.images import ImageInputError


class FakeModel:
    """texts(images) -> one word per image from its mean value; records batch sizes."""

    def __init__(self):
        self.batches = []

    def texts(self, images):
        self.batches.append(len(images))
        return [f"v{float(x.mean()):.3f}" for x in images]


def items(n, bad=(), log=None):
    """n items ``img{i}`` loading a constant image of value i/100; those in ``bad`` raise; ``log`` records loads."""
    for i in range(n):
        def load(i=i):
            if log is not None:
                log.append(i)
            if i in bad:
                raise ImageInputError(f"img{i}: broken")
            return torch.full((3, 4, 4), i / 100)
        yield f"img{i}", load
