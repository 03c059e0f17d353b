"""De-Diffusion: image -> encoder -> Gumbel text head -> frozen text-to-image decoder.

``loss, logs = model(images, tau, t, noise)`` is the whole training objective
(paper, Sec. 3): the frozen decoder's own denoising loss on the input image,
conditioned on the encoder's (relaxed) text. ``model.texts(images)`` is the
inference path: argmax tokens, decoded to plain words.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from dediffusion.checkpoint import load_state, load_tensors, read_json, safe_child, save_tensors, write_json
from dediffusion.config import from_dict, to_dict
from dediffusion.data.world.scenes import caption_bigrams, caption_starts, caption_trigrams, vocabulary_words
from dediffusion.model.decoders import StableDiffusionOptions, fingerprint, freeze, is_diffusers_ref, load_decoder
from dediffusion.model.encoder import EncoderConfig, ImageEncoder
from dediffusion.model.synthesis import pick_lengths
from dediffusion.pretrained import SHIPPED_PREFIX, is_hub_id, resolve, resolve_in
from dediffusion.model.text_head import TextHead, TextHeadConfig, batch_sameness, bigram_nll, collision_rate, \
    fuse_with_lm
from dediffusion.model.tokenizer import allowed_ids, decode_ids


@dataclass(frozen=True)
class DeDiffusionConfig:
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: TextHeadConfig = field(default_factory=TextHeadConfig)
    allow_words: tuple[str, ...] = ()  # for head.vocab == "allow_list"
    # the decoder trained against: "shipped:NAME", a path inside this folder, a hub id, or (recorded
    # only, loaded only when given again explicitly) the absolute path of a local Stable Diffusion folder
    decoder_path: str = ""
    decoder_sha256: str = ""  # fingerprint of the decoder weights the encoder was trained against
    train_seed: int = 0  # scene stream used for training; evaluation must use another
    sd: StableDiffusionOptions = field(default_factory=StableDiffusionOptions)  # when the decoder is Stable Diffusion


class DeDiffusion(nn.Module):
    def __init__(self, cfg: DeDiffusionConfig, decoder):
        super().__init__()
        self.cfg = cfg
        self.decoder = decoder
        freeze(decoder)
        vocab = allowed_ids(decoder.tokenizer, cfg.head.vocab, list(cfg.allow_words))
        self.encoder = ImageEncoder(cfg.encoder, resolution=getattr(decoder, "resolution", 16))
        self.head = TextHead(cfg.encoder.width, vocab, cfg.head)
        # log P(next | previous) over the head's words (A, A) when bigram_weight > 0: built on first use
        self.register_buffer("text_prior", None, persistent=False)
        self.register_buffer("caption_lm", None, persistent=False)  # (A, A, A) for head.lm_fusion: built on first use
        self.register_buffer("caption_start", None, persistent=False)  # (A, A): how captions open

    def train(self, mode: bool = True):
        super().train(mode)
        self.decoder.eval()  # frozen: dropout etc. stay off
        return self

    # --- named stages --------------------------------------------------------------
    def forward_encoder(self, images: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B,3,H,W) in [0,1] -> logits (B, N, A) over the allowed vocabulary.

        ``features``: the frozen backbone's output for ``images`` when already known (``train/feature_cache.py``).
        """
        return self.head(self.encoder(images, features))

    def forward_weights(self, logits: torch.Tensor, tau: float | None, generator=None) -> torch.Tensor:
        """Logits -> (relaxed) one-hot words (B, N, A); ``tau=None`` gives the hard argmax words."""
        return self.head.one_hot(logits) if tau is None else self.head.sample(logits, tau, generator)

    def forward_tokens(self, logits: torch.Tensor, tau: float | None, generator=None) -> torch.Tensor:
        """Logits -> token vectors (B, N, D); ``tau=None`` gives the hard argmax tokens."""
        return self.head.embed(self.forward_weights(logits, tau, generator), self.decoder.token_embedding)

    def forward_loss(self, images, token_vectors, t, noise, lengths=None) -> torch.Tensor:
        cond = self.decoder.text_states_from_embeds(token_vectors, lengths)  # (B,L,D)
        return self.decoder.loss(images, cond, t, noise).mean()

    def forward(self, images, tau: float, t, noise, generator=None, lengths=None, features=None):
        """Training objective: ``(loss, logs)`` for images (B,3,H,W), noise levels t (B,) and noise.

        ``lengths`` (B,): TailDrop - the decoder sees only the first ``lengths[i]`` tokens of image i.
        ``features``: the frozen backbone's output for ``images``, if cached (see ``forward_encoder``).
        """
        logits = self.forward_encoder(images, features)
        weights = self.forward_weights(logits, tau, generator)
        denoise = self.forward_loss(images, self.head.embed(weights, self.decoder.token_embedding), t, noise, lengths)
        repeat = collision_rate(logits).mean()  # (), logged
        sameness = batch_sameness(logits)  # ()
        loss = denoise + self.cfg.head.diversity_weight * sameness
        extra = {}
        if self.cfg.head.bigram_weight:
            if self.text_prior is None:
                self.text_prior = caption_prior(self).to(weights.device)
            extra["bigram"] = bigram_nll(weights, self.text_prior)  # the emitted (straight-through) words
            loss = loss + self.cfg.head.bigram_weight * extra["bigram"]
        with torch.no_grad():
            ids = logits.argmax(-1)  # (B,N)
            distinct = len({tuple(r) for r in ids.tolist()}) / len(ids)
            probs = logits.float().softmax(-1)
            entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1).mean()
        return loss, {"loss": denoise.item(), "repeat": repeat.item(), "same": sameness.item(), "distinct": distinct,
                      "entropy": entropy.item(), "tau": tau, **{k: v.item() for k, v in extra.items()}}

    # --- inference -------------------------------------------------------------------
    @torch.no_grad()
    def token_ids(self, images: torch.Tensor) -> torch.Tensor:
        """Hard vocabulary ids (B, K): at every position the argmax, or the seeded draw (``head.inference``);
        the first K = ``head.inference_tokens`` positions (0: all N). With ``head.lm_fusion`` > 0 the K words
        are instead the sequence that best fits the logits and a caption language model together."""
        logits, k = self.forward_encoder(images), self.cfg.head.inference_tokens or None
        if not self.cfg.head.lm_fusion:
            return self.head.hard_ids(logits)[:, :k]
        if self.caption_lm is None:
            self.caption_lm, self.caption_start = (x.to(logits.device) for x in caption_language_model(self))
        words = fuse_with_lm(logits[:, :k].float().log_softmax(-1), self.caption_lm, self.cfg.head.lm_fusion,
                             self.caption_start)
        return self.head.allowed_ids[words]

    @torch.no_grad()
    def texts(self, images: torch.Tensor) -> list[str]:
        """The texts the decoder reads; with ``head.adaptive_length`` each is the prefix of its K tokens the frozen
        decoder picks (``synthesis.pick_lengths``: K is then a budget)."""
        ids = self.token_ids(images).tolist()  # lists: no per-id tensor ops
        if self.cfg.head.adaptive_length:
            ids = pick_lengths(self.decoder, images, ids, lambda row: decode_ids(self.decoder.tokenizer, row))
        return [decode_ids(self.decoder.tokenizer, row) for row in ids]

    def set_inference(self, **changes) -> "DeDiffusion":
        """Change inference settings of the head (``inference``, ``sample_temperature``, ``inference_tokens``, ...).

        ``inference_tokens=K`` keeps the first K tokens: with a TailDrop-trained encoder the first tokens
        carry the most, so one model serves any budget K <= N.
        """
        k = changes.get("inference_tokens", 0)
        if not 0 <= k <= self.cfg.encoder.num_tokens:
            raise ValueError(f"--tokens {k}: this encoder writes {self.cfg.encoder.num_tokens} tokens; "
                             f"choose 1..{self.cfg.encoder.num_tokens}")
        head = dataclasses.replace(self.cfg.head, **changes)
        self.cfg = dataclasses.replace(self.cfg, head=head)
        self.head.cfg = head
        return self

    # --- checkpoints -----------------------------------------------------------------
    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("decoder.")}

    def save(self, folder, dtype: torch.dtype = torch.float16, weights: dict | None = None) -> None:
        """``encoder.safetensors`` (encoder + head, decoder excluded) + ``encoder.json``."""
        save_tensors(safe_child(folder, "encoder.safetensors"), weights or self.trainable_state(), dtype=dtype)
        write_json(safe_child(folder, "encoder.json"), {"kind": "dediffusion", "config": to_dict(self.cfg)})


