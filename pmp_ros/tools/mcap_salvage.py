"""Reading a truncated mcap file record by record: what a recording cut short (robot powered off, recorder
killed) still holds.

rosbags needs the file's summary at its end (and metadata.yaml), which such a recording lacks. An mcap file
is a magic string followed by records (opcode u8, length u64, content); messages sit in chunks or at top
level, and schemas and channels precede their messages. This reader walks the records from the start and
stops cleanly at the first incomplete one. Chunks compressed with zstd or lz4 need the `zstandard` / `lz4`
modules; without them such chunks are skipped and reported.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"
OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x03, 0x04, 0x05, 0x06


@dataclass
class SalvageResult:
    """channels: id -> (topic, message type); counts: messages per channel id; start_ns: earliest message
    log time; problems: sentences."""

    start_ns: int = 0
    channels: dict[int, tuple[str, str]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _string(data: bytes, offset: int) -> tuple[str, int]:
    (length,) = struct.unpack_from("<I", data, offset)
    return data[offset + 4:offset + 4 + length].decode(), offset + 4 + length


def _decompress(compression: str, data: bytes, size: int) -> bytes | None:
    if compression == "":
        return data
    try:
        if compression == "zstd":
            import zstandard

            return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
        if compression == "lz4":
            import lz4.frame

            return lz4.frame.decompress(data)
    except ImportError:
        return None
    return None


def _records(data: bytes, offset: int, result: SalvageResult) -> Iterator[tuple[int, bytes]]:
    """(opcode, content) of the records in data[offset:], chunk contents expanded; stops at an incomplete one."""
    while offset + 9 <= len(data):
        opcode, length = data[offset], struct.unpack_from("<Q", data, offset + 1)[0]
        content = data[offset + 9:offset + 9 + length]
        if len(content) < length:
            result.problems.append(f"mcap record at byte {offset} is cut off: reading stopped there")
            return
        offset += 9 + length
        if opcode == OP_CHUNK:
            size = struct.unpack_from("<Q", content, 16)[0]
            compression, position = _string(content, 28)
            (records_length,) = struct.unpack_from("<Q", content, position)
            inner = _decompress(compression, content[position + 8:position + 8 + records_length], size)
            if inner is None:
                result.problems.append(f"skipped a {compression} chunk (module for it not installed)")
                continue
            yield from _records(inner, 0, result)
        else:
            yield opcode, content


def salvage_mcap(path: Path) -> tuple[SalvageResult, Iterator[tuple[int, int, bytes]]]:
    """(channels and counts, iterator of (channel id, log time ns, data)) of a possibly truncated mcap file.

    The file is held in memory and walked twice: for the channels and counts, then by the iterator."""
    data = Path(path).read_bytes()
    result = SalvageResult()
    if not data.startswith(MAGIC):
        result.problems.append(f"{path} is not an mcap file")
        return result, iter(())
    schemas: dict[int, str] = {}
    for opcode, content in _records(data, len(MAGIC), result):
        if opcode == OP_SCHEMA:
            schema_id = struct.unpack_from("<H", content, 0)[0]
            schemas[schema_id] = _string(content, 2)[0]
        elif opcode == OP_CHANNEL:
            channel_id, schema_id = struct.unpack_from("<HH", content, 0)
            result.channels[channel_id] = (_string(content, 4)[0], schemas.get(schema_id, "unknown"))
        elif opcode == OP_MESSAGE:
            channel_id, _, log_time = struct.unpack_from("<HIQ", content, 0)
            result.start_ns = min(result.start_ns or log_time, log_time)
            result.counts[channel_id] = result.counts.get(channel_id, 0) + 1

    def messages() -> Iterator[tuple[int, int, bytes]]:
        for opcode, content in _records(data, len(MAGIC), SalvageResult()):
            if opcode == OP_MESSAGE:
                channel_id, _, log_time = struct.unpack_from("<HIQ", content, 0)
                yield channel_id, log_time, content[22:]

    return result, messages()
