"""imgscraper.pipelines.nearduplicates: perceptual hashes of generated pictures and their copies, and the near-duplicate index."""

from __future__ import annotations

import io
import itertools
import random
import time

import pytest
from PIL import Image

from imgscraper.pipelines.nearduplicates import HashedImage, NearDuplicateIndex, hamming_distance, perceptual_hash
from tests.support.images import encode, picture

PICTURES = [f"picture-{n}" for n in range(12)]


def copies(img: Image.Image) -> dict[str, bytes]:
    """What sites do to one picture: resize it, recompress it, convert it, crop it a little."""
    width, height = img.size
    return {
        "half size": encode(img.resize((width // 2, height // 2), Image.Resampling.LANCZOS), "JPEG", quality=85),
        "thumbnail": encode(img.resize((width // 5, height // 5), Image.Resampling.BILINEAR), "JPEG", quality=75),
        "quality 40": encode(img, "JPEG", quality=40),
        "png": encode(img, "PNG"),
        "webp": encode(img, "WEBP", quality=60),
        "cropped 1%": encode(img.crop((8, 6, width - 8, height - 6)), "JPEG", quality=85),
    }


@pytest.mark.parametrize("name", PICTURES[:6])
def test_copies_of_a_picture_are_close(name):
    img = picture(name, (800, 600))
    original = perceptual_hash(encode(img, "JPEG", quality=90))
    distances = {kind: hamming_distance(original, perceptual_hash(data)) for kind, data in copies(img).items()}
    assert max(distances.values()) <= 4, distances


def test_different_pictures_are_far_apart():
    hashes = [perceptual_hash(encode(picture(name, (800, 600)), "JPEG", quality=85)) for name in PICTURES]
    distances = [hamming_distance(a, b) for a, b in itertools.combinations(hashes, 2)]
    assert min(distances) > 12, sorted(distances)[:5]
    assert 24 <= sorted(distances)[len(distances) // 2] <= 40


def test_hash_is_64_bits_half_of_them_set():
    phash = perceptual_hash(encode(picture("bits", (300, 200)), "PNG"))
    assert 0 <= phash < 1 << 64
    assert 28 <= phash.bit_count() <= 36  # bits say "above the median" of 64 coefficients
    assert perceptual_hash(encode(picture("bits", (300, 200)), "PNG")) == phash


def test_any_mode_and_animation():
    rgba = picture("modes", (120, 90)).convert("RGBA")
    for converted in (rgba, rgba.convert("P"), rgba.convert("L"), rgba.convert("CMYK")):
        fmt = "JPEG" if converted.mode in ("L", "CMYK") else "PNG"
        assert hamming_distance(perceptual_hash(encode(converted, fmt)), perceptual_hash(encode(rgba, "PNG"))) <= 6
    frames = [picture(f"frame-{n}", (60, 40)).quantize(64) for n in range(3)]
    gif = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    assert hamming_distance(perceptual_hash(gif), perceptual_hash(encode(frames[0], "PNG"))) <= 4


def test_a_jpeg_is_hashed_from_a_reduced_decode():
    big = encode(picture("big", (4000, 3000)), "JPEG", quality=85)
    with Image.open(io.BytesIO(big)) as image:
        image.draft("L", (64, 64))
        assert image.size == (500, 375) and image.mode == "L"  # 1/8 scale: 64 times fewer pixels to decode
    full = picture("big", (4000, 3000)).resize((32, 32), Image.Resampling.BOX)
    assert hamming_distance(perceptual_hash(big), perceptual_hash(encode(full, "PNG"))) <= 4


def test_not_an_image_raises():
    with pytest.raises(OSError):
        perceptual_hash(b"<html>not an image</html>")


def test_index_finds_a_near_duplicate_as_large_with_the_same_aspect():
    index = NearDuplicateIndex(max_distance=6, aspect_tolerance=0.03)
    stored = HashedImage(0xFFFF_0000_FFFF_0000, 800, 600, "full/a.jpg")
    index.add(stored)
    assert index.find(0xFFFF_0000_FFFF_0000, 800, 600) == stored
    assert index.find(0xFFFF_0000_FFFF_003F, 400, 300) == stored  # 6 bits apart, half as large
    assert index.find(0xFFFF_0000_FFFF_007F, 400, 300) is None  # 7 bits apart
    assert index.find(0xFFFF_0000_FFFF_0000, 1600, 1200) is None  # larger than the stored one
    assert index.find(0xFFFF_0000_FFFF_0000, 801, 600) is None
    assert index.find(0xFFFF_0000_FFFF_0000, 133, 100) == stored  # 4:3 rounded to pixels
    assert index.find(0xFFFF_0000_FFFF_0000, 400, 320) is None  # 5:4 is another picture
    closer = HashedImage(0xFFFF_0000_FFFF_0001, 1000, 750, "full/b.jpg")
    index.add(closer)
    assert index.find(0xFFFF_0000_FFFF_0003, 400, 300) == closer
    assert index.find(0xFFFF_0000_FFFF_0003, 1000, 750) == closer  # the only one as large


@pytest.mark.parametrize("max_distance", [0, 3, 6, 10])
def test_index_finds_every_hash_within_the_distance(max_distance):
    """Filing by ranges of bits misses none: every hash up to max_distance bits away is found, none further."""
    rng = random.Random(max_distance)
    index = NearDuplicateIndex(max_distance=max_distance, aspect_tolerance=0.03)
    stored = [HashedImage(rng.getrandbits(64), 100, 100, f"full/{n}.png") for n in range(300)]
    for image in stored:
        index.add(image)
    for image in stored[:50]:
        for distance in range(max_distance + 3):
            flipped = image.phash
            for bit in rng.sample(range(64), distance):
                flipped ^= 1 << bit
            found = index.find(flipped, 100, 100)
            if distance <= max_distance:
                assert found is not None and hamming_distance(found.phash, flipped) <= distance
            else:
                assert found is None or hamming_distance(found.phash, flipped) <= max_distance


def test_index_of_a_large_store_is_quick():
    rng = random.Random(1)
    index = NearDuplicateIndex(max_distance=6, aspect_tolerance=0.03)
    for n in range(100_000):
        index.add(HashedImage(rng.getrandbits(64), 800, 600, f"full/{n}.jpg"))
    started = time.process_time()
    for _ in range(100):
        index.find(rng.getrandbits(64), 400, 300)
    assert (time.process_time() - started) / 100 < 0.002, "a lookup compares a few hundred hashes, not 100,000"


def test_index_forgets_a_removed_image():
    """An image claimed and then not stored (a failed write) is no near-duplicate of anything."""
    index = NearDuplicateIndex(max_distance=6, aspect_tolerance=0.03)
    stored = HashedImage(0x0F0F_0F0F_0F0F_0F0F, 100, 50, "full/a.png")
    index.add(stored)
    assert index.find(stored.phash ^ 0b11, 50, 25) == stored
    index.remove(stored)
    assert index.find(stored.phash ^ 0b11, 50, 25) is None
    index.remove(stored)  # twice: nothing to forget
