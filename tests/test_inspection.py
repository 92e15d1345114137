"""imgscraper.inspection: formats, sizes and rejections from bytes alone."""

from io import BytesIO

import pytest
from PIL import Image

from imgscraper.inspection import ImageInfo, ImageRejected, inspect_image, parse_svg_length


def encode(fmt: str, size=(30, 20), mode="RGB", **params) -> bytes:
    buf = BytesIO()
    Image.new(mode, size, 128 if mode == "L" else (10, 200, 30, 0)[: len(mode)]).save(buf, fmt, **params)
    return buf.getvalue()


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


def test_svg_with_svg_root_is_an_image():
    body = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="120px" height="80"/>'
    assert inspect_image(body, "image/svg+xml") == ImageInfo("SVG", 120, 80)


def test_svg_size_falls_back_to_view_box():
    body = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 64 32" width="100%"></svg>'
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
    buf = BytesIO()
    Image.effect_noise((200, 200), 60).convert("RGB").save(buf, fmt)
    with pytest.raises(ImageRejected) as raised:
        inspect_image(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
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
