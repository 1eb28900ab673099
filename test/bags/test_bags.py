"""Bag writing and reading without a node: the procedural stream, both storages, the ground truth round
trip, real photos, and damaged bags (truncated mcap salvage, corrupt sqlite3, wrong and unknown types)."""

import os
import shutil

import numpy as np
import pytest
from mcap.reader import make_reader
from mcap.writer import CompressionType, Writer

from pmp_ros.bags.messages import BagTopics, deserialize, header_stamp, truth_from_message
from pmp_ros.bags.salvage import salvage_mcap
from pmp_ros.bags.storage import inspect_bag
from pmp_ros.bags.writer import main as write_bag_main
from pmp_ros.bags.writer import write_bag
from pmp_ros.data.photos import photo_stream
from pmp_ros.data.streams import SequenceConfig, procedural_stream
from pmp_ros.data.world import TabletopWorld

SMALL = SequenceConfig(width=96, height=72, seconds=0.3, instruction_seconds=0.1, scene_seconds=0.2)


def test_first_frame_of_a_scene_is_its_rendering_and_panning_keeps_truth_consistent():
    frames = list(procedural_stream(SMALL))
    assert len(frames) == SMALL.num_frames == 9
    scene = TabletopWorld(SMALL.width, SMALL.height, SMALL.world).render(SMALL.first_seed)
    assert np.array_equal(frames[0].rgb, scene.rgb) and np.array_equal(frames[0].instance, scene.instance)
    assert frames[6].instance is not None and not np.array_equal(frames[6].rgb, frames[0].rgb)  # next scene
    for frame in frames:
        ids = set(np.unique(frame.instance)) - {0}
        assert {o.id for o in frame.objects} == ids
        assert set(frame.target_ids) <= ids
        assert all(o.label in frame.prompts for o in frame.objects if o.id in frame.target_ids)
        # Depth exists where objects are (registered to the colour image).
        assert (frame.depth_mm[frame.instance > 0] > 0).mean() > 0.95
    assert len({f.instruction for f in frames}) > 1 and len({f.stamp_ns for f in frames}) == len(frames)


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_written_bag_reads_back_with_exact_ground_truth(tmp_path, storage):
    frames = list(procedural_stream(SMALL))
    assert write_bag(tmp_path / "bag", frames, storage) == len(frames)
    contents, source = inspect_bag(tmp_path / "bag", BagTopics())
    assert contents.problems == []
    assert contents.counts["image"] == contents.counts["gt"] == contents.counts["depth"] == len(frames)
    messages = list(source())
    truths = [truth_from_message(deserialize(m.data, m.msgtype)) for m in messages if m.role == "gt"]
    images = [m for m in messages if m.role == "image"]
    for frame, truth, image in zip(frames, truths, images, strict=True):
        assert header_stamp(image.data) == divmod(frame.stamp_ns, 10**9) and image.time_ns == frame.stamp_ns
        assert np.array_equal(truth.instance_image, frame.instance)
        assert truth.target_ids == frame.target_ids and truth.prompts == frame.prompts
        assert truth.centres == {o.id: o.centre for o in frame.objects}
    # Each frame's messages come before its image, the instruction only when it changes.
    roles = [m.role for m in messages]
    assert roles[:5] == ["instruction", "depth_info", "depth", "gt", "image"]
    assert roles.count("instruction") == len({f.instruction for f in frames})


def test_photo_bag_has_real_sizes_and_ground_truth_where_masks_exist(tmp_path):
    frames = list(photo_stream(fps=4.0, seconds_per_photo=0.5))
    assert (
        write_bag_main(
            [
                str(tmp_path / "photos"),
                "--source",
                "photos",
                "--fps",
                "4",
                "--seconds-per-photo",
                "0.5",
                "--storage",
                "sqlite3",
            ]
        )
        == 0
    )
    contents, source = inspect_bag(tmp_path / "photos", BagTopics())
    sizes = {(f.rgb.shape[1], f.rgb.shape[0]) for f in frames}
    assert sizes == {(500, 375), (640, 480)} and contents.counts["image"] == len(frames) == 4
    truths = [truth_from_message(deserialize(m.data, m.msgtype)) for m in source() if m.role == "gt"]
    assert len(truths) == 4 and all(t.target_ids and not t.centres for t in truths)  # no 3D truth for photos
    assert contents.counts["depth"] == 2  # only ARC2017 has depth


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "bag").mkdir()
    assert write_bag_main([str(tmp_path / "bag"), "--seconds", "0.1"]) == 1
    assert "exists" in capsys.readouterr().err


