"""Seen before RULE.md (dev stream 1, object level, no LLM): the reader's objects by forward selection.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_select/explore.py 0 150   # and 150 300 (explore.log)
    OMP_NUM_THREADS=1 python benchmarks/dev_reader_select/explore.py 0 150 allshapes   # and 150 300

Standalone: it carries its own copy of the candidate and forward-selection code, which left the package when
the rule failed (commit 0af7a4d has it as ``--select greedy``). Rows: current reader, forward selection from the
fused text, and from the fused and argmax texts (named shapes kept); with ``allshapes`` only the last, every
candidate once per shape (the variant the rule tested).
"""
import torch, collections, sys, time
from dataclasses import replace
from dediffusion.apps import reading as R
from dediffusion.data.world.batches import images_tensor
from dediffusion.data.world.scenes import sample_scene, COLOURS, SHAPES, CELLS, SIZES, BACKGROUNDS
from dediffusion.model.autoencoder import load_model
from dediffusion.model.synthesis import decoder_pick
torch.set_num_threads(1)
model = load_model(None)
lo, hi = int(sys.argv[1]), int(sys.argv[2]); ALL = sys.argv[3:] == ["allshapes"]
scenes = [sample_scene(1, i) for i in range(lo, hi)]
images = images_tensor(scenes, 16)

def loose(words):
    found, bg = [], None
    for i, w in enumerate(words):
        after = words[i+1] if i+1 < len(words) else None
        if w in BACKGROUNDS and after == "background":
            bg = bg or w
        elif w in COLOURS:
            shape = after if after in SHAPES else None
            j = i + 2 if shape else i + 1
            size = words[i-1] if i and words[i-1] in SIZES else None
            where = " ".join(words[j+2:j+4]) if words[j:j+2] == ["at", "the"] else None
            found.append(R.Mention(w, shape, size, where if where in CELLS else None))
    return found, bg

def candidates(texts):
    out, bg = [], None
    for t in texts:
        f, b = loose(t.split())
        bg = bg or b
        for m in f:
            for s in (SHAPES if ALL else ([m.shape] if m.shape else SHAPES)):
                c = replace(m, shape=s)
                if c not in out: out.append(c)
    return out, bg

def greedy(image, cands, bg, maxn=4):
    cur = []
    while len(cur) < maxn:
        rest = [c for c in cands if c not in cur]
        if not rest: break
        opts = ([R.caption(cur, bg)] if cur else []) + [R.caption(cur + [c], bg) for c in rest]
        k = decoder_pick(model.decoder, image[None], [opts])[0]
        if cur and k == 0: break
        cur.append(rest[k - (1 if cur else 0)])
    return cur, bg

def score(scenes, reads):
    c = collections.Counter()
    for sc, (objs, _) in zip(scenes, reads):
        true = collections.Counter((o.colour, o.shape) for o in sc.objects)
        got = collections.Counter((o.colour, o.shape) for o in objs)
        c["count_right"] += len(objs) == len(sc.objects)
        c["tp"] += sum((true & got).values()); c["true"] += sum(true.values()); c["got"] += sum(got.values())
        c["col_tp"] += sum((collections.Counter(o.colour for o in sc.objects) & collections.Counter(o.colour for o in objs)).values())
    n = len(scenes)
    byn = {m: round(sum(len(o) == m for (o, _), s in zip(reads, scenes) if len(s.objects) == m) / max(1, sum(len(s.objects) == m for s in scenes)), 2) for m in (1, 2, 3)}
    return {"count_right": round(c["count_right"]/n, 3), "by_n": byn, "recall": round(c["tp"]/c["true"], 3), "precision": round(c["tp"]/max(c["got"],1), 3),
            "colour_recall": round(c["col_tp"]/c["true"], 3)}

res = collections.defaultdict(list)
t0 = time.time()
with torch.inference_mode():
  for s in range(0, len(scenes), 50):
    im = images[s:s+50]
    if ALL:
        fused = R.fused_texts(model, im, 0.2)
    else:
        fused, read = R.read_objects(model, im, 0.2)
        res["current"] += R.check_attribute(model.decoder, im, read, "shape")
    argm = R.fused_texts(model, im, 0.0)
    for i in range(len(im)):
        cands, bg = candidates([fused[i]])
        if not ALL:
            g = greedy(im[i], cands, bg)
            res["greedy_fused"].append((R.merged(g[0]), g[1]))
        cands2, _ = candidates([fused[i], argm[i]])
        g2 = greedy(im[i], cands2, bg)
        res["greedy_fused_argmax" + ("_allshapes" if ALL else "")].append((R.merged(g2[0]), g2[1]))
    print(s, time.time() - t0, flush=True)
for k, v in res.items():
    print(k, score(scenes, v))
