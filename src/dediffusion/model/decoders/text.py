"""Conditioning a frozen CLIP text encoder on token ids *or* on (soft) token vectors.

De-Diffusion's text head emits distributions over the vocabulary; they
multiply the decoder's token-embedding table and enter the text encoder at the
token positions, with SOS/EOS, padding and position embeddings exactly as for
ordinary text (SOS + 75 tokens + EOS = CLIP's 77 positions, paper Sec. 3). Real prompts go through the very same function, so a prompt
and the hard ids it tokenizes to give identical states.
"""
from __future__ import annotations

import functools
import inspect
import warnings

import torch
import torch.nn.functional as F


class TextConditioner:
    """Mixin for decoder adapters holding ``self.tokenizer`` and ``self.text_encoder`` (a CLIPTextModel)."""

    @property
    def context_length(self) -> int:
        return int(self.tokenizer.model_max_length)

    @property
    def token_embedding(self) -> torch.Tensor:
        """The (V, D) token-embedding table the soft tokens multiply."""
        return self.text_encoder.get_input_embeddings().weight

    def text_states_from_embeds(self, tok_embeds: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Text-encoder states (B, L, D) for N token vectors (B, N, D), N <= L - 2.

        ``lengths`` (B,): keep only the first ``lengths[i]`` tokens of row i (TailDrop); EOS follows
        them and padding the rest, exactly as for a shorter prompt.
        """
        b, n, _ = tok_embeds.shape
        length = self.context_length
        if n > length - 2:
            raise ValueError(f"{n} tokens do not fit the decoder's context of {length} (SOS and EOS included)")
        tok = self.tokenizer
        ids = torch.tensor([tok.bos_token_id, tok.eos_token_id, tok.pad_token_id], device=tok_embeds.device)
        sos, eos, pad = F.embedding(ids, self.token_embedding).to(tok_embeds.dtype)  # 3 x (D,)
        j = torch.arange(length - 1, device=tok_embeds.device)[None, :, None]  # content index of positions 1..L-1
        keep = n if lengths is None else lengths.to(tok_embeds.device)[:, None, None]  # (B,1,1); None: all N
        body = F.pad(tok_embeds, (0, 0, 0, length - 1 - n))  # (B,L-1,D)
        body = torch.where(j < keep, body, torch.where(j == keep, eos, pad))
        return self._encode_embeds(torch.cat([sos.expand(b, 1, -1), body], dim=1))

    def _encode_embeds(self, seq: torch.Tensor) -> torch.Tensor:
        from transformers.masking_utils import create_causal_mask

        tm = getattr(self.text_encoder, "text_model", self.text_encoder)  # transformers <5 nests it
        h = tm.embeddings(inputs_embeds=seq)  # adds position embeddings
        mask = create_causal_mask(**_causal_mask_args(create_causal_mask, tm.config, h))
        h = tm.encoder(inputs_embeds=h, attention_mask=mask, is_causal=True).last_hidden_state
        return tm.final_layer_norm(h)  # (B,L,D)

    def tokenize(self, prompts: list[str]) -> list[list[int]]:
        """Prompt -> content token ids (no SOS/EOS), truncated to the context with a warning."""
        out = []
        limit = self.context_length - 2
        for p in prompts:
            ids = self.tokenizer(p, add_special_tokens=False).input_ids
            if len(ids) > limit:
                warnings.warn(f"prompt truncated: {len(ids) - limit} of {len(ids)} tokens dropped ({p[:40]!r}...)")
                ids = ids[:limit]
            out.append(ids)
        return out

    def text_states_from_ids(self, ids: list[list[int]]) -> torch.Tensor:
        """States (B, L, D) for lists of content ids of any lengths: SOS, ids, EOS, then the tokenizer's pad
        token (EOS for CLIP / SD 1.x, ``!`` for SD 2.x), exactly as the tokenizer pads ordinary text."""
        length, table = self.context_length, self.token_embedding
        full = torch.full((len(ids), length), self.tokenizer.pad_token_id, dtype=torch.long)  # built on the CPU
        full[:, 0] = self.tokenizer.bos_token_id
        for i, row in enumerate(ids):
            if len(row) > length - 2:
                raise ValueError(f"{len(row)} tokens do not fit the decoder's context of {length}")
            full[i, 1 : 1 + len(row)] = torch.tensor(row, dtype=torch.long)
            full[i, 1 + len(row)] = self.tokenizer.eos_token_id
        return self._encode_embeds(F.embedding(full.to(table.device), table))  # one lookup: one (sparse-row) gradient

    def text_states(self, prompts: list[str]) -> torch.Tensor:
        return self.text_states_from_ids(self.tokenize(prompts))


def _causal_mask_args(create_causal_mask, config, h: torch.Tensor) -> dict:
    """Keyword arguments for ``transformers.masking_utils.create_causal_mask`` in the installed version
    (pinned 5.24 names them ``inputs_embeds`` and ``cache``; earlier 5.x ``input_embeds``,
    ``past_key_values`` and ``cache_position``): no cache, the whole sequence."""
    params = _parameter_names(create_causal_mask)
    args = {"config": config, "attention_mask": None}
    args["inputs_embeds" if "inputs_embeds" in params else "input_embeds"] = h
    args["cache" if "cache" in params else "past_key_values"] = None
    if "cache_position" in params:
        args["cache_position"] = torch.arange(h.shape[1], device=h.device)
    return args


@functools.cache
def _parameter_names(fn) -> frozenset[str]:
    """``fn``'s parameter names, read once (the text path runs every training step)."""
    return frozenset(inspect.signature(fn).parameters)
