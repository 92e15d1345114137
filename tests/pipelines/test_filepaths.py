"""IMGSCRAPER_FILE_PATH: templates parsed, refused with a hint, and filled in with safe components."""

from __future__ import annotations

import pytest

from imgscraper.pipelines.filepaths import (
    DEFAULT_FILE_PATH, MAX_COMPONENT_BYTES, FilePathTemplate, image_fields, thumbnail_path,
)

UUID = "0b5e2c1a-7f3d-5e4a-9c2b-1d8e6f4a3b2c"
SHA256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
VALUES = {
    "uuid": UUID, "sha256": SHA256, "ext": ".jpg", "name": "harbour", "host": "cdn.example.com",
    "page_host": "example.com", "page_path": "blog/2023/post.html", "page_title": "Harbour", "alt": "Dawn",
    "date": "2026-05-01",
}


def render(template: str, **values: str) -> str:
    return FilePathTemplate.parse(template).render({**VALUES, **values})


def test_the_default_is_the_historical_layout():
    assert render(DEFAULT_FILE_PATH) == f"full/{UUID}.jpg"
    assert FilePathTemplate.parse(DEFAULT_FILE_PATH).from_bytes_only
    assert FilePathTemplate.parse(DEFAULT_FILE_PATH).folder == "full"


def test_every_field_fills_its_place_and_page_path_is_folders():
    template = "{page_host}/{page_path}/{date} {host} {page_title} {alt} {name}-{uuid}-{sha256}{ext}"
    assert render(template) == (
        f"example.com/blog/2023/post.html/2026-05-01 cdn.example.com Harbour Dawn harbour-{UUID}-{SHA256}.jpg"
    )
    assert not FilePathTemplate.parse(template).from_bytes_only
    assert FilePathTemplate.parse(template).folder == ""


def test_spaces_utf8_and_reserved_characters():
    path = render("{page_title}/{alt}/{name}-{uuid}{ext}", page_title="  Fotos:\tCafé  <Ünïcode> ",
                  alt='a/b\\c|d?e*f"g', name="café au lait\x07")
    assert path == f'Fotos_ Café _Ünïcode_/a_b_c_d_e_f_g/café au lait_-{UUID}.jpg'


@pytest.mark.parametrize(("value", "component"), [
    ("..", None), (".", None), ("   ", None), (" . hidden . ", "hidden"), ("...dots...", "dots"), ("\x00\x07", "__"),
])
def test_components_are_never_dot_dot_hidden_or_blank(value, component):
    path = render("{alt}/{uuid}{ext}", alt=value)
    assert path == (f"{component}/{UUID}.jpg" if component else f"{UUID}.jpg")


def test_page_path_folders_are_made_safe_one_by_one():
    assert render("{page_path}/{uuid}{ext}", page_path="a/../b/./c d/.git/e:f") == f"a/b/c d/git/e_f/{UUID}.jpg"
    assert render("{page_path}/{uuid}{ext}", page_path="") == f"{UUID}.jpg"


@pytest.mark.parametrize("name", ["é" * 120, "x" * 240, "日本語" * 40, "a" * 239 + "é"])
def test_a_long_name_is_cut_to_255_bytes_of_utf8_keeping_the_uuid_and_extension(name):
    path = render("{name}-{uuid}{ext}", name=name)
    assert MAX_COMPONENT_BYTES - 3 <= len(path.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert path.endswith(f"-{UUID}.jpg") and name.startswith(path.removesuffix(f"-{UUID}.jpg"))


def test_the_longest_fields_are_cut_first():
    path = render("{page_title} {alt} {name}-{sha256}{ext}", page_title="t" * 200, alt="short", name="n" * 100)
    assert len(path.encode("utf-8")) <= MAX_COMPONENT_BYTES
    assert path == f"{'t' * 79} short {'n' * 100}-{SHA256}.jpg"


def test_a_long_folder_is_cut_too():
    path = render("{page_title}/{uuid}{ext}", page_title="ß" * 200)
    folder, _ = path.split("/")
    assert folder == "ß" * 127 and len(folder.encode("utf-8")) == 254


@pytest.mark.parametrize(("template", "problem"), [
    ("{name}{ext}", "has no {uuid} or {sha256}"),
    ("full/{name}-{date}{ext}", "has no {uuid} or {sha256}"),
    ("{uuid}.{extension}", "has an unknown field {extension}"),
    ("{uuid:.8}{ext}", "has a format in {uuid}"),
    ("{uuid!r}{ext}", "has a format in {uuid}"),
    ("/srv/{uuid}{ext}", "is not a relative path"),
    ("full/{uuid}{ext}/", "is not a relative path"),
    ("full//{uuid}{ext}", "has an empty, . or .. folder"),
    ("../{uuid}{ext}", "has an empty, . or .. folder"),
    ("a:b/{uuid}{ext}", "has a character no file name may hold"),
    ("x{page_path}/{uuid}{ext}", "has {page_path} beside other text"),
    ("{uuid{ext}", "is not a path template"),
    ("", "is not a path template"),
    (None, "is not a path template"),
    ("x" * 250 + "{uuid}", "has a component longer than 255 bytes"),
])
def test_a_bad_template_says_what_is_wrong(template, problem):
    with pytest.raises(ValueError, match=problem.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")):
        FilePathTemplate.parse(template)


def test_literal_braces_are_written_twice():
    assert render("{{x}}/{uuid}{ext}") == f"{{x}}/{UUID}.jpg"


def test_image_fields_come_from_the_urls_decoded():
    assert image_fields("https://CDN.example.com/img/caf%C3%A9%20au%20lait.v2.jpg?w=1", "https://example.com/blog/a%20b/") == {
        "name": "café au lait.v2", "host": "cdn.example.com", "page_host": "example.com", "page_path": "blog/a b",
    }
    assert image_fields("data:image/png;base64,AAAA", "") == {"name": "", "host": "", "page_host": "", "page_path": ""}
    assert image_fields("https://example.com/", "https://[bad")["name"] == ""


@pytest.mark.parametrize(("path", "thumb"), [
    (f"full/{UUID}.png", f"thumbs/small/{UUID}.jpg"),
    (f"example.com/blog/harbour-{UUID}.jpeg", f"thumbs/small/example.com/blog/harbour-{UUID}.jpg"),
    (f"photos/v1.2-{UUID}", f"thumbs/small/photos/v1.2-{UUID}.jpg"),
])
def test_a_thumbnail_mirrors_its_image_path(path, thumb):
    assert thumbnail_path(path, "small") == thumb
