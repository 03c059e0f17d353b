"""The LLM commands: ``ask``, ``chat`` and ``vqa-eval``; ``add_parsers`` hooks them into ``dediffusion``."""
from __future__ import annotations

import json
import pathlib
import sys

from dediffusion.apps.answer import MAX_TOKENS, replies, shown_prompt
from dediffusion.apps.llm import LLMError, LocalLLM, default_llm
from dediffusion.apps.llm_prompts import chat_messages, extract_answer, first_sentence, load_shots
from dediffusion.apps.reading import (LAYOUTS, READER_FUSION, READER_LAYOUT, load_shape_decoder, reader_texts,
                                      reader_weight)
from dediffusion.apps.remote import API_KEY_ENV, RemoteConfig, RemoteLLM
from dediffusion.apps.vqa import SOURCES, VQAEvalConfig, merge_results, run_eval
from dediffusion.cli.common import err
from dediffusion.data.images import ImageInputError, load_image
from dediffusion.data.world.batches import images_tensor
from dediffusion.model.autoencoder import load_model

CHAT_TURNS_KEPT = 6  # earlier (question, answer) turns kept in the prompt: a 135M model's context is short
CHAT_MAX_TOKENS = 48  # replies are cut to their first sentence; a 135M model's later ones repeat the context


def build_llm(a):
    """The backend the flags ask for: remote with --llm-url, a local folder with --llm-dir, else SmolLM2."""
    if a.llm_url:
        return RemoteLLM(RemoteConfig(url=a.llm_url, model=a.llm_model, api_key_env=a.llm_key_env,
                                      timeout_s=a.llm_timeout, retries=a.llm_retries))
    if a.llm_dir:
        return LocalLLM.from_pretrained(a.llm_dir)
    return default_llm()


def _context_and_llm(a):
    """(context text, llm): ``--text`` as given, else the image's De-Diffusion text (a bad one: ValueError)."""
    if (a.image is None) == (a.text is None):
        raise ValueError("give an image file or --text TEXT" if a.image is None
                         else "give an image file or --text, not both")
    if a.text is not None:
        text = a.text
    else:  # the image's De-Diffusion text
        model = load_model(a.model)
        try:
            image = load_image(a.image, model.decoder.resolution)
        except ImageInputError as e:
            raise ValueError(str(e)) from None
        checker = load_shape_decoder(a.shape_decoder, reader_weight(model, a.fusion)) if a.shape_decoder else None
        text = reader_texts(model, image[None], a.fusion, shape_decoder=checker, layout=a.layout)[0]
    if a.show_context:
        print(f"image text: {text}", file=sys.stderr)
    return text, build_llm(a)


def cmd_ask(a) -> int:
    if not a.question.strip():
        raise ValueError("empty question")
    shots = load_shots(a.shots) if a.shots else []
    text, llm = _context_and_llm(a)
    query = (text, a.question, shots)
    if a.show_prompt:
        print(shown_prompt(llm, query), file=sys.stderr)
    reply = replies(llm, [query], a.max_tokens)[0]
    answer = extract_answer(reply)
    if not answer:
        err(f"the LLM gave no answer (its reply: {' '.join(reply.split())!r})")
        return 1
    print(answer, flush=True)
    return 0


def cmd_chat(a) -> int:
    text, llm = _context_and_llm(a)
    interactive = sys.stdin.isatty()
    if interactive:
        print("Ask about the image; an empty line or Ctrl-D ends.", file=sys.stderr)
    turns: list[tuple[str, str]] = []
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or (interactive and not line.strip()):  # EOF, or an empty line at the terminal
            return 0
        question = line.strip()
        if not question:
            continue
        reply = first_sentence(llm.chat(chat_messages(text, turns[-CHAT_TURNS_KEPT:], question), a.max_tokens))
        print(reply, flush=True)
        turns.append((question, reply))


def _table(result: dict) -> str:
    shots = result["config"]["shots"]
    lines = ["| context | " + " | ".join(f"VQA {k}-shot" for k in shots) + " | 5-way 1-shot classification |",
             "|---|" + "---|" * (len(shots) + 1)]
    for source, by_shot in result["vqa"].items():
        cls = result.get("classification", {}).get(source, {}).get("accuracy")
        cells = [f"{by_shot[str(k)]['accuracy']:.3f}" for k in shots] + [f"{cls:.3f}" if cls is not None else "-"]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _report(result: dict, a) -> int:
    if a.output:
        pathlib.Path(a.output).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(a.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2) if a.json else _table(result) + f"\n({result['seconds']} s)")
    return 0


