"""``dediffusion vqa-eval``: LLM accuracy on embedded-world questions, by context source.

The paper's Table 2 question, in miniature: how well does a frozen LLM answer
questions about an image from (a) its De-Diffusion text, (b) a human-like caption,
(c) the full caption, (d) no context at all (the paper's blank-image control, 43.4
on VQAv2), (e) the human-like and full captions' content in the reader's sentences layout
(``human_sentences``, ``full_sentences``: what layout alone is worth), at 0 and k shots; and
open-ended few-shot classification with task induction (Table 3, 5-way 1-shot). Query scenes
come from stream ``seed``, few-shot examples from stream ``shot_seed``; neither may be the
training seed (0). Questions are
asked exactly as ``ask`` asks them (``answer.py``): 0-shot through the LLM's chat template,
k-shot with the paper's completion prompt.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from functools import partial
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from dediffusion.data.world.batches import scenes as scene_range
from dediffusion.data.world.scenes import CELLS, COLOURS, SHAPES, Scene, full_caption, human_caption, sample_scene
from dediffusion.apps.answer import MAX_TOKENS, answers, completions
from dediffusion.apps.llm_prompts import Example, classification_prompt, first_line
from dediffusion.apps.questions import CANDIDATES, KINDS, Question, is_correct, question_stream
from dediffusion.apps.reading import Mention, sentences

SOURCES = ("dediffusion", "human_caption", "full_caption", "no_context", "human_sentences", "full_sentences")
CLASSES = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)  # single-object scenes: colour + shape


@dataclass(frozen=True)
class VQAEvalConfig:
    seed: int = 1  # query scenes (held out: training used seed 0)
    shot_seed: int = 2  # few-shot examples, a different held-out stream
    n_questions: int = 200
    shots: tuple[int, ...] = (0, 3)
    sources: tuple[str, ...] = SOURCES
    n_episodes: int = 50  # few-shot classification episodes per source
    ways: int = 5
    max_tokens: int = MAX_TOKENS  # as ``ask``: 0-shot answers come as sentences, cut to a phrase after
    batch_size: int = 8
    train_seed: int = 0
    fusion: float = 0.0  # head.lm_fusion of the De-Diffusion contexts (apps/reading.py), recorded
    shape_decoder: str = ""  # the decoder that checked the reader's shapes ("": the encoder's own), recorded
    layout: str = ""  # how the reader wrote the De-Diffusion contexts (apps/reading.py LAYOUTS), recorded


TextsFn = Callable[[list[Scene]], list[str]]  # scenes -> De-Diffusion texts of their rendered images


def human_sentences(scene: Scene) -> str:
    """The human-like caption's content (colour and shape of each object) in the reader's sentences layout."""
    return sentences([Mention(o.colour, o.shape) for o in scene.objects], None)


def full_sentences(scene: Scene) -> str:
    """The full caption's content in the reader's sentences layout."""
    return sentences([Mention(o.colour, o.shape, o.size, CELLS[o.cell]) for o in scene.objects], scene.background)


CAPTIONS = {"human_caption": human_caption, "full_caption": full_caption, "no_context": lambda scene: "",
            "human_sentences": human_sentences, "full_sentences": full_sentences}


def _contexts(source: str, scenes: list[Scene], dd_texts: TextsFn) -> list[str]:
    if source == "dediffusion":
        return dd_texts(scenes)
    if source not in CAPTIONS:
        raise ValueError(f"unknown context source {source!r} (sources: {', '.join(SOURCES)})")
    return [CAPTIONS[source](s) for s in scenes]


def _batched(fn, items: list, cfg: VQAEvalConfig, desc: str, progress: bool) -> list[str]:
    """``fn(llm inputs, max_tokens, batch_size)`` over ``items``, ``cfg.batch_size`` at a time, with a bar."""
    out = []
    for i in tqdm(range(0, len(items), cfg.batch_size), desc=desc, disable=not progress, leave=False):
        out += fn(items[i : i + cfg.batch_size], cfg.max_tokens, cfg.batch_size)
    return out


def _pick_shots(pool: list[tuple[int, Question]], kind: str, k: int, rng: np.random.Generator) -> list[int]:
    """k pool entries of the query's kind (a simple stand-in for PICa-style example selection)."""
    same = [j for j, (_, q) in enumerate(pool) if q.kind == kind]
    return [same[i] for i in rng.choice(len(same), size=k, replace=False)] if k else []


