"""DEV experiment (RESULTS section 6): does giving the LLM each word of the De-Diffusion text once help it?

    OMP_NUM_THREADS=1 python benchmarks/llm_context_dev.py raw [ENCODER]
    OMP_NUM_THREADS=1 python benchmarks/llm_context_dev.py compact [ENCODER]

Queries from scene stream 1 (dev), few-shot examples from stream 2; 200 questions at 0 and 3 shots and
50 5-way 1-shot episodes with the shipped SmolLM2; ``compact`` keeps each word's first occurrence.
Writes benchmarks/llm_context_dev/{raw,compact}.json. Not adopted (no clear gain); kept as the record.
"""
from __future__ import annotations

import json
import pathlib
import sys

import torch

from dediffusion.apps.llm import default_llm
from dediffusion.apps.vqa import VQAEvalConfig, run_eval
from dediffusion.data.world.batches import images_tensor
from dediffusion.model.autoencoder import load_model

OUT = pathlib.Path(__file__).parent / "llm_context_dev"


def compact(text: str) -> str:
    """Each word once, in order of first appearance."""
    return " ".join(dict.fromkeys(text.split()))


def main() -> None:
    torch.set_num_threads(1)
    form = sys.argv[1]
    model = load_model(sys.argv[2] if len(sys.argv) > 2 else None)

    def dd_texts(scenes):
        with torch.inference_mode():
            texts = model.texts(images_tensor(scenes, model.decoder.resolution))
        return [compact(t) for t in texts] if form == "compact" else texts

    cfg = VQAEvalConfig(seed=1, shot_seed=2, n_questions=200, shots=(0, 3), sources=("dediffusion",), n_episodes=50)
    result = run_eval(cfg, default_llm(), dd_texts, progress=False)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{form}.json").write_text(json.dumps(result, indent=1))
    print(form, {k: v["accuracy"] for k, v in result["vqa"]["dediffusion"].items()}, result["classification"]["dediffusion"])


if __name__ == "__main__":
    main()