def cmd_vqa_eval(a) -> int:
    if a.merge:
        return _report(merge_results([json.loads(pathlib.Path(f).read_text()) for f in a.merge]), a)
    shots = tuple(int(s) for s in a.shots.split(",") if s.strip())
    sources = tuple(s.strip() for s in a.sources.split(",") if s.strip())
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        raise ValueError(f"unknown context source(s) {', '.join(unknown)} (sources: {', '.join(SOURCES)})")
    model = load_model(a.model)
    fusion = reader_weight(model, a.fusion)
    cfg = VQAEvalConfig(seed=a.seed, shot_seed=a.shot_seed, n_questions=a.n, shots=shots, sources=sources,
                        n_episodes=a.episodes, ways=a.ways, batch_size=a.batch_size,
                        max_tokens=a.max_tokens or VQAEvalConfig.max_tokens, train_seed=model.cfg.train_seed,
                        fusion=fusion, shape_decoder=a.shape_decoder or "", layout=a.layout if fusion else "")
    if cfg.train_seed in (cfg.seed, cfg.shot_seed):
        raise ValueError(f"seed {cfg.train_seed} is the training seed; pick unseen ones")
    checker = load_shape_decoder(a.shape_decoder, fusion) if a.shape_decoder else None
    llm = build_llm(a)

    def dd_texts(scenes):
        return reader_texts(model, images_tensor(scenes, model.decoder.resolution), fusion, shape_decoder=checker,
                            layout=a.layout)

    return _report(run_eval(cfg, llm, dd_texts, progress=not a.json), a)


def _guarded(func):
    """LLM failures end the command with one error line and exit status 1."""
    def run(a) -> int:
        try:
            return func(a)
        except LLMError as e:
            err(str(e))
            return 1
    return run


def llm_flags(p) -> None:
    g = p.add_argument_group("language model (default: SmolLM2-135M-Instruct, offline)")
    g.add_argument("--llm-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--llm-model", default="default", help="model name sent to --llm-url")
    g.add_argument("--llm-key-env", default=API_KEY_ENV, help="environment variable holding the API key")
    g.add_argument("--llm-timeout", type=float, default=60.0, help="seconds to wait for an answer, each attempt")
    g.add_argument("--llm-retries", type=int, default=2,
                   help="extra attempts on connection errors, timeouts, 408, 409, 429 and 5xx")
    g.add_argument("--llm-dir", help="a local transformers causal-LM folder instead of the default")
    g.add_argument("--max-tokens", type=int, default=None, help="longest answer in tokens")


def _context_flags(p) -> None:
    p.add_argument("image", nargs="?", help="image file (or give --text instead)")
    p.add_argument("--text", help="use this text (a caption, an edited De-Diffusion text) instead of an image")
    p.add_argument("--model", help="encoder checkpoint folder (default: shipped)")
    p.add_argument("--show-context", action="store_true", help="print the context text on stderr")
    fusion_flag(p)
    layout_flag(p)
    shape_decoder_flag(p)


def fusion_flag(p) -> None:
    p.add_argument("--fusion", type=float, metavar="W", help="weight of the caption language model in the caption "
                   f"the LLM reads (default {READER_FUSION} for embedded-world encoders, else 0; 0: the decoder's own "
                   "text)")


def layout_flag(p) -> None:
    p.add_argument("--layout", choices=tuple(LAYOUTS), default=READER_LAYOUT, help="how the text the LLM reads is "
                   f"written (default {READER_LAYOUT}; benchmarks/dev_reader_style)")


def shape_decoder_flag(p) -> None:
    p.add_argument("--shape-decoder", metavar="DIR", help="a second built-in decoder that checks the cells and "
                   "shapes the caption names (default: the encoder's own decoder; e.g. benchmarks/checkpoints/decoder_b)")


def add_parsers(sub) -> None:
    p = sub.add_parser("ask", help="answer a question about an image with an LLM reading its De-Diffusion text",
                       usage="dediffusion ask (IMAGE | --text TEXT) QUESTION [options]")
    _context_flags(p)
    p.add_argument("question")
    p.add_argument("--shots", help='few-shot examples, JSON lines {"context", "question", "answer"}')
    p.add_argument("--show-prompt", action="store_true", help="print the full prompt on stderr")
    llm_flags(p)
    p.set_defaults(func=_guarded(cmd_ask), max_tokens=MAX_TOKENS)

    p = sub.add_parser("chat", help="talk about an image with an LLM (reads questions from stdin until EOF)",
                       usage="dediffusion chat (IMAGE | --text TEXT) [options]")
    _context_flags(p)
    llm_flags(p)
    p.set_defaults(func=_guarded(cmd_chat), max_tokens=CHAT_MAX_TOKENS)

    p = sub.add_parser("vqa-eval", help="LLM accuracy on world questions by context source (benchmarks/vqa.md)")
    p.add_argument("--seed", type=int, default=1, help="held-out query scenes")
    p.add_argument("--shot-seed", type=int, default=2, help="held-out few-shot example scenes")
    p.add_argument("--n", type=int, default=200, help="questions per (context, shots) cell")
    p.add_argument("--shots", default="0,3", help="comma-separated shot counts")
    p.add_argument("--sources", default="dediffusion,human_caption,full_caption,no_context",
                   help="comma-separated context sources")
    p.add_argument("--merge", nargs="+", metavar="JSON", help="combine runs over different --sources instead")
    p.add_argument("--episodes", type=int, default=50, help="classification episodes per context")
    p.add_argument("--ways", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--model", help="encoder checkpoint folder (default: shipped)")
    fusion_flag(p)
    layout_flag(p)
    shape_decoder_flag(p)
    p.add_argument("-o", "--output", help="also write the JSON result here")
    p.add_argument("--json", action="store_true")
    llm_flags(p)
    p.set_defaults(func=_guarded(cmd_vqa_eval))
