"""``dediffusion eval`` (the report) and ``dediffusion invert`` (per-image prompt optimisation)."""
from __future__ import annotations

import json
import shlex
import sys
import time

from .cli import DEFAULT_GUIDANCE, DEFAULT_STEPS, _decoder_flag, _err, _load_model, _report_bad


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _command(a) -> str:
    """The eval command line with every setting spelled out (for the report)."""
    parts = ["dediffusion", "eval", "--seed", a.seed, "--n", a.n, "--steps", a.steps, "--cfg", a.cfg,
             "--guidance", ",".join(f"{g:g}" for g in (a.guidance or (a.cfg,))), "--sources", ",".join(a.sources),
             "--features", ",".join(a.features) or '""', "--batch-size", a.batch_size]
    if "inverted" in a.sources:
        parts += ["--invert-steps", a.invert_steps, "--invert-batch", a.invert_batch]
    for flag, value in (("--model", a.model), ("--decoder", a.decoder), ("--probe", a.probe), ("--report", a.report)):
        if value:
            parts += [flag, value]
    return " ".join(shlex.quote(str(p)) for p in parts)


def _missing_packages(a) -> list[str]:
    import importlib.util

    need = (["torchmetrics"] if a.features else []) + (["matplotlib"] if a.report else [])
    return [n for n in need if importlib.util.find_spec(n) is None]


def cmd_eval(a) -> int:
    from .evaluate import EvalConfig, evaluate_sweep
    from .invert import InvertConfig
    from .pretrained import resolve
    from .world.probe import load_probe

    missing = _missing_packages(a)
    if missing:
        _err(f"eval needs {' and '.join(missing)}: pip install 'dediffusion[report]'")
        return 2
    model = _load_model(a.model, a.decoder)
    if a.seed == model.cfg.train_seed:
        _err(f"--seed {a.seed} is the training seed; pick an unseen one")
        return 2
    probe = load_probe(resolve(a.probe, "probe"))
    cfg = EvalConfig(seed=a.seed, n=a.n, steps=a.steps, guidance=a.guidance or (a.cfg,), headline=a.cfg,
                     sources=a.sources, features=a.features, batch=a.batch_size,
                     invert=InvertConfig(steps=a.invert_steps, batch_size=a.invert_batch))
    result = evaluate_sweep(model, probe, cfg, progress=not a.json)
    result["decoder"] = str(a.decoder or model.cfg.decoder_path or "shipped:decoder")
    if a.report:
        from .report import write_report

        for path in write_report(result, a.report, _command(a)):
            print(f"wrote {path}", file=sys.stderr)
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    fd = result["frechet_distance"]
    for k, v in result["accuracy"].items():
        print(f"{k:>14}: {v:.3f}" + "".join(f"  FD[{f}] {per[k]:.4g}" for f, per in fd.items() if per[k] is not None))
    print(f"distinct text fraction: {result['distinct_text_fraction']:.3f}")
    return 0


def cmd_invert(a) -> int:
    from .bulk import Summary, batches, image_items
    from .images import display_path
    from .invert import InvertConfig, invert_texts

    model = _load_model(a.model, a.decoder)
    cfg = InvertConfig(steps=a.steps, num_tokens=a.tokens or 0, lr=a.lr, batch_size=a.batch_size, seed=a.seed)
    summary, seconds = Summary(), 0.0
    for keys, images in batches(image_items(a.images, model.decoder.resolution), a.batch_size, summary, _report_bad):
        t0 = time.perf_counter()
        texts = invert_texts(model, images, cfg, progress=True)
        seconds += time.perf_counter() - t0
        for key, text in zip(keys, texts):
            shown = display_path(key)
            print(json.dumps({"image": shown, "text": text}) if a.format == "jsonl" else f"{shown}\t{text}", flush=True)
            summary.ok += 1
    per = f" ({seconds / summary.ok:.2f} s per image)" if summary.ok else ""
    print(f"{summary.line('inverted')} in {seconds:.1f} s{per}", file=sys.stderr)
    return 1 if summary.failed else 0


def add_parsers(sub) -> None:
    from .evaluate import DEFAULT_SOURCES, SOURCES

    p = sub.add_parser("eval", help="reconstruction quality of each prompt source: probe accuracy, Frechet distance")
    p.add_argument("--seed", type=int, default=1, help="held-out scene stream (must differ from training's)")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--cfg", type=float, default=DEFAULT_GUIDANCE,
                   help="guidance of the top-level results (if it is in --guidance; else its first value)")
    p.add_argument("--guidance", type=_floats, metavar="G1,G2,...",
                   help="guidance sweep, e.g. 1.5,2,3,4,5,6,7,8 (paper, Table 1; default: --cfg)")
    p.add_argument("--sources", type=_names, default=DEFAULT_SOURCES, metavar="S1,S2,...",
                   help=f"prompt sources among {','.join(SOURCES)} (default: {','.join(DEFAULT_SOURCES)})")
    p.add_argument("--features", type=_names, default=("probe",), metavar="F1,...",
                   help="Frechet-distance feature spaces: probe, efficientnet (default: probe)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    p.add_argument("--model")
    p.add_argument("--probe")
    _decoder_flag(p, "the one the encoder was trained against; another one tests transfer")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--invert-steps", type=int, default=300, help="optimisation steps of the 'inverted' source")
    p.add_argument("--invert-batch", type=int, default=16, help="images optimised in parallel")
    p.add_argument("--report", metavar="DIR", help="write report.json, report.md and PNG plots here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("invert", help="image(s) -> text by per-image prompt optimisation (the slow baseline)")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", help="encoder whose vocabulary, token count and decoder are used (default: shipped)")
    _decoder_flag(p, "the one the encoder was trained against")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--tokens", type=int, help="prompt length (default: the encoder's)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=16, help="images optimised in parallel, each with its own logits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=cmd_invert)
