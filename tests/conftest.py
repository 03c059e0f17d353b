"""Shared tiny configs, checkpoints and inputs: everything the tests train or load is built here, in seconds.

Plain helpers (``TINY_DECODER``, ``TINY``, ``tiny_train_cfg``, ``TINY_TRAIN_ARGS``) are imported with
``from .conftest import ...``; the checkpoints (decoder, encoder, LLM) are session fixtures (built once per test
run); the loaded tiny model and the scene PNGs are module fixtures (built once per test module).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

from dediffusion.data.world.scenes import vocabulary_words  # noqa: E402
from dediffusion.model.autoencoder import DeDiffusionConfig  # noqa: E402
from dediffusion.model.decoders.builtin import BuiltinDecoder, BuiltinDecoderConfig  # noqa: E402
from dediffusion.model.encoder import EncoderConfig  # noqa: E402
from dediffusion.model.text_head import TextHeadConfig  # noqa: E402
from dediffusion.train.fit_encoder import EncoderTrainConfig  # noqa: E402

# the built-in decoder at 8x8 pixels, ~30K parameters
TINY_DECODER = BuiltinDecoderConfig(resolution=8, text_width=16, text_layers=1, text_heads=2,
                                    unet_channels=(8, 16), norm_groups=4, attention_heads=2)
# the same decoder as `dediffusion pretrain-decoder --set` overrides
TINY_DECODER_ARGS = ["--set", "decoder.resolution=8", "--set", "decoder.text_width=16",
                     "--set", "decoder.text_layers=1", "--set", "decoder.text_heads=2",
                     "--set", "decoder.unet_channels=[8,16]", "--set", "decoder.norm_groups=4",
                     "--set", "decoder.attention_heads=2"]

# a 6-token encoder over the world's words with a from-scratch CNN
TINY = DeDiffusionConfig(encoder=EncoderConfig(backbone="cnn", backbone_width=8, width=16, heads=2, blocks=1,
                                               num_tokens=6),
                         head=TextHeadConfig(vocab="allow_list"), allow_words=tuple(vocabulary_words()))
# a tiny encoder (the default recipe's head, TINY's shapes) as `dediffusion train --set` overrides
TINY_TRAIN_ARGS = ["--set", "model.encoder.backbone_width=8", "--set", "model.encoder.width=16",
                   "--set", "model.encoder.heads=2", "--set", "model.encoder.blocks=1",
                   "--set", "model.encoder.num_tokens=6", "--set", "batch_size=4", "--set", "checkpoint_every=2"]


def tiny_train_cfg(**kw) -> EncoderTrainConfig:
    """``EncoderTrainConfig`` for ``TINY`` at batch 4; keyword arguments override any field."""
    return EncoderTrainConfig(model=TINY, batch_size=4, checkpoint_every=2, **kw)


@pytest.fixture(scope="session")
def tiny_decoder_dir(tmp_path_factory):
    """A tiny random-config built-in decoder saved as a checkpoint folder (fp32)."""
    folder = tmp_path_factory.mktemp("tiny_decoder")
    BuiltinDecoder(TINY_DECODER).save(folder, dtype=torch.float32)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_decoder_dir, tmp_path_factory):
    """A training folder of the tiny encoder after 2 steps against ``tiny_decoder_dir`` (read-only: copy to change)."""
    from dediffusion.train.fit_encoder import train_encoder

    folder = tmp_path_factory.mktemp("tiny_encoder")
    train_encoder(tiny_train_cfg(steps=2), folder, tiny_decoder_dir, progress=False)
    return folder


@pytest.fixture(scope="session")
def tiny_llm_dir(tmp_path_factory):
    """A tiny random Llama and its byte-level tokenizer saved as a transformers folder (read-only)."""
    from .tiny_llm import save_tiny_llm

    return save_tiny_llm(tmp_path_factory.mktemp("tiny_llm"))


@pytest.fixture(scope="module")
def tiny_dediffusion(tiny_model_dir):
    """``tiny_model_dir`` loaded with ``load_dediffusion``, once per test module."""
    from dediffusion.model.autoencoder import load_dediffusion

    return load_dediffusion(tiny_model_dir)


@pytest.fixture(scope="module")
def scene_pngs():
    """Six 16-px world scenes as PNG bytes."""
    from dediffusion.data.world.batches import scenes
    from dediffusion.data.world.scenes import render

    from .data_helpers import png

    return [png(render(s, 16)) for s in scenes(5, 0, 6)]


@pytest.fixture()
def image_files(tmp_path):
    """(good, bad): three 16-px world scene PNGs; a text file named .jpg, an empty .png and a missing path."""
    from PIL import Image

    from dediffusion.data.world.batches import scenes
    from dediffusion.data.world.scenes import render

    good = []
    for i, s in enumerate(scenes(5, 0, 3)):
        p = tmp_path / f"scene{i}.png"
        Image.fromarray(render(s, 16)).save(p)
        good.append(p)
    bad_text = tmp_path / "notes.jpg"
    bad_text.write_text("this is not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    return good, [bad_text, empty, tmp_path / "missing.png"]
