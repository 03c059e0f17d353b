"""Text given to the decoder by a person: cleaned, checked, and measured against the context.

Any Unicode is accepted (CLIP's byte-level BPE has a token for every byte).
Control characters and unpaired surrogates (undecodable command-line bytes)
become spaces; runs of whitespace collapse to one space.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_DROP = ("Cc", "Cs")  # control characters, lone surrogates


@dataclass(frozen=True)
class PromptCheck:
    text: str  # the cleaned prompt
    tokens: int  # content tokens (no SOS/EOS)
    limit: int  # content tokens the decoder reads (context minus SOS and EOS)

    @property
    def dropped(self) -> int:
        return max(0, self.tokens - self.limit)


def clean_prompt(text: str) -> str:
    """Control characters and lone surrogates -> spaces; whitespace collapsed and stripped."""
    return " ".join("".join(" " if unicodedata.category(c) in _DROP else c for c in text).split())


def check_prompt(decoder, text: str) -> PromptCheck:
    """Clean ``text`` and count its tokens against the decoder's context (paper, Sec. 3: CLIP's 77)."""
    text = clean_prompt(text)
    ids = decoder.tokenizer(text, add_special_tokens=False).input_ids if text else []
    return PromptCheck(text, len(ids), decoder.context_length - 2)
