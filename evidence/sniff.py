"""What a file is, judged from its bytes alone: never from its name or the Content-Type it came with.

A file is accepted only when it is complete: a PDF from `%PDF-` to its `%%EOF`, a JPEG from its
start-of-image to its end-of-image marker, a PNG from its signature and header chunk to its IEND
chunk, and an OFD (GB/T 33190, China's e-invoice format) a readable ZIP holding `OFD.xml` at its
root, every entry whole and listed, nothing between them. A truncated upload, an HTML page named
.pdf, or an executable renamed .png is refused.
"""

import io
import struct
import zipfile
from typing import Final

PDF: Final = "application/pdf"
OFD: Final = "application/ofd"
JPEG: Final = "image/jpeg"
PNG: Final = "image/png"
ACCEPTED_TYPES: Final = (PDF, OFD, JPEG, PNG)

_PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_PNG_IEND: Final = b"\x00\x00\x00\x00IEND\xaeB`\x82"
_TAIL: Final = 1024  # PDF readers look for %%EOF within the last kilobyte.
_OFD_ENTRIES_MAX: Final = 10_000
# An e-invoice's OFD package is tens of kilobytes. Unpacked, an OFD may hold at most this, and at
# most _OFD_RATIO_MAX times its packed size: found from outside, a 190 KB archive of zeros that
# unpacked to 199 MB took seconds of a worker to check and would reach a reviewer's reader whole.
_OFD_UNPACKED_MAX: Final = 50 * 1000 * 1000
_OFD_RATIO_MAX: Final = 100
_EOCD: Final = struct.Struct("<4s16xH")  # End of central directory: signature, ..., comment length: 22 bytes.


def _pdf(data: bytes) -> bool:
    return data.startswith(b"%PDF-") and b"%%EOF" in data[-_TAIL:]


def _jpeg(data: bytes) -> bool:
    return data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")


def _png(data: bytes) -> bool:
    return data.startswith(_PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(_PNG_IEND)


def _ofd(data: bytes) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if "OFD.xml" not in {entry.filename for entry in entries}:
                return False
            # Every entry is decompressed below to check it: what the archive declares bounds that
            # work (the reader stops at each entry's declared size), so a small "zip bomb" is refused
            # before anything is inflated.
            unpacked = sum(entry.file_size for entry in entries)
            if len(entries) > _OFD_ENTRIES_MAX or unpacked > min(_OFD_UNPACKED_MAX, _OFD_RATIO_MAX * len(data)):
                return False
            if not _ends_at_its_directory(data):
                return False
            # Every entry must be whole: a ZIP cut short or altered fails its checksums here.
            return _entries_fill_the_archive(data, entries, archive.start_dir) and archive.testzip() is None
    except Exception:  # A malformed archive fails in many ways (zlib, struct, encryption, ...): none is an OFD.
        return False


_LOCAL_HEADER: Final = struct.Struct("<4s22xHH")  # signature, ..., name length, extra length: 30 bytes.
# After an entry whose sizes follow its data (flag bit 3): CRC and sizes, with or without a
# signature, 32-bit or ZIP64 sizes.
_DESCRIPTOR_LENGTHS: Final = (12, 16, 20, 24)


def _ends_at_its_directory(data: bytes) -> bool:
    """The archive ends with its end-of-directory record and that record's own comment: nothing after
    it (found from outside: 60 KB of HTML appended after the record still read as an OFD)."""
    at = data.rfind(b"PK\x05\x06")
    if at < 0 or at + _EOCD.size > len(data):
        return False
    _, comment_length = _EOCD.unpack_from(data, at)
    return at + _EOCD.size + comment_length == len(data)


def _entries_fill_the_archive(data: bytes, entries: list[zipfile.ZipInfo], directory_at: int) -> bool:
    """The entries the central directory lists sit end to end from the first byte to the directory:
    no entry left out of the listing, no bytes hidden between them."""
    at = 0
    for entry in sorted(entries, key=lambda e: e.header_offset):
        if entry.header_offset != at or at + _LOCAL_HEADER.size > len(data):
            return False
        signature, name_length, extra_length = _LOCAL_HEADER.unpack_from(data, at)
        if signature != b"PK\x03\x04":
            return False
        at += _LOCAL_HEADER.size + name_length + extra_length + entry.compress_size
        if entry.flag_bits & 0x08:
            ends = [at + length for length in _DESCRIPTOR_LENGTHS]
            following = [e.header_offset for e in entries if e.header_offset > entry.header_offset]
            at = next((end for end in ends if end == min(following, default=directory_at)), -1)
    return at == directory_at


_CHECKS: Final = ((PDF, _pdf), (PNG, _png), (JPEG, _jpeg), (OFD, _ofd))


def detect(data: bytes) -> str | None:
    """The file's type (one of `ACCEPTED_TYPES`), or None when it is none of them, or not whole."""
    for content_type, check in _CHECKS:
        if check(data):
            return content_type
    return None


EXTENSIONS: Final = {PDF: "pdf", OFD: "ofd", JPEG: "jpg", PNG: "png"}
