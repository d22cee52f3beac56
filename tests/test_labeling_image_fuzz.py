"""The image reader against hostile files: seeded random mutations of valid PNG, JPEG, GIF, WEBP and BMP
images, and headers that claim huge sizes. No exception may escape; every file that cannot be shown
whole is left out of the run and logged, and every file kept decodes completely.
"""

from __future__ import annotations

import io
import logging
import random
import struct
import zlib
from pathlib import Path

from conftest import make_run_dir
from PIL import Image

from labeling_app.run_dir import MAX_IMAGE_PIXELS
from labeling_app.store import open_run_store

FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP")
PER_FORMAT = 60


def valid_image(image_format: str) -> bytes:
    image = Image.new("RGB", (48, 40))
    image.putdata([(x * 5, y * 6, (x * y) % 256) for y in range(40) for x in range(48)])
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One of the ways a file goes bad: flipped bytes, a cut, inserted junk, a field set to its maximum."""
    data = bytearray(data)
    kind = rng.randrange(4)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:
        del data[rng.randrange(1, len(data)):]
    elif kind == 2:
        at = rng.randrange(len(data))
        data[at:at] = rng.randbytes(rng.randint(1, 64))
    else:  # headers hold sizes near the start: a length or a dimension set to all ones
        at = rng.randrange(min(len(data) - 4, 64))
        data[at:at + 4] = b"\xff\xff\xff\xff"
    return bytes(data)


def png_claiming(width: int, height: int) -> bytes:
    """A small valid-looking PNG whose header (checksum right) claims width x height pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 1024)) + chunk(b"IEND", b"")


def test_no_mutated_image_raises_and_every_bad_one_is_left_out_and_logged(tmp_path: Path, caplog):
    rng = random.Random(20261206)
    files = [mutate(valid_image(f), rng) for f in FORMATS for _ in range(PER_FORMAT)]
    files += [png_claiming(30000, 30000), png_claiming(5000, 5000), valid_image("PNG")]
    run = make_run_dir(tmp_path, len(files))
    for i, data in enumerate(files):
        (run / "images" / f"{i:06d}.png").write_bytes(data)

    with caplog.at_level(logging.WARNING, logger="labeling_app.store"):
        store = open_run_store(run)
    broken = store.broken_samples()
    for sample_id in store.sample_ids():  # kept: the whole image decodes, at a size the app shows
        with Image.open(run / "images" / f"{sample_id}.png") as image:
            image.load()
            assert image.width * image.height <= MAX_IMAGE_PIXELS
    logged = caplog.text
    for sample_id, problem in broken.items():
        assert f"sample {sample_id} is left out: {problem}" in logged
    assert {f"{len(files) - 3:06d}", f"{len(files) - 2:06d}"} <= broken.keys()  # the two huge headers
    assert all("too many pixels" in broken[f"{len(files) - k:06d}"] for k in (2, 3))
    assert f"{len(files) - 1:06d}" not in broken  # the valid one
    assert 0.2 < len(broken) / len(files) < 0.95, len(broken)  # the mutations are neither all harmless nor all fatal
