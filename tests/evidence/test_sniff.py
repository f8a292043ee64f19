"""Properties of `evidence.sniff.detect`: it never raises, and it accepts bytes only when they really
start with a known signature and end as that format ends; a whole sample cut anywhere is refused."""

import io
import zipfile

from hypothesis import given, settings
from hypothesis import strategies as st

from evidence import sniff
from tests.evidence.conftest import sample

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"
EXAMPLES = settings(max_examples=300, deadline=None)


def _whole(data: bytes, detected: str) -> bool:
    """What each accepted type must look like at both ends."""
    if detected == sniff.PDF:
        return data.startswith(b"%PDF-") and b"%%EOF" in data[-1024:]
    if detected == sniff.PNG:
        return data.startswith(PNG_SIGNATURE) and data[12:16] == b"IHDR" and data.endswith(PNG_END)
    if detected == sniff.JPEG:
        return data.startswith(b"\xff\xd8\xff") and data.rstrip(b"\x00\r\n ").endswith(b"\xff\xd9")
    if detected == sniff.OFD:
        return data.startswith(b"PK\x03\x04") and zipfile.ZipFile(io.BytesIO(data)).testzip() is None
    return False


# Random bytes, and random bytes behind each signature (where a sloppy check would be fooled).
PREFIXES = st.sampled_from([b"", b"%PDF-", PNG_SIGNATURE, b"\xff\xd8\xff", b"PK\x03\x04", b"PK\x05\x06", b"MZ"])


@EXAMPLES
@given(prefix=PREFIXES, body=st.binary(max_size=4096))
def test_random_bytes_are_accepted_only_when_whole(prefix, body):
    data = prefix + body
    detected = sniff.detect(data)  # Never raises, whatever the bytes.
    assert detected is None or _whole(data, detected), (detected, data[:64])


@EXAMPLES
@given(body=st.binary(max_size=2048))
def test_a_signature_and_its_end_around_anything_is_accepted(body):
    assert sniff.detect(b"%PDF-1.7\n" + body + b"\n%%EOF\n") == sniff.PDF
    assert sniff.detect(b"\xff\xd8\xff\xe0" + body + b"\xff\xd9") == sniff.JPEG
    assert sniff.detect(PNG_SIGNATURE + b"\x00\x00\x00\x0dIHDR" + body + PNG_END) == sniff.PNG


@EXAMPLES
@given(data=st.data())
def test_a_sample_cut_short_anywhere_is_refused(data):
    name = data.draw(st.sampled_from(["invoice.pdf", "invoice.ofd", "payment-proof.png", "delivery-proof.jpg"]))
    whole = sample(name)
    if name.endswith(".pdf"):
        end = whole.rindex(b"%%EOF")  # Cut before the end marker: what a dropped upload leaves.
    elif name.endswith(".jpg"):
        end = len(whole.rstrip(b"\x00\r\n ")) - 1
    else:
        end = len(whole)
    cut = data.draw(st.integers(min_value=0, max_value=end - 1))
    prefix = whole[:cut]
    if name.endswith(".jpg") and prefix.endswith(b"\xff\xd9"):
        return  # An end-of-image marker inside the image's own headers: whole as far as bytes tell.
    assert sniff.detect(prefix) is None, (name, cut)


