"""Reading a truncated mcap file record by record: what a recording cut short (robot powered off, recorder
killed) still holds.

rosbags needs the file's summary at its end (and metadata.yaml), which such a recording lacks. The `mcap`
package's StreamReader walks the records from the start instead; messages sit in chunks or at top level, and
schemas and channels precede their messages. Reading stops cleanly at the first incomplete record. A chunk
cut in the middle still gives the whole records before the cut: its data is decompressed as far as it goes
(uncompressed, zstd or lz4 chunks) and read up to the last complete record.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import EndOfFile, InvalidMagic, McapError
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, McapRecord, Message, Schema
from mcap.stream_reader import MAGIC_SIZE, StreamReader

# opcode u8 + length u64 before each record's content
RECORD_PREFIX_BYTES = 9


@dataclass
class SalvageResult:
    """channels: id -> (topic, message type); definitions: channel id -> the message definition its schema
    stores ("" when none); counts: messages per channel id; start_ns: earliest message log time; problems:
    sentences."""

    start_ns: int = 0
    channels: dict[int, tuple[str, str]] = field(default_factory=dict)
    definitions: dict[int, str] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


class _WholeReads:
    """A binary stream whose read(n) returns n bytes or raises EndOfFile.

    mcap's ReadDataStream raises EndOfFile only when a read returns nothing: a read cut short by the end of
    the file passes, so a truncated message would come back with part of its data, or a truncated field
    would fail in struct.unpack.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream

    def read(self, size: int) -> bytes:
        if size < 0:  # a damaged length (a message record shorter than its header); read(-1) reads it all
            raise McapError(f"negative field length {size}")
        data = self.stream.read(size)
        if len(data) < size:
            raise EndOfFile()
        return data

    def tell(self) -> int:
        return self.stream.tell()


def _decompress_prefix(compression: str, data: bytes) -> bytes | None:
    """Chunk data -> as much of its decompressed records as the bytes give (all of them for a whole chunk;
    a cut one ends at the last complete compressed block). None for an unknown compression."""
    if compression == "":
        return data
    if compression == "zstd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    if compression == "lz4":
        return lz4.frame.LZ4FrameDecompressor().decompress(data)
    return None


def _chunk_records(chunk: Chunk, offset: int, cut: bool, result: SalvageResult) -> Iterator[McapRecord]:
    """The schema, channel and message records of a chunk (which starts at byte offset of the file), up to
    the last complete one when the chunk is cut."""
    try:
        data = _decompress_prefix(chunk.compression, chunk.data)
    except (zstandard.ZstdError, RuntimeError) as error:  # lz4 raises RuntimeError for damaged frames
        result.problems.append(f"chunk at byte {offset} does not decompress ({error}): skipped")
        return
    if data is None:
        result.problems.append(f"skipped a chunk at byte {offset} with unknown compression {chunk.compression!r}")
        return
    stream = io.BytesIO(data)
    messages = 0
    try:
        for record in StreamReader(_WholeReads(stream), skip_magic=True).records:
            if isinstance(record, Message):
                messages += 1
            yield record
    except EndOfFile:
        pass  # a chunk's records end with its data: EndOfFile is the normal end, or the cut
    if cut:
        result.problems.append(
            f"chunk at byte {offset} is cut off: read its first {messages} messages "
            f"({len(data)} of {chunk.uncompressed_size} bytes), reading stopped there"
        )
    elif stream.tell() != len(data) or len(data) != chunk.uncompressed_size:
        result.problems.append(f"chunk at byte {offset} is damaged: read its first {messages} messages")


def _cut_chunk(path: Path, offset: int) -> Chunk | None:
    """The chunk record that starts at byte offset and runs past the end of the file, with the data that is
    there; None when the cut record is not a chunk or is cut before its data starts."""
    with open(path, "rb") as f:
        f.seek(offset)
        head = f.read(RECORD_PREFIX_BYTES)
        if len(head) < RECORD_PREFIX_BYTES or head[0] != Opcode.CHUNK:
            return None
        # A plain ReadDataStream hands a short final read through, which here is the data there is.
        try:
            return Chunk.read(ReadDataStream(f))
        except (EndOfFile, struct.error):  # cut inside the chunk's header
            return None


def _records(path: Path, result: SalvageResult) -> Iterator[McapRecord]:
    """The records of the file in order, chunks expanded; stops at an incomplete one, after the whole
    records of a cut chunk. Problems go to result."""
    with open(path, "rb") as f:
        source = _WholeReads(f)
        offset = MAGIC_SIZE  # where the record being read starts
        try:
            for record in StreamReader(source, emit_chunks=True).records:
                if isinstance(record, Chunk):
                    yield from _chunk_records(record, offset, cut=False, result=result)
                else:
                    yield record
                offset = source.tell()
        except InvalidMagic:
            result.problems.append(f"{path} is not an mcap file")
            return
        except EndOfFile:
            if source.tell() < MAGIC_SIZE:
                result.problems.append(f"{path} is not an mcap file (too short)")
                return
            cut = _cut_chunk(path, offset)
            if cut is None:
                result.problems.append(f"mcap record at byte {offset} is cut off: reading stopped there")
                return
            yield from _chunk_records(cut, offset, cut=True, result=result)
        except McapError as error:
            result.problems.append(f"mcap record at byte {offset} is damaged ({error}): reading stopped there")


def salvage_mcap(path: Path) -> tuple[SalvageResult, Iterator[tuple[int, int, bytes]]]:
    """(channels and counts, iterator of (channel id, log time ns, data)) of a possibly truncated mcap file.

    The file is streamed twice: for the channels and counts, then by the iterator."""
    result = SalvageResult()
    schemas: dict[int, Schema] = {}
    for record in _records(Path(path), result):
        if isinstance(record, Schema):
            schemas[record.id] = record
        elif isinstance(record, Channel):
            schema = schemas.get(record.schema_id)
            result.channels[record.id] = (record.topic, "unknown" if schema is None else schema.name)
            # rosbag2 stores .msg definitions with encoding ros2msg; others (ros2idl) are not read here.
            stored = schema is not None and schema.encoding == "ros2msg"
            result.definitions[record.id] = schema.data.decode(errors="replace") if stored else ""
        elif isinstance(record, Message):
            # The first message sets it (a log time of 0 is a time like any other).
            first = not result.counts
            result.start_ns = record.log_time if first else min(result.start_ns, record.log_time)
            result.counts[record.channel_id] = result.counts.get(record.channel_id, 0) + 1

    def messages() -> Iterator[tuple[int, int, bytes]]:
        for record in _records(Path(path), SalvageResult()):
            if isinstance(record, Message):
                yield record.channel_id, record.log_time, record.data

    return result, messages()