def load_config(folder) -> DeDiffusionConfig:
    meta = read_json(safe_child(folder, "encoder.json"))
    return from_dict(DeDiffusionConfig, meta.get("config", {}), where=f"{folder}/encoder.json:config")


def head_words(model: DeDiffusion) -> list[str]:
    """The words the head can emit, in its order."""
    return [decode_ids(model.decoder.tokenizer, [i]) for i in model.head.allowed_ids.tolist()]


def words_outside_captions(model: DeDiffusion) -> list[str]:
    """The head's words that the embedded world's captions never use (empty: caption statistics cover it)."""
    return sorted(set(head_words(model)) - set(vocabulary_words()))


def caption_prior(model: DeDiffusion, order: int = 2) -> torch.Tensor:
    """The caption bigram table over the head's words, for ``head.bigram_weight`` (``order`` 2), or the
    caption trigram language model of ``head.lm_fusion`` (3); embedded world only."""
    words, unknown = head_words(model), words_outside_captions(model)
    if unknown:
        what = "head.bigram_weight" if order == 2 else "head.lm_fusion"
        raise ValueError(f"{what} counts words in the embedded world's captions; this head emits words they "
                         f"never use ({', '.join(unknown[:5])}): set {what}=0")
    if order == 3:
        return torch.from_numpy(caption_trigrams(words, wrap=True)).float()
    return torch.from_numpy(caption_bigrams(words, wrap=model.cfg.head.bigram_wrap)).float()


