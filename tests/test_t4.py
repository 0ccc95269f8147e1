"""T.4 MH codec: tables, round trips, and an independent decoder (Pillow + libtiff) as the oracle."""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pytest

from zetafailover.spool import t4
from zetafailover.spool.tiff import read_page_rows, write_tiff

Image = pytest.importorskip("PIL.Image")
features = pytest.importorskip("PIL.features")


def random_rows(rng: random.Random, n: int, width: int = 1728, max_run: int = 400) -> list[bytes]:
    rows = []
    for _ in range(n):
        runs, total = [], 0
        while total < width:
            run = min(rng.randint(0, max_run), width - total)
            runs.append(run)
            total += run
        rows.append(t4.runs_to_row(runs, width))
    return rows


def to_pil_rows(im: object) -> list[bytes]:
    one = im.convert("1")  # type: ignore[attr-defined]
    raw = one.tobytes()  # Pillow mode "1": bit 1 = white
    stride = (one.width + 7) // 8
    return [bytes(b ^ 0xFF for b in raw[i * stride : (i + 1) * stride]) for i in range(one.height)]


def test_code_tables_are_prefix_free_and_complete() -> None:
    for colour in (0, 1):
        codes = t4._ENC[colour]
        assert set(range(64)) <= set(codes) and set(range(64, 2561, 64)) <= set(codes)
        values = list(codes.values())
        for a in values:
            assert a != t4.EOL
            for b in values:
                assert a == b or not b.startswith(a), (colour, a, b)


@pytest.mark.parametrize("fill_order", [1, 2])
@pytest.mark.parametrize("align", [False, True])
def test_round_trip(fill_order: int, align: bool) -> None:
    rows = random_rows(random.Random(fill_order * 10 + align), 60)
    rows += [bytes(216), b"\xff" * 216, b"\x80" + bytes(215), bytes(215) + b"\x01"]
    data = t4.encode_page(rows, fill_order=fill_order, align_eol=align, rtc=True)
    assert t4.decode_page(data, fill_order=fill_order) == rows
    assert t4.decode_page(data, rows=10, fill_order=fill_order) == rows[:10]


def test_every_run_length_of_both_colours() -> None:
    rows = [t4.runs_to_row([w, 1728 - w], 1728) for w in range(0, 1729, 7)]
    rows += [t4.runs_to_row([0, b, 1728 - b], 1728) for b in range(1, 1729, 5)]
    assert t4.decode_page(t4.encode_page(rows)) == rows


def test_bad_data_is_reported_with_the_row() -> None:
    good = t4.encode_page([bytes(216)] * 3)
    with pytest.raises(t4.T4DecodeError, match="row"):
        t4.decode_page(good[:6] + b"\xff\xff\xff\xff" + good[10:], rows=3)
    with pytest.raises(t4.T4DecodeError, match="ends after"):
        t4.decode_page(good, rows=5)


@pytest.mark.skipif(not features.check("libtiff"), reason="Pillow without libtiff")
def test_pillow_reads_our_tiff_f_pixel_for_pixel(tmp_path: Path) -> None:
    rng = random.Random(7)
    pages = [random_rows(rng, 120), random_rows(rng, 33, max_run=30), [bytes(216)] * 5]
    path = tmp_path / "ours.tif"
    write_tiff(path, pages)
    with Image.open(path) as im:
        assert im.n_frames == 3
        for k, rows in enumerate(pages):
            im.seek(k)
            assert im.size == (1728, len(rows))
            assert to_pil_rows(im) == rows, f"page {k} differs"


@pytest.mark.skipif(not features.check("libtiff"), reason="Pillow without libtiff")
@pytest.mark.parametrize("tiffinfo", [{}, {262: 0, 266: 2, 292: 4}])
def test_we_read_a_g3_tiff_that_pillow_wrote(tmp_path: Path, tiffinfo: dict[int, int]) -> None:
    rng = random.Random(11)
    rows = random_rows(rng, 80)
    im = Image.new("1", (1728, len(rows)), 255)
    flat = b"".join(bytes(b ^ 0xFF for b in r) for r in rows)
    im.frombytes(flat)
    path = tmp_path / "pillow.tif"
    info = dict(tiffinfo)
    if info:
        info[278] = len(rows)
    im.save(path, "TIFF", compression="group3", dpi=(204, 196), tiffinfo=info)
    assert read_page_rows(path, 0) == rows
    buf = io.BytesIO(path.read_bytes())
    assert struct.unpack("<H", buf.getvalue()[2:4])[0] == 42
