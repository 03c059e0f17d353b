"""The ``dediffusion`` command line: one small function per subcommand."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import sys
import warnings

from dediffusion.apps.reading import ReaderModel
from dediffusion.bulk.ranked import encode_command
from dediffusion.bulk.stream import StreamSink, Summary, batches, encode_stream
from dediffusion.cli import ask, attribution, evaluation, serving
from dediffusion.cli.common import decoder_flag, encoder_flags, err, report_bad, sampling_flags, threads
from dediffusion.cli.demo import run_demo
from dediffusion.config import ConfigError, apply_overrides
from dediffusion.configs import missing_start, preset
from dediffusion.data.images import display_path, grid, save_image
from dediffusion.data.inputs import image_items
from dediffusion.data.prompts import check_prompt, clean_prompt
from dediffusion.data.shards import data_items
from dediffusion.model.autoencoder import load_model
from dediffusion.model.decoders import load_decoder
from dediffusion.model.sampling import generate
from dediffusion.pretrained import resolve
from dediffusion.train import fit_decoder, fit_encoder, fit_probe  # as modules: tests replace their runners
from dediffusion.train.defaults import describe, fit_to_decoder, override_keys
from dediffusion.train.export import export


def cmd_encode(a) -> int:
    if a.out and a.format == "text":
        raise ValueError("--out writes JSONL; drop --format text")
    if not a.out and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ValueError("several processes need --out (each writes a part file; rank 0 merges them)")
    model = load_model(a.model, a.decoder, a.tokens, a.backbone, a.adaptive_length)
    items = data_items(a.images, model.decoder.resolution)  # files, folders and WebDataset shards
    if a.fusion:  # the text for readers (apps/reading.py), not the one the decoder reads
        model = ReaderModel(model, a.fusion, a.layout)
    if a.out:  # one process, or one of torchrun's (bulk/ranked.py)
        summary = encode_command(model, items, a.out, a.batch_size, a.device, on_error=report_bad,
                                 report=lambda line: print(line, file=sys.stderr))
    else:
        summary = encode_stream(model, items, StreamSink(sys.stdout, a.format or "text"), a.batch_size,
                                on_error=report_bad, progress=None)
        print(summary.line("encoded"), file=sys.stderr)
    return 1 if summary.failed else 0


def cmd_decode(a) -> int:
    if not clean_prompt(a.text) and not a.allow_empty:
        raise ValueError("empty text: give a prompt (use --allow-empty for an unconditional sample)")
    decoder = load_decoder(resolve(a.decoder, "decoder")).eval()
    prompt = check_prompt(decoder, a.text)
    if prompt.text and not prompt.tokens and not a.allow_empty:
        raise ValueError("the text has no tokens the decoder can read")
    if prompt.dropped:
        print(f"warning: text truncated to the decoder's context: {prompt.dropped} of {prompt.tokens} tokens "
              f"dropped (it reads {prompt.limit})", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="prompt truncated")  # reported above in one line
        image = generate(decoder, [prompt.text], steps=a.steps, guidance=a.cfg, seed=a.seed)[0]
    save_image(image, a.output, scale=a.scale)
    print(f"wrote {a.output}", file=sys.stderr)
    return 0


def cmd_reconstruct(a) -> int:
    model = load_model(a.model, a.decoder, a.tokens, a.backbone, a.adaptive_length)
    out = pathlib.Path(a.output)
    out.mkdir(parents=True, exist_ok=True)
    summary, used = Summary(), set()
    for keys, images in batches(image_items(a.images, model.decoder.resolution), a.batch_size, summary, report_bad):
        texts = model.texts(images)
        recon = generate(model.decoder, texts, steps=a.steps, guidance=a.cfg, seed=a.seed)
        for key, img, text, rec in zip(keys, images, texts, recon):
            target = out / f"{_unique(pathlib.Path(key).stem, used)}.png"
            save_image(grid([[img, rec]]), target, scale=a.scale)
            print(f"{display_path(key)}\t{target}\t{text}", flush=True)
            summary.ok += 1
    print(summary.line("reconstructed"), file=sys.stderr)
    return 1 if summary.failed else 0


def _unique(stem: str, used: set[str]) -> str:
    """``stem``, or ``stem-1``, ``stem-2``, ... if taken (same-named files in different folders)."""
    name, i = stem, 0
    while name in used:
        i += 1
        name = f"{stem}-{i}"
    used.add(name)
    return name


def cmd_demo(a) -> int:
    run_demo(a.output, n=a.n, seed=a.seed, steps=a.steps, guidance=a.cfg)
    return 0


def _base_config(a, default):
    """The subcommand's default config, or ``--preset NAME`` (``dediffusion/configs/``; one for this subcommand)."""
    if not a.preset:
        return default()
    return preset(a.preset, a.command)


def _check_start(a, cfg) -> None:
    """ValueError when a preset's ``init_from`` is an earlier stage not run yet."""
    problem = missing_start(a.preset, cfg) if a.preset else None
    if problem:
        raise ValueError(problem)


def cmd_pretrain_decoder(a) -> int:
    cfg = apply_overrides(_base_config(a, fit_decoder.DecoderTrainConfig), a.set)
    _check_start(a, cfg)
    fit_decoder.pretrain_decoder(cfg, a.output, resume=a.resume, stop_at=a.stop_at)
    return 0


