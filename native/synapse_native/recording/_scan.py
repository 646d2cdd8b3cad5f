"""Find the chunks, metadata and attachments of an MCAP file, whole or damaged.

A closed file is read through its summary section (chunk indexes); a file without one (a
killed writer, a full disk) by one scan of its record headers, which stops at the first
record that runs past the end of the file and says what was lost. Chunks are only located
here; their messages are read (and their CRCs checked) by ``read_chunk``.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

import lz4.frame
import zstandard
from mcap.data_stream import ReadDataStream
from mcap.exceptions import McapError
from mcap.opcode import Opcode
from mcap.reader import SeekingReader
from mcap.records import Attachment, Metadata

from .._wire import HEADER_SIZE
from .._wire import MAGIC as WIRE_MAGIC
from ._format import MAX_CHUNK_BYTES

MAGIC = b"\x89MCAP0\r\n"
_RECORD = struct.Struct("<BQ")
_CHUNK_HEAD = struct.Struct("<QQQII")  # start, end, uncompressed size, crc, compression length
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel id, sequence, log time, publish time
_FOOTER_SIZE = _RECORD.size + 20
_PAYLOAD_LENGTH = struct.Struct("<I")  # a wire frame's, at header offset 8
_RECORD_ERRORS = (McapError, ValueError, struct.error, EOFError, OverflowError)


class RecordingError(Exception):
    """A file that cannot be read as a recording; the message names the file and the offset."""


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """Where one chunk record is and which log times (ns) it covers."""

    offset: int
    start_ns: int
    end_ns: int
    channel_ids: frozenset[int] | None = None  # None: not known without reading it


@dataclass(slots=True)
class Layout:
    """What a file holds, as found at open."""

    chunks: list[ChunkRef] = field(default_factory=list)
    channel_types: dict[int, int] = field(default_factory=dict)  # channel id -> message type
    metadata: dict[str, str] = field(default_factory=dict)
    attachments: dict[str, int] = field(default_factory=dict)  # name -> record offset
    message_count: int | None = None
    damage: str | None = None


def locate(f: IO[bytes], size: int, name: str, metadata_name: str) -> Layout:
    """Read the layout of the MCAP file ``f`` of ``size`` bytes; ``RecordingError`` if not MCAP."""
    f.seek(0)
    head = f.read(len(MAGIC))
    if head != MAGIC:
        raise RecordingError(
            f"{name}: not an MCAP recording (offset 0: {head[:8]!r} is not the MCAP magic)"
        )
    layout = _from_summary(f, size, metadata_name)
    if layout is None:
        layout = _from_scan(f, size, name, metadata_name)
    return layout


def _from_summary(f: IO[bytes], size: int, metadata_name: str) -> Layout | None:
    """The layout from the summary section, or None when there is none to trust."""
    if size < 2 * len(MAGIC) + _FOOTER_SIZE:
        return None
    f.seek(size - len(MAGIC))
    if f.read(len(MAGIC)) != MAGIC:
        return None
    f.seek(size - len(MAGIC) - _FOOTER_SIZE)
    footer = f.read(_FOOTER_SIZE)
    opcode, length = _RECORD.unpack_from(footer)
    if opcode != Opcode.FOOTER or length != 20:
        return None
    summary_start, _offsets, crc = struct.unpack_from("<QQI", footer, _RECORD.size)
    if not 0 < summary_start <= size - len(MAGIC) - _FOOTER_SIZE:
        return None
    # Only a summary under its CRC is trusted (its records' lengths are read as they claim);
    # a file without one is scanned instead, which reads any valid file as well.
    f.seek(summary_start)
    body = f.read(size - len(MAGIC) - _FOOTER_SIZE - summary_start)
    if not crc or zlib.crc32(footer[:-4], zlib.crc32(body)) != crc:
        return None
    try:
        f.seek(0)
        summary = SeekingReader(f).get_summary()
    except _RECORD_ERRORS:
        return None
    if summary is None:
        return None
    layout = Layout()
    layout.channel_types = {
        cid: _type_of(ch.metadata.get("type", "")) for cid, ch in summary.channels.items()
    }
    for index in summary.chunk_indexes:
        layout.chunks.append(
            ChunkRef(
                index.chunk_start_offset,
                index.message_start_time,
                index.message_end_time,
                frozenset(index.message_index_offsets),
            )
        )
    if summary.statistics is not None:
        layout.message_count = summary.statistics.message_count
    for meta_index in summary.metadata_indexes:
        meta = _read_metadata(f, meta_index.offset) if meta_index.name == metadata_name else None
        if meta is not None:
            layout.metadata.update(meta.metadata)
    for attachment_index in summary.attachment_indexes:
        layout.attachments[attachment_index.name] = attachment_index.offset
    return layout


def _from_scan(f: IO[bytes], size: int, name: str, metadata_name: str) -> Layout:
    """The layout from one pass over the record headers of a file without a usable summary."""
    layout = Layout()
    offset = len(MAGIC)
    ended = False
    while offset < size:
        f.seek(offset)
        head = f.read(_RECORD.size)
        if len(head) < _RECORD.size:
            layout.damage = f"file ends at byte {size} inside a record header at offset {offset}"
            break
        opcode, length = _RECORD.unpack(head)
        end = offset + _RECORD.size + length
        if end > size:
            layout.damage = _cut_short(f, offset, opcode, length, size, layout)
            break
        if opcode == Opcode.CHUNK and length >= _CHUNK_HEAD.size:  # shorter: holds nothing
            start_ns, end_ns, *_ = _CHUNK_HEAD.unpack(f.read(_CHUNK_HEAD.size))
            layout.chunks.append(ChunkRef(offset, start_ns, end_ns))
        elif opcode == Opcode.METADATA:
            meta = _read_metadata(f, offset)
            if meta is not None and meta.name == metadata_name and not layout.metadata:
                layout.metadata.update(meta.metadata)
        elif opcode == Opcode.ATTACHMENT:
            attachment = _read_attachment(f, offset)
            if attachment is not None:
                layout.attachments.setdefault(attachment.name, offset)
        elif opcode in (Opcode.DATA_END, Opcode.FOOTER):
            ended = True
            break
        offset = end
    if layout.damage is None and not ended:
        layout.damage = (
            f"the recording was not closed (no summary section): it ends at byte {offset} after "
            "the last complete chunk; frames the writer had not yet written out are lost"
        )
    elif layout.damage is None:
        layout.damage = (
            f"the summary section is cut short or damaged (file of {size} bytes): the chunks "
            "were found by a scan and none is lost"
        )
    return layout


def _cut_short(
    f: IO[bytes], offset: int, opcode: int, length: int, size: int, layout: Layout
) -> str:
    """Say what a record that runs past the end of the file held."""
    if opcode != Opcode.CHUNK:
        kind = Opcode(opcode).name if opcode in Opcode._value2member_map_ else f"opcode {opcode:#x}"
        return (
            f"file ends at byte {size} inside a {kind} record at offset {offset} "
            f"({length} bytes announced); every chunk before it is intact"
        )
    head = f.read(_CHUNK_HEAD.size)
    lost = ""
    if len(head) == _CHUNK_HEAD.size:
        start_ns, end_ns, *_ = _CHUNK_HEAD.unpack(head)
        origin = layout.chunks[0].start_ns if layout.chunks else start_ns
        lost = (
            f": the frames logged from {(start_ns - origin) / 1e9:.1f} s to "
            f"{(end_ns - origin) / 1e9:.1f} s of the recording "
            f"({(end_ns - start_ns) / 1e9:.1f} s) are lost"
        )
    return f"file ends at byte {size} inside the chunk at offset {offset}{lost}"


def _body(f: IO[bytes], offset: int) -> tuple[int, bytes]:
    f.seek(offset)
    opcode, length = _RECORD.unpack(f.read(_RECORD.size))
    # A damaged length may exceed the file: read only what is there (never allocate for the
    # claim); a short body fails the record's own checks.
    left = os.fstat(f.fileno()).st_size - f.tell()
    return opcode, f.read(max(0, min(length, left)))


def _read_metadata(f: IO[bytes], offset: int) -> Metadata | None:
    _, body = _body(f, offset)
    try:
        metadata: Metadata = Metadata.read(ReadDataStream(io.BytesIO(body)))
        return metadata
    except _RECORD_ERRORS:
        return None


def _read_attachment(f: IO[bytes], offset: int) -> Attachment | None:
    _, body = _body(f, offset)
    try:
        attachment: Attachment = Attachment.read(ReadDataStream(io.BytesIO(body)))
        return attachment
    except _RECORD_ERRORS:
        return None


def read_attachment(f: IO[bytes], offset: int, name: str) -> bytes:
    """The data of the attachment record at ``offset``; ``RecordingError`` if it is damaged."""
    attachment = _read_attachment(f, offset)
    if attachment is None:
        raise RecordingError(f"{name}: the attachment at offset {offset} is damaged")
    return bytes(attachment.data)


def read_chunk(
    f: IO[bytes], chunk: ChunkRef, name: str, channel_types: dict[int, int]
) -> list[tuple[int, bytes]]:
    """The (log time, message data) of one chunk; records its channels' types in passing.

    ``RecordingError`` naming the offset when the chunk is not whole, does not decompress,
    or fails its CRC.
    """
    try:
        opcode, body = _body(f, chunk.offset)
        if opcode != Opcode.CHUNK:
            raise ValueError(f"opcode {opcode:#x} where a chunk was expected")
        _start, _end, raw_size, crc, comp_len = _CHUNK_HEAD.unpack_from(body)
        pos = _CHUNK_HEAD.size
        compression = body[pos : pos + comp_len].decode()
        pos += comp_len
        (data_len,) = struct.unpack_from("<Q", body, pos)
        data = _decompress(compression, body[pos + 8 : pos + 8 + data_len], raw_size)
    except (ValueError, struct.error, UnicodeDecodeError, RuntimeError) as exc:
        raise RecordingError(
            f"{name}: the chunk at offset {chunk.offset} is damaged ({exc})"
        ) from exc
    if crc and zlib.crc32(data) != crc:
        raise RecordingError(
            f"{name}: the chunk at offset {chunk.offset} fails its CRC "
            f"(stored {crc:#010x}, computed {zlib.crc32(data):#010x})"
        )
    return _messages(data, chunk, name, channel_types)


def _messages(
    data: bytes, chunk: ChunkRef, name: str, channel_types: dict[int, int]
) -> list[tuple[int, bytes]]:
    out: list[tuple[int, bytes]] = []
    view = memoryview(data)
    pos = 0
    try:
        while pos < len(data):
            opcode, length = _RECORD.unpack_from(data, pos)
            pos += _RECORD.size
            if opcode == Opcode.MESSAGE:
                _cid, _seq, log_time, _pub = _MESSAGE_HEAD.unpack_from(data, pos)
                frame = bytes(view[pos + _MESSAGE_HEAD.size : pos + length])
                if not _whole_frame(frame, length - _MESSAGE_HEAD.size):
                    raise ValueError(f"a message of {len(frame)} bytes is not a whole wire frame")
                out.append((log_time, frame))
            elif opcode == Opcode.CHANNEL:
                cid, _schema, topic_len = struct.unpack_from("<HHI", data, pos)
                channel_types.setdefault(cid, _channel_type(data[pos + 8 + topic_len :]))
            pos += length
    except _RECORD_ERRORS as exc:
        raise RecordingError(
            f"{name}: the chunk at offset {chunk.offset} holds a malformed record ({exc!r})"
        ) from exc
    out.sort(key=lambda m: m[0])
    return out


def _whole_frame(frame: bytes, claimed: int) -> bool:
    """Whether ``frame`` (``claimed`` bytes by its record) is one wire frame, whole."""
    return (
        len(frame) == claimed >= HEADER_SIZE
        and frame.startswith(WIRE_MAGIC)
        and len(frame) == HEADER_SIZE + _PAYLOAD_LENGTH.unpack_from(frame, 8)[0]
    )


def _channel_type(rest: bytes) -> int:
    """The ``type`` metadata of a channel record, from the bytes after its topic."""
    stream = ReadDataStream(io.BytesIO(rest))
    stream.read_prefixed_string()  # message encoding
    end = stream.read4()
    end += stream.count
    while stream.count < end:
        key, value = stream.read_prefixed_string(), stream.read_prefixed_string()
        if key == "type":
            return _type_of(value)
    return -1


def _type_of(value: str) -> int:
    """A channel's ``type`` metadata as a message type; -1 when it is not a number."""
    return int(value) if value.isdecimal() and len(value) < 6 else -1


def _decompress(compression: str, data: bytes, raw_size: int) -> bytes:
    """The chunk's records: exactly ``raw_size`` bytes (the header's claim, bounded) or
    ValueError. The decompressors stream and stop one byte past the claim, so a small damaged
    file cannot make the reader allocate more than the claim it is checked against."""
    if raw_size > MAX_CHUNK_BYTES:
        raise ValueError(f"claims {raw_size} bytes uncompressed, over {MAX_CHUNK_BYTES}")
    if compression == "":
        out = data
    elif compression == "zstd":
        out = _bounded(lambda: zstandard.ZstdDecompressor().stream_reader(data).read(raw_size + 1))
    elif compression == "lz4":
        out = _bounded(
            lambda: lz4.frame.LZ4FrameDecompressor().decompress(data, max_length=raw_size + 1)
        )
    else:
        raise ValueError(f"unknown compression {compression!r}")
    if len(out) != raw_size:
        raise ValueError(f"{compression or 'data'}: {len(out)} bytes where {raw_size} are claimed")
    return bytes(out)


def _bounded(decompress: Callable[[], bytes]) -> bytes:
    try:
        return decompress()
    except Exception as exc:  # each codec has its own error class
        raise ValueError(str(exc)) from exc
