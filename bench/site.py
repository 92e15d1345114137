"""A generated image site: pages to depth 2, images of mixed formats and reference kinds."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

__all__ = ["SiteSpec", "LARGE", "SMALL", "cached_manifest", "ensure_site"]

#: Bump to regenerate cached sites after changing the generator.
GENERATOR_VERSION = 1

# (format, extension, share of images, sizes to pick from). Noise keeps the
# encoders from shrinking the files, so byte counts stay predictable.
FORMATS = [
    ("JPEG", "jpg", 0.55, [(400, 300), (480, 360), (560, 420), (640, 480)]),
    ("PNG", "png", 0.20, [(160, 120), (200, 150), (240, 180)]),
    ("WEBP", "webp", 0.15, [(400, 300), (480, 360), (560, 420)]),
    ("GIF", "gif", 0.10, [(240, 180), (320, 240)]),
]

# How each image is referenced, by image index modulo 20; only ``img-src``
# (12 in 20) is found by a plain ``img::attr(src)`` spider.
KINDS = ["img-src"] * 12 + ["lazy-data-src"] * 2 + ["srcset"] * 2 + ["style-attr"] * 2 + ["link"] + ["style-block"]


@dataclass(frozen=True)
class SiteSpec:
    """A site: ``images`` images spread over 1 + sections + sections * leaves pages."""

    name: str
    images: int
    sections: int
    leaves: int
    seed: int = 1

    @property
    def pages(self) -> int:
        return 1 + self.sections + self.sections * self.leaves


LARGE = SiteSpec("large", images=3000, sections=6, leaves=7)
SMALL = SiteSpec("small", images=300, sections=2, leaves=2)


def _image(rng: random.Random, fmt: str, size: tuple[int, int]) -> bytes:
    width, height = size
    buf = io.BytesIO()
    if fmt == "GIF":
        picture = Image.frombytes("P", size, rng.randbytes(width * height))
        picture.putpalette(rng.randbytes(768))
        picture.save(buf, "GIF")
    else:
        picture = Image.frombytes("RGB", size, rng.randbytes(width * height * 3))
        options = {"JPEG": {"quality": 85}, "PNG": {"compress_level": 1}, "WEBP": {"quality": 80, "method": 0}}
        picture.save(buf, fmt, **options[fmt])
    return buf.getvalue()


def _reference(kind: str, url: str, n: int) -> tuple[str, str]:
    """(markup in the body, rule for the page's <style> block)."""
    if kind == "img-src":
        return f'<img src="{url}" alt="image {n}" width="320">', ""
    if kind == "lazy-data-src":
        return f'<img class="lazy" data-src="{url}" alt="image {n}">', ""
    if kind == "srcset":
        return f'<img srcset="{url} 640w" sizes="50vw" alt="image {n}">', ""
    if kind == "style-attr":
        return f'<div class="tile" style="background-image: url(\'{url}\')"></div>', ""
    if kind == "link":
        return f'<a href="{url}">full size image {n}</a>', ""
    return f'<div class="hero-{n}"></div>', f".hero-{n} {{ background: url({url}) no-repeat; }}"


def _page(title: str, images: list[str], links: list[str], first: int) -> str:
    body, rules = [], []
    for offset, url in enumerate(images):
        n = first + offset
        markup, rule = _reference(KINDS[n % len(KINDS)], url, n)
        body.append(markup)
        if rule:
            rules.append(rule)
    og = f'<meta property="og:image" content="{images[0]}">' if images else ""
    nav = "".join(f'<li><a href="{link}">{link}</a></li>' for link in links)
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{title}</title>{og}"
        f"<style>{' '.join(rules)}</style></head><body><h1>{title}</h1>"
        f"<ul>{nav}</ul><main>{''.join(body)}</main></body></html>"
    )


def cached_manifest(root: Path, version: int, spec: Any) -> dict | None:
    """The manifest of the site under ``root`` if generator ``version`` made it from ``spec`` (a
    dataclass), else None."""
    manifest_path = root / "manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("version") == version and manifest.get("spec") == spec.__dict__:
            return manifest
    return None


def ensure_site(root: Path, spec: SiteSpec, prefix: str) -> dict:
    """Generate ``spec`` under ``root`` (served at URL path ``prefix``) unless
    it is there already; return its manifest: ``pages``, ``images`` (URL
    paths) and ``bytes``."""
    if manifest := cached_manifest(root, GENERATOR_VERSION, spec):
        return manifest
    manifest_path = root / "manifest.json"
    rng = random.Random(spec.seed)
    pages = ["index.html"]
    for s in range(spec.sections):
        pages.append(f"s{s}/index.html")
        pages += [f"s{s}/p{p}.html" for p in range(spec.leaves)]
    per_page, extra = divmod(spec.images, len(pages))
    images: list[str] = []
    total = 0
    formats = [f for f in FORMATS for _ in range(int(f[2] * 100))]
    first = 0
    for index, page in enumerate(pages):
        count = per_page + (1 if index < extra else 0)
        page_images = []
        for n in range(first, first + count):
            fmt, ext, _, sizes = formats[rng.randrange(len(formats))]
            rel = f"img/{n // 500}/{n}.{ext}"
            data = _image(rng, fmt, rng.choice(sizes))
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            total += len(data)
            page_images.append(prefix + rel)
        if page == "index.html":
            links = [f"{prefix}s{s}/index.html" for s in range(spec.sections)]
        elif page.endswith("/index.html"):
            section = page.split("/")[0]
            links = [prefix + "index.html"] + [f"{prefix}{section}/p{p}.html" for p in range(spec.leaves)]
        else:
            links = [prefix + "index.html"]
        target = root / page
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(_page(f"{spec.name} {page}", page_images, links, first), encoding="utf-8")
        images += page_images
        first += count
    manifest = {"version": GENERATOR_VERSION, "spec": spec.__dict__, "pages": len(pages), "images": images,
                "bytes": total, "img_src_images": sum(1 for n in range(len(images)) if KINDS[n % 20] == "img-src")}
    manifest_path.write_text(json.dumps(manifest))
    return manifest