def test_truncated_mcap_is_read_up_to_the_damage(tmp_path):
    # 320x240 frames: the file then has many chunks (rosbags closes one per ~1 MB), as a real recording.
    frames = list(procedural_stream(SequenceConfig(seconds=0.3)))
    write_bag(tmp_path / "bag", frames, "mcap")
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    os.truncate(mcap, mcap.stat().st_size * 6 // 10)
    (tmp_path / "bag" / "metadata.yaml").unlink()  # a killed recorder writes none
    contents, source = inspect_bag(tmp_path / "bag", BagTopics())
    images = [m for m in source() if m.role == "image"]
    assert 0 < len(images) < len(frames)
    assert any("cannot open bag" in p for p in contents.problems)
    assert any("record by record" in p for p in contents.problems)
    assert [header_stamp(m.data) for m in images] == [divmod(f.stamp_ns, 10**9) for f in frames[: len(images)]]


def _chunks(path):
    """Chunk indexes of a complete mcap file (offset, length, first and last message log time)."""
    with open(path, "rb") as f:
        return make_reader(f).get_summary().chunk_indexes


def test_mcap_cut_in_the_middle_of_a_chunk_keeps_that_chunks_first_messages(tmp_path):
    frames = list(procedural_stream(SequenceConfig(seconds=0.3)))
    write_bag(tmp_path / "bag", frames, "mcap")
    (tmp_path / "bag" / "metadata.yaml").unlink()
    (mcap,) = (tmp_path / "bag").glob("*.mcap")
    second = _chunks(mcap)[1]
    # The same recording cut where the second chunk starts, for comparison.
    shutil.copytree(tmp_path / "bag", tmp_path / "at_chunk")
    os.truncate(tmp_path / "at_chunk" / mcap.name, second.chunk_start_offset)
    os.truncate(mcap, second.chunk_start_offset + second.chunk_length // 2)

    contents, source = inspect_bag(tmp_path / "bag", BagTopics())
    messages = list(source())
    images = [m for m in messages if m.role == "image"]
    assert any("is cut off: read its first" in p for p in contents.problems)
    assert [header_stamp(m.data) for m in images] == [divmod(f.stamp_ns, 10**9) for f in frames[: len(images)]]
    assert sum(contents.counts.values()) == len(messages)
    _, before = inspect_bag(tmp_path / "at_chunk", BagTopics())
    assert len(messages) > len(list(before()))


def _write_mcap(path, compression, count, size, chunk_size):
    """An mcap file of count messages of size random bytes on one channel, log time = index."""
    rng = np.random.default_rng(0)
    payloads = [rng.bytes(size) for _ in range(count)]  # incompressible: chunks stay about chunk_size
    with open(path, "wb") as f:
        writer = Writer(f, chunk_size=chunk_size, compression=compression)
        writer.start()
        schema = writer.register_schema("std_msgs/msg/String", "ros2msg", b"string data")
        channel = writer.register_channel("/data", "cdr", schema)
        for i, payload in enumerate(payloads):
            writer.add_message(channel, log_time=i, data=payload, publish_time=i)
        writer.finish()
    return payloads


@pytest.mark.parametrize("compression", list(CompressionType), ids=lambda c: c.name.lower())
def test_salvage_of_a_chunk_cut_in_the_middle_gives_its_whole_messages_before_the_cut(tmp_path, compression):
    path = tmp_path / "cut.mcap"
    payloads = _write_mcap(path, compression, count=120, size=20_000, chunk_size=1 << 20)
    first, second = _chunks(path)[:2]
    os.truncate(path, second.chunk_start_offset + second.chunk_length // 2)
    result, records = salvage_mcap(path)
    messages = list(records)
    assert result.channels == {1: ("/data", "std_msgs/msg/String")}
    # Every message of the first chunk and some of the second: zstd and lz4 give theirs up to the last
    # complete compressed block (128 and 64 KiB here), the uncompressed chunk up to the last whole record.
    assert first.message_end_time + 1 < len(messages) <= second.message_end_time
    assert messages == [(1, i, payloads[i]) for i in range(len(messages))]
    assert result.counts == {1: len(messages)} and result.start_ns == 0
    assert len(result.problems) == 1 and "is cut off" in result.problems[0]


@pytest.mark.parametrize("compression", list(CompressionType), ids=lambda c: c.name.lower())
def test_salvage_of_a_file_cut_anywhere_gives_a_prefix_of_its_messages(tmp_path, compression):
    whole = tmp_path / "whole.mcap"
    payloads = _write_mcap(whole, compression, count=40, size=300, chunk_size=4096)
    data = whole.read_bytes()
    cut = tmp_path / "cut.mcap"
    read = []
    for length in [*range(0, len(data), 23), len(data)]:
        cut.write_bytes(data[:length])
        result, records = salvage_mcap(cut)
        messages = list(records)
        assert messages == [(1, i, payloads[i]) for i in range(len(messages))]
        assert sum(result.counts.values()) == len(messages)
        assert (result.problems == []) == (length == len(data))
        read.append(len(messages))
    assert read == sorted(read) and read[-1] == len(payloads)


def test_corrupt_sqlite_bag_gives_a_clear_message(tmp_path):
    write_bag(tmp_path / "bag", procedural_stream(SMALL), "sqlite3")
    (db,) = (tmp_path / "bag").glob("*.db3")
    os.truncate(db, db.stat().st_size // 2)
    contents, source = inspect_bag(tmp_path / "bag", BagTopics())
    assert source is None and contents.problems[0].startswith("cannot open bag")


def test_unknown_and_wrong_types_are_reported(tmp_path, write_odd_bag):
    write_odd_bag(tmp_path / "odd")
    contents, source = inspect_bag(tmp_path / "odd", BagTopics())
    problems = "\n".join(contents.problems)
    assert "/depth/image (depth) has type foo_msgs/msg/Bar" in problems
    assert "/image (image) has type std_msgs/msg/String" in problems
    assert "no gt topic /ground_truth" in problems
    assert contents.roles == {} and list(source()) == []
