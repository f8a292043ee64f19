"""Write the small sample documents the project ships (demo data and tests use them).

Run from the repository root: `.venv/bin/python evidence/samples/make_samples.py`. Each file is a
real document of its type: a one-page PDF, an OFD package (GB/T 33190) with one page, a PNG and a
JPEG (the JPEG is drawn by the headless Chromium the browser tests use). The files are committed,
so nothing here runs at start-up or in the tests.
"""

import io
import struct
import sys
import zipfile
import zlib
from pathlib import Path

HERE = Path(__file__).resolve().parent


def pdf(title: str, lines: list[str]) -> bytes:
    text = "BT /F1 12 Tf 56 780 Td 16 TL " + " ".join(f"({line}) '" for line in [title, *lines]) + " ET"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(text) + text.encode("latin-1") + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


def ofd(title: str) -> bytes:
    ofd_xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ofd:OFD xmlns:ofd="http://www.ofdspec.org/2016" Version="1.0" DocType="OFD">'
        f"<ofd:DocBody><ofd:DocInfo><ofd:Title>{title}</ofd:Title></ofd:DocInfo>"
        "<ofd:DocRoot>Doc_0/Document.xml</ofd:DocRoot></ofd:DocBody></ofd:OFD>\n"
    )
    document_xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ofd:Document xmlns:ofd="http://www.ofdspec.org/2016"><ofd:CommonData><ofd:MaxUnitID>2</ofd:MaxUnitID>'
        "<ofd:PageArea><ofd:PhysicalBox>0 0 210 140</ofd:PhysicalBox></ofd:PageArea></ofd:CommonData>"
        '<ofd:Pages><ofd:Page ID="1" BaseLoc="Pages/Page_0/Content.xml"/></ofd:Pages></ofd:Document>\n'
    )
    content_xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<ofd:Page xmlns:ofd="http://www.ofdspec.org/2016"><ofd:Content><ofd:Layer ID="2">'
        f'<ofd:TextObject ID="3" Boundary="10 10 190 20" Font="1" Size="5"><ofd:TextCode X="0" Y="5">{title}'
        "</ofd:TextCode></ofd:TextObject></ofd:Layer></ofd:Content></ofd:Page>\n"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in (
            ("OFD.xml", ofd_xml),
            ("Doc_0/Document.xml", document_xml),
            ("Doc_0/Pages/Page_0/Content.xml", content_xml),
        ):
            info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, body)
    return out.getvalue()


def jpeg(text: str) -> bytes:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 360, "height": 120})
        page.set_content(f"<body style='margin:0;font:20px sans-serif;padding:20px'>{text}</body>")
        data = page.screenshot(type="jpeg", quality=60)
        browser.close()
    return data


def main() -> None:
    samples = {
        "contract.pdf": pdf(
            "Compute services contract (sample)",
            ["Parties: an AI enterprise and a computing center in Hangzhou.", "Term: 12 months. Sample only."],
        ),
        "filing-certificate.pdf": pdf("Model filing certificate (sample)", ["Filing number: sample only."]),
        "invoice.ofd": ofd("Fully digital e-invoice (sample)"),
        "invoice.pdf": pdf("Invoice (sample)", ["Fully digital e-invoice, sample only."]),
        "payment-proof.png": png(64, 32, (30, 90, 160)),
        "delivery-proof.jpg": jpeg("Usage report (sample): 1,000 GPU hours delivered."),
    }
    for name, data in samples.items():
        (HERE / name).write_bytes(data)
        sys.stdout.write(f"{name}: {len(data)} bytes\n")


if __name__ == "__main__":
    main()
