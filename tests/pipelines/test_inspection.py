"""imgscraper.pipelines.inspection: formats, sizes and rejections from bytes alone."""

from io import BytesIO

import pytest
from PIL import Image

from imgscraper.exceptions import ImageRejected
from imgscraper.pipelines.inspection import ImageInfo, _read_container_header, inspect_image, parse_svg_length
from tests.support import images


def encode(fmt: str, size=(30, 20), mode="RGB", **params) -> bytes:
    """A plain picture in ``mode``, saved in ``fmt``."""
    return images.encode(Image.new(mode, size, 128 if mode == "L" else (10, 200, 30, 0)[: len(mode)]), fmt, **params)


@pytest.mark.parametrize(
    ("fmt", "mode", "expected_format", "extension", "params"),
    [
        ("JPEG", "RGB", "JPEG", "jpg", {}),
        ("PNG", "RGBA", "PNG", "png", {}),
        ("GIF", "RGB", "GIF", "gif", {}),
        ("WEBP", "RGBA", "WEBP", "webp", {}),
        ("AVIF", "RGB", "AVIF", "avif", {}),
        ("BMP", "RGB", "BMP", "bmp", {}),
        ("TIFF", "RGB", "TIFF", "tif", {}),
        ("ICO", "RGBA", "ICO", "ico", {"sizes": [(30, 20)]}),
    ],
)
def test_raster_formats_are_identified_from_the_header(fmt, mode, expected_format, extension, params):
    info = inspect_image(encode(fmt, mode=mode, **params))
    assert info == ImageInfo(expected_format, 30, 20)
    assert info.extension == extension
    Image.init()  # every plugin: Pillow's media type for the format
    assert info.media_type == Image.MIME[expected_format]


def test_svg_with_svg_root_is_an_image():
    body = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120px" height="80"><path d="M0 0h9"/></svg>'
    assert inspect_image(body, "image/svg+xml") == ImageInfo("SVG", 120, 80)


@pytest.mark.parametrize(
    "body",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 800 600"></svg>',
        b"<svg xmlns='http://www.w3.org/2000/svg' width='3' height='2'><!-- lazy --></svg>",
    ],
)
def test_svg_without_elements_is_blank(body):
    assert inspect_image(body, "image/svg+xml").blank


def test_svg_size_falls_back_to_view_box():
    body = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 32" width="100%"><circle r="9"/></svg>'
    assert inspect_image(body) == ImageInfo("SVG", 64, 32)


def test_svg_content_type_on_html_is_rejected():
    with pytest.raises(ImageRejected) as raised:
        inspect_image(b"<html><body>hi</body></html>", "image/svg+xml")
    assert raised.value.reason == "not-an-image"


@pytest.mark.parametrize("body", [b"<!doctype html><html><img src=x></html>", b"GIF87 but not really", b"\x00" * 100])
def test_non_images_are_rejected(body):
    with pytest.raises(ImageRejected) as raised:
        inspect_image(body, "image/jpeg")
    assert raised.value.reason == "not-an-image"


def test_empty_body_is_rejected():
    with pytest.raises(ImageRejected) as raised:
        inspect_image(b"")
    assert raised.value.reason == "empty"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_truncated_images_are_rejected(fmt):
    body = images.encode(Image.effect_noise((200, 200), 60).convert("RGB"), fmt)
    with pytest.raises(ImageRejected) as raised:
        inspect_image(body[: len(body) * 2 // 3])
    assert raised.value.reason == "truncated"


def test_trailing_bytes_after_a_complete_jpeg_are_tolerated():
    assert inspect_image(encode("JPEG") + b"\0\0\n").format == "JPEG"


def test_decompression_bomb_is_rejected_from_the_header():
    # 12,000 x 12,000 = 144 MP > Image.MAX_IMAGE_PIXELS, in a few hundred bytes.
    body = encode("PNG", size=(12_000, 12_000), mode="L", optimize=True)
    assert len(body) < 300_000
    with pytest.raises(ImageRejected) as raised:
        inspect_image(body)
    assert raised.value.reason == "decompression-bomb"


@pytest.mark.parametrize(("value", "expected"), [("12", 12), ("12.6px", 13), ("50%", None), ("", None), (None, None)])
def test_parse_svg_length(value, expected):
    assert parse_svg_length(value) == expected


def noise(fmt: str, size: tuple[int, int], mode: str = "RGB", **params) -> bytes:
    return images.encode(Image.effect_noise(size, 50).convert(mode), fmt, **params)


def animated(fmt: str, size: tuple[int, int]) -> bytes:
    frames = [Image.effect_noise(size, 50 + n).convert("RGB") for n in range(3)]
    return images.encode(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100)


CONTAINER_FILES = {
    "webp lossy": lambda: noise("WEBP", (640, 480)),
    "webp lossless": lambda: noise("WEBP", (333, 17), lossless=True),
    "webp alpha (VP8X)": lambda: noise("WEBP", (45, 1200), "RGBA"),
    "webp animated": lambda: animated("WEBP", (64, 40)),
    "avif": lambda: noise("AVIF", (640, 480)),
    "avif alpha (two items)": lambda: noise("AVIF", (45, 1200), "RGBA"),
    "avif 1x1": lambda: noise("AVIF", (1, 1)),
    "avif animated": lambda: animated("AVIF", (64, 40)),
}


@pytest.mark.parametrize("make", CONTAINER_FILES.values(), ids=CONTAINER_FILES.keys())
def test_webp_and_avif_size_from_the_container_is_pillows(make):
    body = make()
    with Image.open(BytesIO(body)) as image:
        expected = ImageInfo(image.format, *image.size)
    assert inspect_image(body) == expected
    # Read from the container, without Pillow's codec (or a decode, for AVIF).
    assert _read_container_header(body) == (expected.format, expected.width, expected.height)


@pytest.mark.parametrize("make", CONTAINER_FILES.values(), ids=CONTAINER_FILES.keys())
def test_webp_and_avif_cut_anywhere_are_rejected_as_truncated(make):
    body = make()
    for cut in sorted({12, 31, 64, 200, len(body) // 3, len(body) // 2, len(body) - 100, len(body) - 1}):
        with pytest.raises(ImageRejected) as raised:
            inspect_image(body[:cut])
        assert raised.value.reason in ("truncated", "not-an-image"), cut


def test_avif_larger_than_the_pixel_limit_is_a_decompression_bomb(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 640 * 480 - 1)
    with pytest.raises(ImageRejected) as raised:
        inspect_image(CONTAINER_FILES["avif"]())
    assert raised.value.reason == "decompression-bomb"
