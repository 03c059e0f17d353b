"""Data at scale: WebDataset shards as items, the seeded shuffled training stream, exact resume on folders."""
import tarfile

import pytest
import torch

from dediffusion.data.images import load_image
from dediffusion.data.shards import data_items
from dediffusion.train.sources import DataConfig, FolderSource, ShuffledStream
from dediffusion.train.fit_encoder import train_encoder

from .conftest import tiny_train_cfg
from .data_helpers import scene_members, scene_png, write_scenes, write_shard
from .train_helpers import same_tensors, saved_state


@pytest.mark.parametrize("name,mode", [("a.tar", "w"), ("a.tar.gz", "w:gz")])
def test_shard_samples_are_items_keyed_shard_slash_member_and_load_like_files(tmp_path, name, mode):
    shard = write_shard(tmp_path / name, scene_members(3))
    for i in range(3):
        (tmp_path / f"s{i:02d}.png").write_bytes(scene_png(i))
    items = list(data_items([shard], 8))  # loaders still work after the iteration is over
    assert [k for k, _ in items] == [f"{shard}/s{i:02d}.png" for i in range(3)]
    for i, (_, load) in enumerate(items):
        assert torch.equal(load(), load_image(tmp_path / f"s{i:02d}.png", 8))


def test_broken_shards_and_samples_become_error_items(tmp_path):
    members = scene_members(3)
    members.insert(2, ("notes.txt", b"no image here"))
    whole = write_shard(tmp_path / "whole.tar", members).read_bytes()
    with tarfile.open(tmp_path / "whole.tar") as tf:
        start, header = tf.getmember("s01.png").offset_data, tf.getmember("s02.png").offset
    (tmp_path / "cut.tar").write_bytes(whole[:start + 100])  # inside the second image's data
    (tmp_path / "fake.tar").write_bytes(b"not a tar at all" * 64)

    def outcome(path):
        out = []
        for key, load in data_items([path], 8):
            try:
                out.append((key.split("/")[-1], tuple(load().shape)))
            except Exception as e:  # noqa: BLE001 - must be ImageInputError, checked below
                assert type(e).__name__ == "ImageInputError"
                out.append((key.split("/")[-1], str(e).split(": ", 1)[1]))
        return out

    assert outcome(tmp_path / "whole.tar") == [("s00.png", (3, 8, 8)), ("notes", "no image in sample (txt)"),
                                               ("s01.png", (3, 8, 8)), ("s02.png", (3, 8, 8))]
    cut = outcome(tmp_path / "cut.tar")
    assert cut[0] == ("s00.png", (3, 8, 8)) and "truncated tar member" in cut[2][1] and "truncated" in cut[-1][1]
    (tmp_path / "cut2.tar").write_bytes(whole[:header + 100])  # cut inside a header: tarfile says "end"
    assert "no end-of-archive marker" in outcome(tmp_path / "cut2.tar")[-1][1]
    assert outcome(tmp_path / "fake.tar") == [("fake.tar", "not a readable tar file")]


def test_folders_are_walked_for_images_and_shards(tmp_path):
    write_scenes(tmp_path / "imgs", 3)
    (tmp_path / "imgs" / "d9").mkdir()
    write_shard(tmp_path / "imgs" / "d9" / "x.tar", scene_members(2))
    keys = [k for k, _ in data_items([tmp_path / "imgs"], 8, sort=True)]
    assert [k.split("imgs/")[1] for k in keys] == ["d0/000.png", "d0/001.png", "d0/002.png", "d9/x.tar/s00.png",
                                                   "d9/x.tar/s01.png"]


def fake_epoch(n: int, pulled: list | None = None):
    def open_epoch(order):
        for p in order:
            for i in range(n):
                if pulled is not None:
                    pulled.append(1)
                yield f"{p}/{i}", (lambda: None)
    return open_epoch


def keys(items):
    return [k for k, _ in items]


@pytest.mark.parametrize("buffer", [1, 3, 100])
def test_every_epoch_is_a_seeded_permutation(buffer):
    def stream(seed):
        return ShuffledStream(("a", "b"), fake_epoch(5), seed, buffer)

    drawn = keys(stream(0).take(30))
    epochs = [drawn[i:i + 10] for i in range(0, 30, 10)]
    assert all(sorted(e) == sorted(epochs[0]) and len(set(e)) == 10 for e in epochs)
    assert drawn == keys(stream(0).take(30))  # a function of the seed
    assert drawn != keys(stream(1).take(30))
    if buffer > 1:
        assert len({tuple(e) for e in epochs}) == 3  # each epoch in its own order