def eval_vqa(cfg: VQAEvalConfig, llm, dd_texts: TextsFn, progress: bool = True) -> dict:
    """Accuracy per source and shot count, overall and by question kind."""
    queries = scene_range(cfg.seed, 0, cfg.n_questions)
    stream = question_stream(queries, cfg.seed)
    pool_scenes = scene_range(cfg.shot_seed, 0, 20 * len(KINDS))  # few-shot examples are drawn from these
    pool = question_stream(pool_scenes, cfg.shot_seed)
    result: dict = {}
    examples: list[dict] = []
    for source in cfg.sources:
        ctx = _contexts(source, queries, dd_texts)
        pool_ctx = _contexts(source, pool_scenes, dd_texts)
        result[source] = {}
        for k in cfg.shots:
            asks = []
            for n, (i, q) in enumerate(stream):
                rng = np.random.default_rng([cfg.seed, n, 11])
                shots = [Example(pool_ctx[pool[j][0]], pool[j][1].question, pool[j][1].answer)
                         for j in _pick_shots(pool, q.kind, k, rng)]
                asks.append((ctx[i], q.question, shots))
            preds = _batched(partial(answers, llm), asks, cfg, f"{source} {k}-shot", progress)
            hits = [is_correct(p, q.answer, CANDIDATES[q.kind]) for p, (_, q) in zip(preds, stream)]
            by_kind = {kind: [h for h, (_, q) in zip(hits, stream) if q.kind == kind] for kind in KINDS}
            result[source][str(k)] = {
                "accuracy": float(np.mean(hits)),
                "by_kind": {kind: float(np.mean(v)) if v else None for kind, v in by_kind.items()},
                "n": len(hits),
                "hits": [int(h) for h in hits],  # per question, in order: paired comparisons between runs
            }
            examples += [{"source": source, "shots": k, "question": q.question, "answer": q.answer,
                          "context": ctx[i], "prediction": p} for (i, q), p in list(zip(stream, preds))[:3]]
    return {"vqa": result, "vqa_examples": examples,
            "question_kinds": {kind: sum(q.kind == kind for _, q in stream) for kind in KINDS}}


def _single_object_scenes(seed: int, need: int) -> list[Scene]:
    """The first ``need`` scenes of stream ``seed`` that hold one object."""
    single = (s for s in map(partial(sample_scene, seed), itertools.count()) if len(s.objects) == 1)
    return list(itertools.islice(single, need))


def _label(scene: Scene) -> str:
    o = scene.objects[0]
    return f"{o.colour} {o.shape}"


def _draw(pool: list[Scene], label: str, rng: np.random.Generator) -> Scene:
    matches = [s for s in pool if _label(s) == label]
    return matches[int(rng.integers(len(matches)))]


def eval_classification(cfg: VQAEvalConfig, llm, dd_texts: TextsFn, progress: bool = True) -> dict:
    """Open-ended ``ways``-way 1-shot classification of single-object scenes by "colour shape", with
    task induction; support scenes from ``shot_seed``, queries from ``seed``."""
    support_pool = _single_object_scenes(cfg.shot_seed, 200)
    query_pool = _single_object_scenes(cfg.seed, 200)
    episodes = []
    for e in range(cfg.n_episodes):
        rng = np.random.default_rng([cfg.seed, e, 13])
        classes = [CLASSES[i] for i in rng.choice(len(CLASSES), size=cfg.ways, replace=False)]
        support = [_draw(support_pool, c, rng) for c in classes]
        target = classes[int(rng.integers(cfg.ways))]
        query = _draw(query_pool, target, rng)
        episodes.append((support, query, target, classes))
    result = {}
    for source in cfg.sources:
        prompts = []
        for support, query, _, _ in episodes:
            texts = _contexts(source, support + [query], dd_texts)
            prompts.append(classification_prompt(texts[-1], list(zip(texts[:-1], map(_label, support)))))
        replies = _batched(partial(completions, llm), prompts, cfg, f"classify {source}", progress)
        preds = [first_line(t) for t in replies]
        hits = [is_correct(p, t, tuple(c)) for p, (_, _, t, c) in zip(preds, episodes)]
        result[source] = {"accuracy": float(np.mean(hits)), "n": len(hits), "hits": [int(h) for h in hits]}
    return {"classification": result, "classification_task": f"{cfg.ways}-way 1-shot, colour+shape of "
            "single-object scenes, task induction", "chance": 1.0 / cfg.ways}


def run_eval(cfg: VQAEvalConfig, llm, dd_texts: TextsFn, progress: bool = True) -> dict:
    """Both evaluations; JSON-ready dict with the config, the LLM's name and the wall time."""
    if cfg.train_seed in (cfg.seed, cfg.shot_seed):
        raise ValueError(f"seed {cfg.train_seed} is the training seed; pick unseen ones")
    if cfg.seed == cfg.shot_seed:
        raise ValueError("--seed and --shot-seed must differ (queries and examples must not overlap)")
    t0 = time.time()
    out = {"config": asdict(cfg), "llm": getattr(llm, "name", type(llm).__name__)}
    out.update(eval_vqa(cfg, llm, dd_texts, progress))
    if cfg.n_episodes:
        out.update(eval_classification(cfg, llm, dd_texts, progress))
    out["seconds"] = round(time.time() - t0, 1)
    return out


def merge_results(parts: list[dict]) -> dict:
    """Runs over disjoint context sources (same settings otherwise) -> one result, as if run together."""
    if not parts:
        raise ValueError("nothing to merge")
    settings = [{k: v for k, v in p["config"].items() if k != "sources"} for p in parts]
    if any(s != settings[0] for s in settings) or len({p["llm"] for p in parts}) != 1:
        raise ValueError("can only merge runs with the same settings and LLM")
    sources = [s for p in parts for s in p["config"]["sources"]]
    if len(set(sources)) != len(sources):
        raise ValueError(f"context sources overlap: {sources}")
    out = {**parts[0], "config": {**parts[0]["config"], "sources": sources}}
    for key in ("vqa", "classification"):
        if key in out:
            out[key] = {k: v for p in parts for k, v in p[key].items()}
    out["vqa_examples"] = [e for p in parts for e in p["vqa_examples"]]
    out["seconds"] = round(sum(p["seconds"] for p in parts), 1)
    out["seconds_per_run"] = [p["seconds"] for p in parts]
    return out
