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


def test_an_ofd_with_an_encrypted_entry_is_refused_without_raising():
    whole = bytearray(sample("invoice.ofd"))
    central = whole.index(b"PK\x01\x02")  # The first entry's central directory header.
    whole[central + 8] |= 0x01  # Its general-purpose flags: "encrypted".
    assert sniff.detect(bytes(whole)) is None