def caption_language_model(model: DeDiffusion) -> tuple[torch.Tensor, torch.Tensor]:
    """The language model of ``head.lm_fusion``: (trigram (A, A, A), start (A, A)) over the head's words."""
    return caption_prior(model, order=3), torch.from_numpy(caption_starts(head_words(model))).float()


def load_dediffusion(folder, decoder_folder=None, backbone: str | None = None) -> DeDiffusion:
    """Rebuild a trained De-Diffusion model from its folder; the decoder is the one it was trained
    against (``decoder_path`` in its config) unless ``decoder_folder`` is given.

    ``backbone`` (``hf:PATH_OR_ID``): where an ``hf:`` backbone's files are, instead of the location
    recorded in the config, which is used only if it is a hub id or inside ``folder``. A Stable
    Diffusion ``decoder_folder`` is checked against the recorded weights (``check_decoder_weights``).
    """
    folder = pathlib.Path(folder)
    cfg = load_config(folder)
    cfg = dataclasses.replace(cfg, encoder=dataclasses.replace(
        cfg.encoder, backbone=backbone_location(folder, cfg.encoder.backbone, backbone)))
    if decoder_folder:  # given by the user: any path, ``shipped:NAME`` or hub id
        decoder_folder = resolve(decoder_folder, "decoder")
        check_decoder_weights(cfg, decoder_folder)
    else:  # from the config: shipped, inside this folder, or a hub id; never a path outside it
        decoder_folder = resolve_in(folder, cfg.decoder_path, "decoder", "encoder.json: decoder_path", hub=True)
    decoder = load_decoder(decoder_folder, cfg.sd)
    model = DeDiffusion(cfg, decoder)
    weights = safe_child(folder, "encoder.safetensors")
    missing, unexpected = load_state(model, load_tensors(weights), weights, strict=False)
    bad = [k for k in missing if not k.startswith("decoder.")] + list(unexpected)
    if bad:
        raise ValueError(f"{folder}/encoder.safetensors does not match its config: {bad[:3]}")
    return model.eval()


def load_model(path=None, decoder=None, tokens: int | None = None, backbone: str | None = None,
               adaptive_length: bool = False) -> DeDiffusion:
    """``load_dediffusion`` of a folder, ``shipped:NAME`` or (None) the shipped encoder, as the commands load it:
    ``tokens`` emits only the first K tokens (``--tokens``, TailDrop-trained encoders), ``adaptive_length`` lets
    the decoder cut each text shorter (``--adaptive-length``), ``backbone`` says where its ``hf:`` backbone is
    (``--backbone``)."""
    model = load_dediffusion(resolve(path, "encoder"), decoder_folder=decoder, backbone=backbone)
    if adaptive_length:
        model.set_inference(adaptive_length=True)
    return model.set_inference(inference_tokens=tokens) if tokens else model


def backbone_location(folder, recorded: str, given: str | None = None) -> str:
    """The backbone to build: ``given`` (the location of an ``hf:`` backbone), else the recorded one; a
    recorded ``hf:`` location is used only as a hub id or a path inside ``folder`` (like ``decoder_path``)."""
    hf = "hf:"
    if given:
        if not (given.startswith(hf) and recorded.startswith(hf)):
            raise ValueError(f"--backbone {given}: this encoder's backbone is {recorded!r}; only where an hf: "
                             "backbone's files are can be given (--backbone hf:PATH_OR_ID)")
        return given
    if not recorded.startswith(hf):
        return recorded
    found = resolve_in(folder, recorded[len(hf):], "backbone", "encoder.json: encoder.backbone", hub=True,
                       flag="--backbone hf:PATH")
    return hf + str(found)


def check_decoder_weights(cfg: DeDiffusionConfig, decoder) -> None:
    """A Stable Diffusion decoder given for an encoder trained against Stable Diffusion: the SHA-256 of its
    weights must equal the recorded ``decoder_sha256`` when it is the recorded folder or hub id (an error
    otherwise); another reference with other weights (transfer to another decoder) gets a warning."""
    recorded = cfg.decoder_path
    trained_on_sd = os.path.isabs(recorded) or is_hub_id(recorded)  # built-in: "shipped:NAME" or "decoder"
    if not cfg.decoder_sha256 or recorded.startswith(SHIPPED_PREFIX) or not trained_on_sd \
            or not is_diffusers_ref(decoder):
        return
    sha = fingerprint(decoder)
    if not sha or sha == cfg.decoder_sha256:
        return
    message = (f"{decoder}: its weights (SHA-256 {sha[:12]}...) are not the ones this encoder was trained against "
               f"({recorded}, SHA-256 {cfg.decoder_sha256[:12]}...)")
    if recorded in (str(decoder), os.path.abspath(str(decoder))):
        raise ValueError(f"{message}: the model changed since training; restore its weights or retrain the encoder")
    warnings.warn(f"{message}; using them (another decoder: the texts may not transfer)", stacklevel=3)