def _contents(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@EXAMPLES
@given(data=st.data())
def test_an_ofd_with_a_byte_changed_is_refused_unless_its_content_is_untouched(data):
    original = sample("invoice.ofd")
    changed = bytearray(original)
    position = data.draw(st.integers(min_value=0, max_value=len(original) - 1))
    changed[position] ^= data.draw(st.integers(min_value=1, max_value=255))
    detected = sniff.detect(bytes(changed))
    # Some bytes carry nothing the reader uses (a timestamp, the padding after the last compressed
    # bit): accepted then, but only with every entry reading exactly as the original's.
    assert detected is None or (detected == sniff.OFD and _contents(bytes(changed)) == _contents(original)), position


def test_a_zip_bomb_is_refused_before_it_is_inflated():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("OFD.xml", b"<ofd:OFD/>")
        archive.writestr("Doc_0/bomb.bin", bytes(300 * 1000 * 1000))
    assert len(buffer.getvalue()) < 1_000_000
    assert sniff.detect(buffer.getvalue()) is None


def test_an_ofd_that_unpacks_to_far_more_than_it_packs_is_refused():
    """Found from outside: 190 KB that unpacked to 199 MB was accepted and took seconds to check."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("OFD.xml", b"<ofd:OFD/>")
        archive.writestr("Doc_0/zeros.bin", bytes(5 * 1000 * 1000))
    assert len(buffer.getvalue()) < 50_000
    assert sniff.detect(buffer.getvalue()) is None


def test_an_ofd_with_bytes_after_its_directory_is_refused():
    """Found from outside: HTML appended after the end-of-directory record still read as an OFD."""
    whole = sample("invoice.ofd")
    assert sniff.detect(whole) == sniff.OFD
    assert sniff.detect(whole + b"<html><script>alert(1)</script></html>" * 20) is None
    assert sniff.detect(whole + b"\x00") is None


def test_an_ofd_with_an_encrypted_entry_is_refused_without_raising():
    whole = bytearray(sample("invoice.ofd"))
    central = whole.index(b"PK\x01\x02")  # The first entry's central directory header.
    whole[central + 8] |= 0x01  # Its general-purpose flags: "encrypted".
    assert sniff.detect(bytes(whole)) is None


class _Stream(io.RawIOBase):
    """A write-only stream: zipfile then writes each entry's sizes after its data (flag bit 3)."""

    def __init__(self) -> None:
        self.written = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        self.written += data
        return len(data)


def test_an_ofd_written_as_a_stream_is_accepted():
    stream = _Stream()
    with zipfile.ZipFile(stream, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("OFD.xml", b"<ofd:OFD/>" * 20)
        archive.writestr("Doc_0/Document.xml", b"<ofd:Document/>" * 20)
    data = bytes(stream.written)
    assert all(info.flag_bits & 0x08 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    assert sniff.detect(data) == sniff.OFD


def test_an_ofd_with_an_entry_left_out_of_its_directory_or_bytes_between_entries_is_refused():
    original = sample("invoice.ofd")
    with zipfile.ZipFile(io.BytesIO(original)) as archive:
        entries = archive.infolist()
        directory_at = archive.start_dir
    # Bytes slipped in before the central directory, the directory's offsets moved to match.
    smuggled = b"<script>alert(1)</script>"
    padded = bytearray(original[:directory_at] + smuggled + original[directory_at:])
    end = padded.rindex(b"PK\x05\x06")
    padded[end + 16 : end + 20] = (directory_at + len(smuggled)).to_bytes(4, "little")
    assert zipfile.ZipFile(io.BytesIO(bytes(padded))).testzip() is None  # zipfile alone sees nothing wrong.
    assert sniff.detect(bytes(padded)) is None
    # The last entry dropped from the central directory (its count lowered): the archive still reads.
    last = max(entries, key=lambda e: e.header_offset)
    central = bytearray(original)
    last_record_at = _central_entry_of(central, directory_at, last.filename)
    truncated = central[:last_record_at] + central[central.rindex(b"PK\x05\x06") :]
    end = truncated.rindex(b"PK\x05\x06")
    count = len(entries) - 1
    truncated[end + 8 : end + 12] = count.to_bytes(2, "little") * 2
    truncated[end + 12 : end + 16] = (end - directory_at).to_bytes(4, "little")
    assert len(zipfile.ZipFile(io.BytesIO(bytes(truncated))).infolist()) == count
    assert sniff.detect(bytes(truncated)) is None


def _central_entry_of(data: bytearray, directory_at: int, name: str) -> int:
    """Where the central directory's record of `name` starts."""
    at = directory_at
    while data[at : at + 4] == b"PK\x01\x02":
        name_length, extra_length, comment_length = (
            int.from_bytes(data[at + i : at + i + 2], "little") for i in (28, 30, 32)
        )
        if data[at + 46 : at + 46 + name_length].decode() == name:
            return at
        at += 46 + name_length + extra_length + comment_length
    raise AssertionError(name)
