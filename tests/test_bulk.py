"""Streaming encode to JSONL: batches are lazy, every batch is on disk, reruns resume, torn lines are repaired."""
import json

import pytest

from dediffusion.bulk.stream import JsonlSink, Summary, encode_stream, read_jsonl, repair_jsonl

from .bulk_helpers import FakeModel, items


def test_stream_writes_every_good_image_once_in_batches(tmp_path):
    model, errors = FakeModel(), []
    s = encode_stream(model, items(10, bad={3, 7}), tmp_path / "o.jsonl", batch_size=3,
                      on_error=lambda k, m: errors.append(k))
    rows = list(read_jsonl(tmp_path / "o.jsonl"))
    assert [r["image"] for r in rows] == [f"img{i}" for i in range(10) if i not in (3, 7)]
    assert rows[1]["text"] == "v0.010"
    assert (s.ok, s.failed, s.skipped) == (8, 2, 0) and errors == ["img3", "img7"]
    assert model.batches == [3, 3, 2]


def test_loading_is_lazy_one_batch_at_a_time(tmp_path):
    log, seen = [], []

    class Watcher(FakeModel):
        def texts(self, images):
            seen.append(len(log))  # images loaded so far when this batch is encoded
            return super().texts(images)

    encode_stream(Watcher(), items(9, log=log), tmp_path / "o.jsonl", batch_size=3)
    assert seen == [3, 6, 9]


def test_rerun_skips_what_is_done_and_retries_failures(tmp_path):
    out = tmp_path / "o.jsonl"
    encode_stream(FakeModel(), items(6, bad={2}), out, batch_size=4)
    log = []
    s = encode_stream(FakeModel(), items(8, log=log), out, batch_size=4)
    assert (s.ok, s.failed, s.skipped) == (3, 0, 5)
    assert log == [2, 6, 7]  # done images are not even read
    assert sorted(r["image"] for r in read_jsonl(out)) == sorted(f"img{i}" for i in range(8))


@pytest.mark.parametrize("tail", [b'{"image": "img9", "te', b'{"ima', b"\xff\xfe", b'{"image": "img9", "text": "x"}'])
def test_torn_last_line_is_ignored_then_repaired(tmp_path, tail):
    out = tmp_path / "o.jsonl"
    encode_stream(FakeModel(), items(3), out, batch_size=2)
    with open(out, "ab") as f:
        f.write(tail)  # what a kill in the middle of a write leaves
    assert [r["image"] for r in read_jsonl(out)] == ["img0", "img1", "img2"]  # reading never breaks
    s = encode_stream(FakeModel(), items(5), out, batch_size=2)
    assert s.skipped == 3 and s.ok == 2
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(x) for x in lines[:-1])
    assert [r["image"] for r in read_jsonl(out)] == [f"img{i}" for i in range(5)]


def test_repair_leaves_complete_files_alone(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"image": "a", "text": "b"}\n')
    assert repair_jsonl(out) == 0 and repair_jsonl(tmp_path / "missing.jsonl") == 0
    out.write_bytes(b"no newline at all")
    assert repair_jsonl(out) == len(b"no newline at all") and out.read_bytes() == b""


def test_corrupt_middle_lines_are_skipped_not_raised(tmp_path):
    out = tmp_path / "o.jsonl"
    out.write_bytes(b'{"image": "a", "text": "b"}\nnot json\n[1, 2]\n{"image": "c", "text": "d"}\n')
    assert JsonlSink(out).done == {"a", "c"}


def test_summary_line():
    assert Summary(3, 1).line() == "encoded 3 image(s), 1 failed"
    assert Summary(3, 0, 2).line("encoded").endswith("2 already done (skipped)")
