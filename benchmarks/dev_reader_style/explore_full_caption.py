"""Seen before RULE.md (dev, no reader): the full caption's content in two more layouts, as the LLM's context.

    OMP_NUM_THREADS=1 python benchmarks/dev_reader_style/explore_full_caption.py sentences   # or compact

Writes /tmp/fmt/full_<layout>.json (kept here as full_<layout>.json). The sentences layout is what
``dediffusion vqa-eval --sources full_sentences`` now asks with (``apps/vqa.py``); compact was not carried on.
"""
import json, sys, torch
from dediffusion.apps.llm import default_llm
from dediffusion.apps.vqa import VQAEvalConfig, full_sentences, run_eval
from dediffusion.data.world.scenes import CELLS
torch.set_num_threads(1)
NUM = {1: "one", 2: "two", 3: "three"}
def compact(s):
    n = len(s.objects)
    objs = "; ".join(f"{o.colour} {o.shape} ({o.size}, {CELLS[o.cell]})" for o in s.objects)
    return f"{NUM[n]} object{'s' if n > 1 else ''}: {objs}; {s.background} background"
fmt = {"sentences": full_sentences, "compact": compact}[sys.argv[1]]  # the same text as the run used
cfg = VQAEvalConfig(seed=1, shot_seed=2, n_questions=200, shots=(0, 3), sources=("dediffusion",), n_episodes=50)
out = run_eval(cfg, default_llm(), lambda scenes: [fmt(s) for s in scenes], progress=False)
json.dump(out, open(f"/tmp/fmt/full_{sys.argv[1]}.json", "w"), indent=1)
v = out["vqa"]["dediffusion"]
print(sys.argv[1], {k: (v[k]["accuracy"], {a: round(b, 2) for a, b in v[k]["by_kind"].items()}) for k in v}, out["classification"]["dediffusion"]["accuracy"], out["seconds"])
