import torch

from dediffusion.checkpoint import load_tensors
from dediffusion.train.decoder import DecoderTrainConfig, pretrain_decoder
from dediffusion.train.encoder import train_encoder
from dediffusion.train.loop import read_train_state

from .conftest import TINY_DECODER
from .test_autoencoder import tiny_train_cfg


def _state(folder, group="params"):
    return read_train_state(folder)[1][group]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_encoder_resume_continues_exactly(tiny_decoder_dir, tmp_path):
    cfg = tiny_train_cfg(steps=4)
    train_encoder(cfg, tmp_path / "straight", tiny_decoder_dir, progress=False)
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, stop_at=2)
    mid = _state(tmp_path / "split")
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, resume=True)
    a, b = _state(tmp_path / "straight"), _state(tmp_path / "split")
    assert _same(a, b)
    assert not _same(a, mid)  # the resumed run did train further


def test_decoder_resume_continues_exactly(tmp_path):
    cfg = DecoderTrainConfig(decoder=TINY_DECODER, steps=4, batch_size=4, checkpoint_every=10)
    pretrain_decoder(cfg, tmp_path / "straight", progress=False)
    pretrain_decoder(cfg, tmp_path / "split", progress=False, stop_at=2)
    pretrain_decoder(cfg, tmp_path / "split", progress=False, resume=True)
    for group in ("params", "ema", "optimizer"):
        assert _same(_state(tmp_path / "straight", group), _state(tmp_path / "split", group)), group
    a = load_tensors(tmp_path / "straight" / "decoder.safetensors", None)
    assert _same(a, load_tensors(tmp_path / "split" / "decoder.safetensors", None))
