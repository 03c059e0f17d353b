"""Derive HF-format CLIP BPE tokenizer files from open-clip-torch's vocabulary.

The 49,408-token CLIP BPE vocabulary (OpenAI CLIP, MIT licence) ships inside
open-clip-torch as ``bpe_simple_vocab_16e6.txt.gz``. This script rebuilds the
``vocab.json`` / ``merges.txt`` pair that ``transformers.CLIPTokenizer`` reads,
exactly as open_clip's ``SimpleTokenizer`` does, without importing open_clip
(which pulls torchvision). The outputs are committed under
``src/dediffusion/assets/clip_bpe``; run this to regenerate them:

    .venv/bin/python scripts/derive_clip_tokenizer.py
"""
import gzip
import json
import pathlib
import sysconfig


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def main() -> None:
    src = pathlib.Path(sysconfig.get_paths()["purelib"]) / "open_clip" / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(src).read().decode("utf-8").split("\n")
    merges = merges[1 : 49152 - 256 - 2 + 1]
    pairs = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab]
    vocab += ["".join(p) for p in pairs]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == 49408, len(vocab)
    out = pathlib.Path(__file__).resolve().parents[1] / "src" / "dediffusion" / "assets" / "clip_bpe"
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(p) for p in pairs) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(vocab)} tokens, {len(pairs)} merges)")


if __name__ == "__main__":
    main()
