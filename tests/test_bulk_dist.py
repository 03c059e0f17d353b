"""Bulk encoding from shards and as several processes (torchrun): part files, merge, resume."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dediffusion.bulk.stream import read_jsonl
from dediffusion.bulk.ranked import encode_ranked, merge_parts, part_files, part_path
from dediffusion.cli.main import main

from .bulk_helpers import FakeModel, items
from .data_helpers import scene_members, write_scenes, write_shard

ROOT = Path(__file__).resolve().parents[1]


def texts(path) -> dict[str, str]:
    rows = list(read_jsonl(path))
    assert len(rows) == len({r["image"] for r in rows})  # every key once
    return {r["image"]: r["text"] for r in rows}


def test_ranks_split_the_items_and_merge_resumably(tmp_path):
    out = tmp_path / "o.jsonl"
    encode_ranked(FakeModel(), items(7), out, 2, rank=0, world=1)
    single = texts(out)
    out.unlink()
    summaries = [encode_ranked(FakeModel(), items(7), out, 2, rank=r, world=3) for r in range(3)]
    assert [s.ok for s in summaries] == [3, 2, 2] and not out.exists()
    assert [p.name for p in part_files(out)] == ["o.rank0.jsonl", "o.rank1.jsonl", "o.rank2.jsonl"]
    assert set(texts(part_path(out, 1))) == {"img1", "img4"}
    with open(part_path(out, 2), "ab") as f:
        f.write(b'{"image": "img9", "te')  # a rank killed mid-write
    assert merge_parts(out) == 7 and texts(out) == single and part_files(out) == []
    # a rerun with another number of processes finds everything done, in the output or in leftover parts
    part_path(out, 5).write_text('{"image": "img7", "text": "v0.070"}\n')
    again = [encode_ranked(FakeModel(), items(8), out, 2, rank=r, world=2) for r in range(2)]
    assert sum(s.ok for s in again) == 0 and sum(s.skipped for s in again) == 8
    assert merge_parts(out) == 1 and merge_parts(out) == 0 and len(texts(out)) == 8


def test_encode_cli_reads_shards_keyed_by_member_and_resumes(tiny_model_dir, tmp_path, capsys):
    shard = write_shard(tmp_path / "a.tar", scene_members(3))
    out = tmp_path / "c.jsonl"
    assert main(["encode", str(shard), "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    assert list(texts(out)) == [f"{shard}/s{i:02d}.png" for i in range(3)]
    assert main(["encode", str(shard), "--model", str(tiny_model_dir), "--out", str(out)]) == 0
    assert "encoded 0 image(s), 0 failed, 3 already done (skipped)" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory, tiny_decoder_dir):
    from dediffusion.train.fit_encoder import train_encoder

    from .conftest import tiny_train_cfg

    folder = tmp_path_factory.mktemp("tiny_encoder")
    train_encoder(tiny_train_cfg(steps=1), folder, tiny_decoder_dir, progress=False)
    return folder


def _torchrun_encode(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "dediffusion.cli", "encode", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)


def test_two_processes_give_the_single_process_output_and_rerun_skips_everything(tiny_model_dir, tmp_path):
    write_scenes(tmp_path / "imgs", 20)
    write_shard(tmp_path / "imgs" / "d9.tar", scene_members(3))  # shards and folders in one run
    common = [str(tmp_path / "imgs"), "--model", str(tiny_model_dir), "--batch-size", "4"]
    assert main(["encode", *common, "--out", str(tmp_path / "single.jsonl")]) == 0
    single = texts(tmp_path / "single.jsonl")
    assert len(single) == 23

    out = tmp_path / "multi.jsonl"
    proc = _torchrun_encode([*common, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert texts(out) == single and part_files(out) == []
    assert "rank 0: encoded 12 image(s)" in proc.stderr and "rank 1: encoded 11 image(s)" in proc.stderr
    assert "merged 23 record(s)" in proc.stderr

    again = _torchrun_encode([*common, "--out", str(out)])
    assert again.returncode == 0, again.stderr[-3000:]
    for rank, n in ((0, 12), (1, 11)):
        assert f"rank {rank}: encoded 0 image(s), 0 failed, {n} already done (skipped)" in again.stderr
    assert texts(out) == single and "merged" not in again.stderr
