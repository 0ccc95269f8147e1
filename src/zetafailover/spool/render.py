"""Make TIFF-F pages for the demo and tests: from plain text (a built-in 5×7 bitmap font) or from an image.

Text rendering needs nothing outside the standard library. Image rendering uses Pillow when it is
installed (it is a test dependency, not a runtime one) and raises a clear error otherwise.
Timing: ≈50 ms a page (dominated by MH encoding).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from zetafailover.errors import ValidationError
from zetafailover.spool import t4
from zetafailover.spool.tiff import FAX_WIDTH, write_tiff

__all__ = ["image_page", "text_document", "text_page"]

_GLYPHS = {
    " ": "00000 00000 00000 00000 00000 00000 00000",
    "0": "01110 10001 10011 10101 11001 10001 01110",
    "1": "00100 01100 00100 00100 00100 00100 01110",
    "2": "01110 10001 00001 00010 00100 01000 11111",
    "3": "11111 00010 00100 00010 00001 10001 01110",
    "4": "00010 00110 01010 10010 11111 00010 00010",
    "5": "11111 10000 11110 00001 00001 10001 01110",
    "6": "00110 01000 10000 11110 10001 10001 01110",
    "7": "11111 00001 00010 00100 01000 01000 01000",
    "8": "01110 10001 10001 01110 10001 10001 01110",
    "9": "01110 10001 10001 01111 00001 00010 01100",
    "A": "01110 10001 10001 11111 10001 10001 10001",
    "B": "11110 10001 10001 11110 10001 10001 11110",
    "C": "01110 10001 10000 10000 10000 10001 01110",
    "D": "11100 10010 10001 10001 10001 10010 11100",
    "E": "11111 10000 10000 11110 10000 10000 11111",
    "F": "11111 10000 10000 11110 10000 10000 10000",
    "G": "01110 10001 10000 10111 10001 10001 01111",
    "H": "10001 10001 10001 11111 10001 10001 10001",
    "I": "01110 00100 00100 00100 00100 00100 01110",
    "J": "00111 00010 00010 00010 00010 10010 01100",
    "K": "10001 10010 10100 11000 10100 10010 10001",
    "L": "10000 10000 10000 10000 10000 10000 11111",
    "M": "10001 11011 10101 10101 10001 10001 10001",
    "N": "10001 10001 11001 10101 10011 10001 10001",
    "O": "01110 10001 10001 10001 10001 10001 01110",
    "P": "11110 10001 10001 11110 10000 10000 10000",
    "Q": "01110 10001 10001 10001 10101 10010 01101",
    "R": "11110 10001 10001 11110 10100 10010 10001",
    "S": "01111 10000 10000 01110 00001 00001 11110",
    "T": "11111 00100 00100 00100 00100 00100 00100",
    "U": "10001 10001 10001 10001 10001 10001 01110",
    "V": "10001 10001 10001 10001 10001 01010 00100",
    "W": "10001 10001 10001 10101 10101 10101 01010",
    "X": "10001 10001 01010 00100 01010 10001 10001",
    "Y": "10001 10001 10001 01010 00100 00100 00100",
    "Z": "11111 00001 00010 00100 01000 10000 11111",
    ".": "00000 00000 00000 00000 00000 01100 01100",
    ",": "00000 00000 00000 00000 01100 00100 01000",
    ":": "00000 01100 01100 00000 01100 01100 00000",
    "-": "00000 00000 00000 11111 00000 00000 00000",
    "+": "00000 00100 00100 11111 00100 00100 00000",
    "/": "00000 00001 00010 00100 01000 10000 00000",
    "(": "00010 00100 01000 01000 01000 00100 00010",
    ")": "01000 00100 00010 00010 00010 00100 01000",
    "!": "00100 00100 00100 00100 00100 00000 00100",
    "?": "01110 10001 00001 00010 00100 00000 00100",
    "#": "01010 01010 11111 01010 11111 01010 01010",
    "*": "00000 00100 10101 01110 10101 00100 00000",
    "'": "01100 00100 01000 00000 00000 00000 00000",
    '"': "01010 01010 01010 00000 00000 00000 00000",
    "=": "00000 00000 11111 00000 11111 00000 00000",
    "@": "01110 10001 00001 01101 10101 10101 01110",
    "_": "00000 00000 00000 00000 00000 00000 11111",
    "%": "11000 11001 00010 00100 01000 10011 00011",
    "&": "01100 10010 10100 01000 10101 10010 01101",
}
_UNKNOWN = "11111 10001 10001 10001 10001 10001 11111"
_SCALE_X = 3
_CELL_X = 6 * _SCALE_X
_MARGIN_X = 96


def _glyph_rows(ch: str) -> list[str]:
    return _GLYPHS.get(ch.upper(), _GLYPHS[" "] if ch.isspace() else _UNKNOWN).split()


def text_page(lines: Sequence[str], *, fine: bool = True, rows: int | None = None) -> list[bytes]:
    """Rows (packed, 1 = black, 1728 wide) of one page showing ``lines`` in the built-in font (upper case)."""
    scale_y = 6 if fine else 3
    line_h = 9 * scale_y
    height = rows if rows is not None else (2287 if fine else 1143)
    per_line = (FAX_WIDTH - 2 * _MARGIN_X) // _CELL_X
    bits = [bytearray(FAX_WIDTH) for _ in range(height)]
    y0 = 4 * line_h
    for text in lines:
        for start in range(0, max(1, len(text)), per_line):
            chunk = text[start : start + per_line]
            if y0 + 7 * scale_y >= height - line_h:
                break
            for i, ch in enumerate(chunk):
                x0 = _MARGIN_X + i * _CELL_X
                for gy, pattern in enumerate(_glyph_rows(ch)):
                    for gx, bit in enumerate(pattern):
                        if bit == "1":
                            for dy in range(scale_y):
                                row = bits[y0 + gy * scale_y + dy]
                                row[x0 + gx * _SCALE_X : x0 + (gx + 1) * _SCALE_X] = b"\x01" * _SCALE_X
            y0 += line_h
    return [_pack(r) for r in bits]


def _pack(pixels: bytearray) -> bytes:
    s = pixels.translate(bytes([48, 49]) + bytes(254)).decode("ascii")
    return int(s, 2).to_bytes(FAX_WIDTH // 8, "big")


def text_document(path: str | Path | None, pages: Sequence[Sequence[str]], *, fine: bool = True) -> bytes:
    """Write a TIFF-F document with one page per entry of ``pages`` (each a list of text lines)."""
    return write_tiff(path, [text_page(p, fine=fine) for p in pages], fine=fine)


def image_page(image_path: str | Path, *, fine: bool = True) -> list[bytes]:
    """Rows of a page made from an image file (scaled to 1728 wide, dithered); needs Pillow."""
    try:
        from PIL import Image  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ValidationError(f"{image_path}: rendering an image needs Pillow, which is not installed") from None
    try:
        with Image.open(image_path) as im:
            im.load()
            grey = im.convert("L")
    except (OSError, ValueError) as exc:
        raise ValidationError(f"{image_path}: cannot read the image: {exc}") from None
    y_scale = (196 if fine else 98) / 204
    h = max(1, round(grey.height * FAX_WIDTH / grey.width * y_scale))
    bw = grey.resize((FAX_WIDTH, h)).convert("1")
    raw = bw.tobytes()  # 1 = white in Pillow's mode "1"
    stride = FAX_WIDTH // 8
    return [bytes(b ^ 0xFF for b in raw[i * stride : (i + 1) * stride]) for i in range(h)]


_ = t4  # the codec is what write_tiff uses; imported here so the module's dependency is explicit
