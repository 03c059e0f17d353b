"""Seen before RULE.md (dev stream 1, scenes 300-599, no LLM): the decoder checks more of the reader's attributes.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_cells/explore.py 300 450   # and 450 600 (explore.log)

The reader today lets the frozen decoder pick each kept object's shape (``reading.check_shapes``); its cell, size
and colour are whatever the fused text says (the cell is often missing). Here the same pick, one attribute of one
object at a time, over the world's cells / sizes / colours, in a few orders. Scored as an oracle reader would
answer the VQA questions from the objects kept (no LLM): a position question is answerable if exactly one kept
object has the asked colour and shape and its cell is right; colour / shape questions likewise by shape / colour.
"""
import collections
import sys
import time
from dataclasses import replace

import torch

from dediffusion.apps import reading as R
from dediffusion.apps.questions import KINDS, question_for
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import CELLS, COLOURS, SHAPES, SIZES, sample_scene
from dediffusion.model.autoencoder import load_model
from dediffusion.model.synthesis import decoder_pick

torch.set_num_threads(1)
VALUES = {"shape": SHAPES, "cell": CELLS, "size": SIZES, "colour": tuple(COLOURS)}
VARIANTS = {"current": ("shape",), "shape_cell": ("shape", "cell"), "cell_shape": ("cell", "shape"),
            "cell_shape_colour": ("cell", "shape", "colour"), "cell_shape_cell": ("cell", "shape", "cell")}


def check(decoder, images, read, attr):
    """Each object's ``attr`` picked by the decoder among VALUES[attr], objects in turn (as check_shapes)."""
    read = [(list(o), b) for o, b in read]
    for i in range(max((len(o) for o, _ in read), default=0)):
        todo = [j for j, (o, _) in enumerate(read) if len(o) > i]
        options = [[replace(read[j][0][i], **{attr: v}) for v in VALUES[attr]] for j in todo]
        texts = [[R.caption(read[j][0][:i] + [m] + read[j][0][i + 1:], read[j][1]) for m in ms]
                 for j, ms in zip(todo, options)]
        for j, ms, k in zip(todo, options, decoder_pick(decoder, images[todo], texts)):
            read[j][0][i] = ms[k]
    return [(R.merged(o), b) for o, b in read]


def answers(objs, bg, q):
    """What an oracle reader answers ``q`` with from the kept objects (None: cannot tell)."""
    if q.kind == "background":
        return bg
    if q.kind == "count":
        return str(len(objs))
    words = q.question.rstrip("?").split()
    if q.kind == "colour":
        hit = [o for o in objs if o.shape == words[-1]]
        return hit[0].colour if len(hit) == 1 else None
    if q.kind == "shape":
        hit = [o for o in objs if o.colour == words[-2]]
        return hit[0].shape if len(hit) == 1 else None
    hit = [o for o in objs if (o.colour, o.shape) == (words[-2], words[-1])]
    return hit[0].cell if len(hit) == 1 else None


def score(scenes, reads):
    right, asked = collections.Counter(), collections.Counter()
    for sc, (objs, bg) in zip(scenes, reads):
        for kind in KINDS:
            q = question_for(sc, kind)
            if q is not None:
                asked[kind] += 1
                right[kind] += answers(objs, bg, q) == q.answer
    out = {k: round(right[k] / asked[k], 3) for k in KINDS}
    out["mean"] = round(sum(out.values()) / len(KINDS), 3)
    return out


def main():
    lo, hi = int(sys.argv[1]), int(sys.argv[2])
    model = load_model(None)
    scenes = [sample_scene(1, i) for i in range(lo, hi)]
    images = images_tensor(scenes, 16)
    res, t0 = collections.defaultdict(list), time.time()
    with torch.inference_mode():
        for s in range(0, len(scenes), 50):
            im = images[s:s + 50]
            _, read = R.read_objects(model, im, 0.2)
            res["no_check"] += [(R.merged(o), b) for o, b in read]
            done = {(): read}  # chains that share a prefix share its checks
            for name, attrs in VARIANTS.items():
                for n in range(1, len(attrs) + 1):
                    if attrs[:n] not in done:
                        done[attrs[:n]] = check(model.decoder, im, done[attrs[:n - 1]], attrs[n - 1])
                res[name] += done[attrs]
            print(s, round(time.time() - t0), flush=True)
    for k, v in res.items():
        print(k, score(scenes, v), flush=True)


if __name__ == "__main__":
    main()
