"""CLIP BPE tokenizer (49,408 tokens) and the vocabulary masks of the text head.

The vocabulary files are derived from open-clip-torch's
``bpe_simple_vocab_16e6.txt.gz`` (OpenAI CLIP, MIT licence) by
``scripts/derive_clip_tokenizer.py`` and shipped with the package, so no
download or open_clip import is needed.
"""
from __future__ import annotations

import functools
import re
from importlib import resources

import torch

CONTEXT_LENGTH = 77  # CLIP's context: SOS + 75 tokens + EOS (paper, Sec. 3)
_WORD = re.compile(r"^[a-z0-9]+(</w>)?$")  # word and number tokens; everything else is punctuation-like


@functools.lru_cache(maxsize=None)
def clip_tokenizer(model_max_length: int = CONTEXT_LENGTH):
    """The CLIP BPE tokenizer as a ``transformers.CLIPTokenizer``."""
    from transformers import CLIPTokenizer

    root = resources.files("dediffusion") / "assets" / "clip_bpe"
    return CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"), model_max_length=model_max_length)


def special_ids(tokenizer) -> set[int]:
    return {int(i) for i in tokenizer.all_special_ids}


def word_token_ids(tokenizer) -> list[int]:
    """Ids of word and number tokens: special tokens and punctuation excluded.

    The paper removes all punctuation (~6% of CLIP's vocabulary) from the
    text head's output space (Sec. 3, Table 5).
    """
    specials = special_ids(tokenizer)
    return sorted(i for t, i in tokenizer.get_vocab().items() if i not in specials and _WORD.match(t))


def allowed_ids(tokenizer, mode: str, words: list[str] | None = None) -> torch.Tensor:
    """The vocabulary the text head may emit, by ``mode``.

    ``words``: word and number tokens (the paper's default); ``all``: every
    non-special token (punctuation kept: the paper's ablation); ``allow_list``: only the tokens of
    ``words`` (e.g. the decoder's training words).
    """
    specials = special_ids(tokenizer)
    if mode == "words":
        ids = word_token_ids(tokenizer)
    elif mode == "all":
        ids = sorted(i for i in tokenizer.get_vocab().values() if i not in specials)
    elif mode == "allow_list":
        if not words:
            raise ValueError("vocab mode 'allow_list' needs a non-empty word list")
        ids = sorted({i for w in words for i in tokenizer(w, add_special_tokens=False).input_ids})
    else:
        raise ValueError(f"unknown vocab mode {mode!r}; expected 'words', 'all' or 'allow_list'")
    if specials & set(ids):
        raise ValueError("special tokens may never be emitted by the text head")
    return torch.tensor(ids, dtype=torch.long)


def decode_ids(tokenizer, ids) -> str:
    """Token ids -> plain text (no special tokens)."""
    return tokenizer.decode([int(i) for i in ids], skip_special_tokens=True, clean_up_tokenization_spaces=False).strip()
