"""TIFF-F validation: every kind of bad document is refused with the file named and the problem said."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from zetafailover.errors import ValidationError
from zetafailover.spool.render import text_document, text_page
from zetafailover.spool.tiff import validate_tiff, validate_tiff_bytes, write_tiff

ROW = bytes(100) + b"\xff" * 16 + bytes(100)


def doc(pages: int = 2, rows: int = 4) -> bytes:
    return write_tiff(None, [[ROW] * rows for _ in range(pages)])


def ifd_offsets(data: bytes) -> list[int]:
    out, off = [], struct.unpack_from("<I", data, 4)[0]
    while off:
        out.append(off)
        n = struct.unpack_from("<H", data, off)[0]
        off = struct.unpack_from("<I", data, off + 2 + 12 * n)[0]
    return out


def set_tag(data: bytes, page: int, tag: int, value: int) -> bytes:
    b = bytearray(data)
    off = ifd_offsets(data)[page]
    n = struct.unpack_from("<H", b, off)[0]
    for i in range(n):
        t, typ, _cnt = struct.unpack_from("<HHI", b, off + 2 + 12 * i)
        if t == tag:
            if typ == 3:
                struct.pack_into("<H", b, off + 2 + 12 * i + 8, value)
            else:
                struct.pack_into("<I", b, off + 2 + 12 * i + 8, value)
            return bytes(b)
    raise AssertionError(f"tag {tag} not found")


def test_our_documents_validate(tmp_path: Path) -> None:
    path = tmp_path / "d.tif"
    path.write_bytes(doc(3))
    info = validate_tiff(path, decode=True)
    assert info.page_count == 3 and info.pages[0].coding == "MH" and info.pages[0].fine
    assert info.source == str(path)


def test_text_pages_render_and_decode(tmp_path: Path) -> None:
    path = tmp_path / "t.tif"
    text_document(path, [["HELLO, FAX!", "page 1"], ["page 2"]], fine=False)
    info = validate_tiff(path, decode=True)
    assert info.page_count == 2 and not info.pages[0].fine and info.pages[0].length == 1143
    rows = text_page(["X"], fine=True, rows=400)
    assert any(any(r) for r in rows) and len(rows) == 400


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda: b"", "too short"),
        (lambda: b"%PDF-1.7\n" + bytes(100), "not a TIFF"),
        (lambda: b"II\x2b\x00" + bytes(20), "BigTIFF"),
        (lambda: b"II\x2a\x00" + struct.pack("<I", 0), "zero pages"),
        (lambda: doc()[:-30], "truncated"),
        (lambda: doc()[:200], "truncated"),
        (lambda: set_tag(doc(), 1, 256, 1000), "wrong width 1000"),
        (lambda: set_tag(doc(), 0, 259, 1), "unsupported compression 1"),
        (lambda: set_tag(doc(), 0, 259, 5), "unsupported compression 5"),
        (lambda: set_tag(doc(), 0, 292, 2), "uncompressed mode"),
        (lambda: set_tag(doc(), 0, 258, 8), "not a bilevel"),
        (lambda: set_tag(doc(), 0, 273, 10_000_000), "truncated"),
    ],
)
def test_bad_documents_are_refused(make: object, problem: str) -> None:
    assert callable(make)
    with pytest.raises(ValidationError, match=problem) as err:
        validate_tiff_bytes(make(), "fax.tif")
    assert str(err.value).startswith("fax.tif: ")


def test_ifd_loop_is_detected() -> None:
    data = bytearray(doc(2))
    first, second = ifd_offsets(bytes(data))
    n = struct.unpack_from("<H", data, second)[0]
    struct.pack_into("<I", data, second + 2 + 12 * n, first)  # page 2 links back to page 1
    with pytest.raises(ValidationError, match="loop"):
        validate_tiff_bytes(bytes(data), "loop.tif")


def test_page_limit() -> None:
    data = doc(6, rows=1)
    assert validate_tiff_bytes(data, max_pages=6).page_count == 6
    with pytest.raises(ValidationError, match="more than 5 pages"):
        validate_tiff_bytes(data, "big.tif", max_pages=5)


def test_huge_claimed_page_count_is_bounded() -> None:
    # A chain of 600 tiny directories: refused at the limit, without reading past it.
    with pytest.raises(ValidationError, match="more than 500 pages"):
        validate_tiff_bytes(doc(501, rows=1), "many.tif")


def test_bad_image_data_found_when_decoding() -> None:
    data = bytearray(doc(1, rows=4))
    data[8:14] = b"\xff" * 6  # first bytes of the strip
    validate_tiff_bytes(bytes(data))  # structure is fine
    with pytest.raises(ValidationError, match="bad image data"):
        validate_tiff_bytes(bytes(data), "bad.tif", decode=True)


def test_resolution_must_be_fax() -> None:
    data = bytearray(doc(1))
    # YResolution rational sits right after the strip: numerator 196 → 300
    pos = bytes(data).find(struct.pack("<IIII", 204, 1, 196, 1))
    struct.pack_into("<I", data, pos + 8, 300)
    with pytest.raises(ValidationError, match="vertical resolution 300"):
        validate_tiff_bytes(bytes(data), "r.tif")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="cannot read"):
        validate_tiff(tmp_path / "nope.tif")