def cmd_train(a) -> int:
    sets = a.set + (["model.encoder.freeze_backbone=false"] if a.unfreeze_backbone else [])
    cfg = apply_overrides(_base_config(a, fit_encoder.EncoderTrainConfig), sets)
    if not a.resume:
        _check_start(a, cfg)
    if a.data:  # image folders / WebDataset shards instead of the embedded world (train/sources.py)
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, paths=tuple(a.data)))
    if a.cache_features:  # the frozen backbone's features, computed once (train/feature_cache.py)
        cfg = dataclasses.replace(cfg, cache_features=a.cache_features)
    decoder = resolve(a.decoder or cfg.decoder, "decoder")
    cfg = fit_to_decoder(cfg, decoder, {"model"} if a.preset else override_keys(sets))  # train/defaults.py
    if int(os.environ.get("RANK", "0")) == 0:
        print(describe(cfg, decoder), file=sys.stderr)
    fit_encoder.train_encoder(cfg, a.output, decoder, resume=a.resume, stop_at=a.stop_at)
    return 0


def cmd_train_probe(a) -> int:
    acc = fit_probe.train_probe(apply_overrides(_base_config(a, fit_probe.ProbeTrainConfig), a.set), a.output)
    print(json.dumps(acc, indent=2))
    return 0


def cmd_export(a) -> int:
    export(a.kind, a.run, a.output, decoder_ref=a.decoder_ref, overrides=a.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="dediffusion", description="De-Diffusion: images as text and back.")
    sub = ap.add_subparsers(dest="command", required=True)
    for add_parsers in (_image_parsers, evaluation.add_parsers, attribution.add_parsers, _training_parsers,
                        ask.add_parsers, serving.add_parsers):
        add_parsers(sub)
    return ap


def _image_parsers(sub) -> None:
    p = sub.add_parser("encode", help="image files and folders -> De-Diffusion text")
    p.add_argument("images", nargs="+", help="image files, folders (walked recursively), WebDataset .tar shards")
    p.add_argument("--format", choices=("text", "jsonl"), help="stdout format (default: text)")
    p.add_argument("--out", help="append JSONL here, flushed per batch; rerunning skips images already in it "
                   "(under torchrun: one part file per process, merged at the end)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", default="cpu", help="cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    encoder_flags(p)
    p.add_argument("--fusion", type=float, default=0.0, metavar="W", help="write the text `ask` gives the LLM "
                   "(0.2): the logits searched with a caption language model at weight W, written as the objects "
                   "they name (default 0: the decoder's text; embedded-world encoders only)")
    ask.layout_flag(p)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help="text -> image with the decoder")
    p.add_argument("text")
    p.add_argument("-o", "--output", required=True)
    decoder_flag(p, "shipped")
    p.add_argument("--scale", type=int, default=8, help="nearest-neighbour upscale of the saved PNG")
    p.add_argument("--allow-empty", action="store_true")
    sampling_flags(p)
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("reconstruct", help="image(s) -> text -> image(s); writes original|reconstruction PNGs")
    p.add_argument("images", nargs="+", help="image files and/or folders (walked recursively)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--scale", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=64)
    encoder_flags(p)
    sampling_flags(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("demo", help="encode fresh scenes, print texts, write a comparison grid")
    p.add_argument("-o", "--output", default="out/demo")
    p.add_argument("--n", type=int, default=6)
    sampling_flags(p)
    p.set_defaults(func=cmd_demo, seed=12345)


def _training_parsers(sub) -> None:
    for name, func, help_, example in (
            ("pretrain-decoder", cmd_pretrain_decoder, "train the built-in decoder", "world_decoder"),
            ("train", cmd_train, "train the De-Diffusion encoder against a frozen decoder",
             "world_encoder or paper_sd21"),
            ("train-probe", cmd_train_probe, "train the attribute probe", "world_probe")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--out", dest="output", required=True)
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. lr=3e-4")
        if name != "train-probe":
            p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
            p.add_argument("--stop-at", type=int, help="checkpoint and stop after this step (continue with --resume)")
        p.add_argument("--preset", help=f"start from a recipe in dediffusion/configs/, e.g. {example}; its docstring "
                       "gives the commands, cost and result")
        p.set_defaults(func=func)
    p = sub.choices["train"]
    decoder_flag(p, "shipped")
    p.add_argument("--unfreeze-backbone", action="store_true", help="fine-tune a pretrained backbone")
    p.add_argument("--data", nargs="+", metavar="DIR_OR_SHARD", help="train on image folders / WebDataset .tar shards "
                   "(default: the embedded world); --set data.shuffle_buffer=N")
    p.add_argument("--cache-features", metavar="DIR", help="store a frozen backbone's features in DIR and read them "
                   "back when an image comes round again (epochs, repeated runs)")

    p = sub.add_parser("export", help="training folder -> compact fp16 inference checkpoint")
    p.add_argument("kind", choices=("decoder", "encoder", "probe"))
    p.add_argument("run")
    p.add_argument("output")
    p.add_argument("--decoder-ref", help="for encoders: decoder reference to record, e.g. shipped:decoder")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="for encoders: inference settings, e.g. head.inference=sample head.sample_temperature=0.5")
    p.set_defaults(func=cmd_export)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    threads()
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, ValueError) as e:  # one line, exit status 2: a usage error too
        err(str(e))
        return 2