def test_skip_equals_drawing_and_jumps_whole_epochs():
    for n in (0, 4, 10, 11, 37):
        a = ShuffledStream(("a", "b"), fake_epoch(5), 0, 3)
        b = ShuffledStream(("a", "b"), fake_epoch(5), 0, 3)
        b.take(n)
        a.skip(n)
        assert a.draws == b.draws == n and keys(a.take(12)) == keys(b.take(12))
    pulled = []
    far = ShuffledStream(("a",), fake_epoch(10, pulled), 0, 4)
    far.skip(1_000_003)
    assert len(pulled) <= 3 * 10 and far.draws == 1_000_003  # listing read at most 3 times, whatever the step
    ref = ShuffledStream(("a",), fake_epoch(10), 0, 4)
    ref._start(100_000)  # the epoch 1,000,003 draws fall in, drawn the slow way
    ref.take(3)
    assert far.epoch == 100_000 and keys(far.take(12)) == keys(ref.take(12))


def test_memory_is_the_buffer_not_the_dataset():
    pulled = []
    s = ShuffledStream(("a",), fake_epoch(10_000, pulled), 0, 50)
    s.take(7)
    assert len(pulled) == 50 + 7  # nothing read ahead beyond the buffer


def test_micro_batches_are_slices_of_the_global_batch_and_bad_images_keep_the_position(tmp_path):
    paths = write_scenes(tmp_path / "good", 10)
    bad_dir = tmp_path / "bad"
    for p in paths:
        target = bad_dir / p.relative_to(tmp_path / "good")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(p.read_bytes() if p.name not in ("003.png", "007.png") else b"broken")
    cfg = DataConfig(paths=(str(tmp_path / "good"),), shuffle_buffer=4)
    threads = DataConfig(paths=cfg.paths, shuffle_buffer=4, workers=2)  # decoding in threads changes nothing
    whole, halves = FolderSource(cfg, 4, 8, seed=5), FolderSource(threads, 4, 8, seed=5)
    errors = []
    bad = FolderSource(DataConfig(paths=(str(bad_dir),), shuffle_buffer=4), 4, 8, seed=5, on_error=errors.append)
    for step in range(6):  # 24 draws: over two epochs of 10
        full = whole.images(step)
        assert torch.equal(torch.cat([halves.images(step, p, 2) for p in range(2)]), full)
        got = torch.cat([bad.images(step, p, 2) for p in range(2)])
        names = [k.split("/")[-1] for k, _ in bad.batch_items(step)]
        assert names == [k.split("/")[-1] for k, _ in whole.batch_items(step)]  # same position
        for i, name in enumerate(names):
            if name in ("003.png", "007.png"):  # replaced by an image of its own half
                half = range(i // 2 * 2, i // 2 * 2 + 2)
                assert any(torch.equal(got[i], full[j]) for j in half if names[j] not in ("003.png", "007.png"))
            else:
                assert torch.equal(got[i], full[i])
    assert len(errors) == 2 and all("replaced by another image" in e for e in errors)  # once per file


def test_training_on_a_folder_resumes_exactly_across_epochs(tiny_decoder_dir, tmp_path):
    write_scenes(tmp_path / "imgs", 6)
    cfg = tiny_train_cfg(steps=4, data=DataConfig(paths=(str(tmp_path / "imgs"),), shuffle_buffer=3))  # 16 draws
    train_encoder(cfg, tmp_path / "straight", tiny_decoder_dir, progress=False)
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, stop_at=3)
    mid = saved_state(tmp_path / "split")
    train_encoder(cfg, tmp_path / "split", tiny_decoder_dir, progress=False, resume=True)
    assert same_tensors(saved_state(tmp_path / "straight"), saved_state(tmp_path / "split"))
    assert not same_tensors(mid, saved_state(tmp_path / "split"))
    world = train_encoder(tiny_train_cfg(steps=1), tmp_path / "world", tiny_decoder_dir, progress=False)
    folder = train_encoder(tiny_train_cfg(steps=1, data=cfg.data), tmp_path / "f", tiny_decoder_dir, progress=False)
    assert not torch.equal(world.encoder.pooler.queries, folder.encoder.pooler.queries)  # the data is used


def test_train_cli_takes_data_and_resume_insists_on_the_same_data(tmp_path, capsys):
    from dediffusion.checkpoint import read_json
    from dediffusion.cli.main import main

    shard = write_shard(tmp_path / "a.tar", scene_members(3))
    run = ["train", "--out", str(tmp_path / "run"), "--set", "batch_size=2", "--set", "warmup=1"]
    assert main([*run, "--data", str(shard), "--set", "steps=1"]) == 0
    assert read_json(tmp_path / "run" / "train_config.json")["config"]["data"]["paths"] == [str(shard)]
    assert main([*run, "--set", "steps=2", "--resume"]) == 2
    assert "this run was trained on --data" in capsys.readouterr().err
    assert main([*run, "--data", str(shard), "--set", "steps=2", "--resume"]) == 0
    assert read_json(tmp_path / "run" / "train_state.json")["step"] == 2
