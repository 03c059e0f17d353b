import json
from dataclasses import replace

import pytest
import torch

from dediffusion.checkpoint import load_tensors
from dediffusion.model.decoders.builtin import BuiltinDecoder
from dediffusion.train.fit_decoder import DecoderTrainConfig, pretrain_decoder
from dediffusion.train.fit_encoder import train_encoder

from .conftest import TINY_DECODER
from .conftest import tiny_train_cfg
from .train_helpers import same_tensors, saved_state


def test_encoder_resume_continues_exactly(tiny_decoder_dir, tmp_path):
    cfg = tiny_train_cfg(steps=4)
    train_encoder(cfg, tmp_path / "straight", tiny_decoder_dir, progress=False)
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, stop_at=2)
    mid = saved_state(tmp_path / "split")
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, resume=True)
    a, b = saved_state(tmp_path / "straight"), saved_state(tmp_path / "split")
    assert same_tensors(a, b)
    assert not same_tensors(a, mid)  # the resumed run did train further
    # the training curve: a row per checkpoint (every 2 steps here), the same whether or not the run was split
    rows = [[{k: v for k, v in json.loads(r).items() if k != "seconds"}
             for r in (tmp_path / f / "metrics.jsonl").read_text().splitlines()] for f in ("straight", "split")]
    assert [r["step"] for r in rows[0]] == [2, 4] and rows[0] == rows[1]
    assert all(r["lr"] > 0 and r["loss"] > 0 for r in rows[0])


def test_encoder_world_rendered_ahead_by_workers_trains_identically(tiny_decoder_dir, tmp_path):
    """data.workers=2 on the embedded world (DataLoader processes render scenes ahead, as beside a GPU)
    is the same run, also when stopped and resumed midway."""
    cfg = tiny_train_cfg(steps=4)
    train_encoder(cfg, tmp_path / "inline", tiny_decoder_dir, progress=False)
    workers = replace(cfg, data=replace(cfg.data, workers=2))
    train_encoder(workers, tmp_path / "workers", tiny_decoder_dir, progress=False, stop_at=2)
    train_encoder(workers, tmp_path / "workers", tiny_decoder_dir, progress=False, resume=True)
    for group in ("params", "optimizer"):
        assert same_tensors(saved_state(tmp_path / "inline", group), saved_state(tmp_path / "workers", group)), group


def test_encoder_init_from_starts_at_the_saved_weights(tiny_decoder_dir, tmp_path):
    cfg = tiny_train_cfg(steps=2)
    train_encoder(cfg, tmp_path / "first", tiny_decoder_dir, progress=False)
    saved = load_tensors(tmp_path / "first" / "encoder.safetensors", None)
    still = replace(cfg, lr=0.0, steps=1, warmup=1, init_from=str(tmp_path / "first"))
    model = train_encoder(still, tmp_path / "still", tiny_decoder_dir, progress=False)
    assert same_tensors(model.trainable_state(), saved)  # lr 0: exactly the starting weights
    fresh = train_encoder(replace(still, init_from=""), tmp_path / "fresh", tiny_decoder_dir, progress=False)
    assert not same_tensors(fresh.trainable_state(), saved)
    other = replace(cfg, model=replace(cfg.model, encoder=replace(cfg.model.encoder, num_tokens=3)),
                    init_from=str(tmp_path / "first"))
    with pytest.raises(ValueError, match="init_from"):
        train_encoder(other, tmp_path / "bad", tiny_decoder_dir, progress=False)


def test_prefetched_world_refuses_to_go_backwards():
    from dediffusion.train.sources import PrefetchWorldSource, WorldSource

    source = PrefetchWorldSource(4, 16, 0, workers=1, start=2, steps=5)
    assert torch.equal(source.images(3, 1, 2), WorldSource(4, 16, 0).images(3, 1, 2))  # skips step 2
    with pytest.raises(ValueError, match="backwards"):
        source.images(2)


def test_decoder_resume_continues_exactly(tmp_path):
    cfg = DecoderTrainConfig(decoder=TINY_DECODER, steps=4, batch_size=4, checkpoint_every=10)
    pretrain_decoder(cfg, tmp_path / "straight", progress=False)
    pretrain_decoder(cfg, tmp_path / "split", progress=False, stop_at=2)
    pretrain_decoder(cfg, tmp_path / "split", progress=False, resume=True)
    for group in ("params", "ema", "optimizer"):
        assert same_tensors(saved_state(tmp_path / "straight", group), saved_state(tmp_path / "split", group)), group
    a = load_tensors(tmp_path / "straight" / "decoder.safetensors", None)
    assert same_tensors(a, load_tensors(tmp_path / "split" / "decoder.safetensors", None))


def test_decoder_batches_from_worker_processes_train_identically(tmp_path):
    """workers=2 (a DataLoader building batches ahead, as beside a GPU) is the same run, resumed midway."""
    cfg = DecoderTrainConfig(decoder=TINY_DECODER, steps=4, batch_size=4, checkpoint_every=10)
    pretrain_decoder(cfg, tmp_path / "inline", progress=False)
    workers = replace(cfg, workers=2)
    pretrain_decoder(workers, tmp_path / "workers", progress=False, stop_at=2)
    pretrain_decoder(workers, tmp_path / "workers", progress=False, resume=True)
    for group in ("params", "ema", "optimizer"):
        assert same_tensors(saved_state(tmp_path / "inline", group), saved_state(tmp_path / "workers", group)), group


def test_decoder_init_from_starts_at_the_saved_weights(tmp_path):
    start = tmp_path / "start"
    BuiltinDecoder(replace(TINY_DECODER, seed=5)).save(start, dtype=torch.float32)  # other weights, same shapes
    cfg = DecoderTrainConfig(decoder=TINY_DECODER, steps=1, batch_size=2, lr=0.0, warmup=1, init_from=str(start))
    pretrain_decoder(cfg, tmp_path / "ft", progress=False)
    saved = load_tensors(start / "decoder.safetensors", None)
    assert same_tensors(saved_state(tmp_path / "ft", "params"), saved)  # lr 0: still exactly the starting weights
    fresh = DecoderTrainConfig(decoder=TINY_DECODER, steps=1, batch_size=2, lr=0.0, warmup=1)
    pretrain_decoder(fresh, tmp_path / "fresh", progress=False)
    assert not same_tensors(saved_state(tmp_path / "fresh", "params"), saved)
    cont = DecoderTrainConfig(decoder=TINY_DECODER, steps=1, batch_size=2, lr=0.0, warmup=1,
                              init_from=str(tmp_path / "fresh"))  # a training folder: its raw parameters
    pretrain_decoder(cont, tmp_path / "cont", progress=False)
    assert same_tensors(saved_state(tmp_path / "cont", "params"), saved_state(tmp_path / "fresh", "params"))
    with pytest.raises(ValueError, match="init_from"):
        other = replace(TINY_DECODER, unet_channels=(8, 8))
        pretrain_decoder(replace(cfg, decoder=other), tmp_path / "bad", progress=False)
