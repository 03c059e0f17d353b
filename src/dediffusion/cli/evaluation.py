"""``dediffusion eval`` (the report) and ``dediffusion invert`` (per-image prompt optimisation)."""
from __future__ import annotations

import importlib.util
import json
import shlex
import sys
import time

from dediffusion.bulk.stream import Summary, batches
from dediffusion.model.sampling import DEFAULT_GUIDANCE, DEFAULT_STEPS
from dediffusion.cli.common import backbone_flag, decoder_flag, encoder_flags, report_bad
from dediffusion.data.images import display_path
from dediffusion.data.inputs import image_items
from dediffusion.eval.evaluate import DEFAULT_SOURCES, EvalConfig, SOURCES, SPLITS, evaluate_sweep, split_name
from dediffusion.eval.invert import InvertConfig, invert_texts
from dediffusion.eval.report import fmt, write_report
from dediffusion.model.attribute_cnn import load_probe
from dediffusion.model.autoencoder import load_model
from dediffusion.pretrained import resolve


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _names(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    pairs = tuple(tuple(x.strip() for x in p.split(":")) for p in text.split(",") if p.strip())
    if any(len(p) != 2 or not all(p) for p in pairs):
        raise ValueError(f"--pairs wants A:B[,C:D...], got {text!r}")
    return pairs


def _command(a) -> str:
    """The eval command line with every setting spelled out (for the report)."""
    split = split_name(a.seed)
    parts = ["dediffusion", "eval", *(("--split", split) if split != "custom" else ("--seed", a.seed)), "--n", a.n,
             "--steps", a.steps, "--cfg", a.cfg,
             "--guidance", ",".join(f"{g:g}" for g in (a.guidance or (a.cfg,))), "--sources", ",".join(a.sources),
             "--features", ",".join(a.features) or '""', "--batch-size", a.batch_size,
             "--pairs", ",".join(f"{x}:{y}" for x, y in a.pairs) or '""']
    if "inverted" in a.sources:
        parts += ["--invert-steps", a.invert_steps, "--invert-batch", a.invert_batch]
    for flag, value in (("--model", a.model), ("--tokens", a.tokens), ("--decoder", a.decoder), ("--probe", a.probe),
                        ("--backbone", a.backbone), ("--report", a.report)):
        if value:
            parts += [flag, value]
    if a.adaptive_length:
        parts.insert(parts.index("--pairs"), "--adaptive-length")
    return " ".join(shlex.quote(str(p)) for p in parts)


def _missing_packages(a) -> list[str]:
    need = (["torchmetrics"] if a.features else []) + (["matplotlib"] if a.report else [])
    return [n for n in need if importlib.util.find_spec(n) is None]


def cmd_eval(a) -> int:
    missing = _missing_packages(a)
    if missing:
        raise ValueError(f"eval needs {' and '.join(missing)}: pip install 'dediffusion[report]'")
    a.seed = SPLITS[a.split] if a.seed is None else a.seed  # --seed overrides --split
    bad = sorted({s for p in a.pairs for s in p} - set(SOURCES))
    if bad:
        raise ValueError(f"--pairs: unknown prompt source(s) {bad}; known: {', '.join(SOURCES)}")
    model = load_model(a.model, a.decoder, a.tokens, a.backbone, a.adaptive_length)
    if a.seed == model.cfg.train_seed:
        raise ValueError(f"--seed {a.seed} is the training seed; pick an unseen one")
    probe = load_probe(resolve(a.probe, "probe"))
    cfg = EvalConfig(seed=a.seed, n=a.n, steps=a.steps, guidance=a.guidance or (a.cfg,), headline=a.cfg,
                     sources=a.sources, features=a.features, batch=a.batch_size, pairs=a.pairs,
                     invert=InvertConfig(steps=a.invert_steps, batch_size=a.invert_batch))
    features = {}
    result = evaluate_sweep(model, probe, cfg, progress=not a.json, features_out=features)
    result["decoder"] = str(a.decoder or model.cfg.decoder_path or "shipped:decoder")
    if a.report:
        for path in write_report(result, a.report, _command(a), features=features):
            print(f"wrote {path}", file=sys.stderr)
    if a.json:
        print(json.dumps(result, indent=2))
        return 0
    _print_summary(result)
    return 0


def _print_summary(r: dict) -> None:
    """Headline numbers at the headline guidance, the floor and the paired margins."""
    print(f"split {r['split']} (seed {r['seed']}), n = {r['n']}, guidance {r['guidance']:g}")
    fd, kid = r["frechet_distance"], r["kid"]
    for k, v in r["accuracy"].items():
        print(f"{k:>14}: acc {v:.3f}  strict {r['accuracy_strict'][k]:.3f}"
              + "".join(f"  FD[{f}] {fmt(per[k], 4)}  KID[{f}] {fmt(kid[f][k], 3)}" for f, per in fd.items()))
    for f, fl in r["floor"].items():
        print(f"{'real floor':>14}: FD[{f}] {fmt(fl['frechet_distance'], 4)}  KID[{f}] {fmt(fl['kid'], 3)}")
    for c in r["paired_bootstrap"]["comparisons"]:
        if c["guidance"] == r["guidance"]:
            m = c["accuracy_strict"]
            print(f"{c['a']} vs {c['b']}: strict acc {m['diff']:+.3f} [{m['lo']:+.3f}, {m['hi']:+.3f}]")
    print(f"distinct text fraction: {r['distinct_text_fraction']:.3f}")


def cmd_invert(a) -> int:
    model = load_model(a.model, a.decoder, backbone=a.backbone)
    n = model.cfg.encoder.num_tokens
    if a.init == "encoder" and a.tokens not in (None, n):
        raise ValueError(f"--init encoder refines the encoder's {n} tokens; drop --tokens {a.tokens}")
    cfg = InvertConfig(steps=a.steps, num_tokens=a.tokens or 0, init=a.init, lr=a.lr, tau_start=a.tau_start,
                       noise_scale=a.noise_scale, batch_size=a.batch_size, seed=a.seed)
    summary, seconds = Summary(), 0.0
    for keys, images in batches(image_items(a.images, model.decoder.resolution), a.batch_size, summary, report_bad):
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
    p = sub.add_parser("eval", help="reconstruction quality of each prompt source: probe accuracy, Frechet distance")
    named = ", ".join(f"{k} = seed {v}" for k, v in SPLITS.items())
    p.add_argument("--split", choices=tuple(SPLITS), default="dev",
                   help=f"held-out scene stream: {named} (default: dev)")
    p.add_argument("--seed", type=int, help="any other held-out scene stream (overrides --split; not training's)")
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
    encoder_flags(p, "the one the encoder was trained against; another one tests transfer")
    p.add_argument("--probe")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--invert-steps", type=int, default=300, help="optimisation steps of the 'inverted' source")
    p.add_argument("--invert-batch", type=int, default=16, help="images optimised in parallel")
    p.add_argument("--pairs", type=_pairs, default=(("dediffusion", "human_caption"),), metavar="A:B,...",
                   help="sources compared with paired bootstrap intervals (default: dediffusion:human_caption)")
    p.add_argument("--report", metavar="DIR",
                   help="write report.json, report.md, features.safetensors and PNG plots here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("invert", help="image(s) -> text by per-image prompt optimisation (the slow baseline; "
                       "--init encoder refines the encoder's text)")
    p.add_argument("images", nargs="+")
    p.add_argument("--model", help="encoder whose vocabulary, token count and decoder are used (default: shipped)")
    decoder_flag(p, "the one the encoder was trained against")
    backbone_flag(p)
    p.add_argument("--init", choices=("random", "encoder"), default="random",
                   help="start from random logits, or refine the encoder's text (--steps 0: the encoder's text)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--tokens", type=int, help="prompt length (default: the encoder's)")
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--tau-start", type=float, help="Gumbel-softmax temperature at step 0, annealed to 0.3 "
                   "(default: 2.0 from random logits, 0.3 from the encoder's)")
    p.add_argument("--noise-scale", type=float, help="Gumbel noise multiplier (default: 1.0 random, 0.3 encoder)")
    p.add_argument("--batch-size", type=int, default=16, help="images optimised in parallel, each with its own logits")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("text", "jsonl"), default="text")
    p.set_defaults(func=cmd_invert)
