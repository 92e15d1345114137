"""A broad crawl's pages: many article pages on several hosts, listed in a URL file.

Each page is shaped like a news or blog article (50-150 KB of HTML): meta tags, a linked style
sheet and a ``<style>`` block with background images, inline scripts (a large bundle, JSON-LD
naming images, a config object quoting image URLs), navigation and footer links, paragraphs of
text, and tens of images as ``<img src>``, ``srcset`` (largest candidate stored), ``<picture>``,
lazy ``data-src`` and CSS backgrounds, half of them on a shared CDN host. Every image a crawl
downloads exists (small, distinct files).

Hosts are loopback addresses, ``127.0.0.<2..hosts+1>`` for pages and :data:`CDN_HOST` for the
CDN, all served by one nginx from one root on one port (:func:`bench.servers.nginx` with
``addresses``). The pages are generated once with a placeholder for the port, and written out
for the port of each run by :func:`write_pages`.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.site import cached_manifest

__all__ = ["BroadSpec", "BROAD", "CDN_HOST", "page_hosts", "ensure_broad_site", "write_pages", "url_list"]

_PORT = "__PORT__"

#: Bump to regenerate cached sites after changing the generator.
GENERATOR_VERSION = 2
CDN_HOST = "127.0.0.100"

_WORDS = ("the of and to in a is that for it as was with be by on not he this are or his from at which but have an "
          "they you were her she there been one all we their has would when if so no what out up into more about "
          "market council election season players report city police school health water energy company week "
          "minister housing court study river season museum festival league price").split()


@dataclass(frozen=True)
class BroadSpec:
    """``pages`` article pages spread over ``hosts`` hosts, ``images`` distinct images each."""

    pages: int
    hosts: int
    images: int
    seed: int = 26


BROAD = BroadSpec(pages=520, hosts=8, images=30)


def page_hosts(spec: BroadSpec) -> list[str]:
    """The addresses the pages are served from (the CDN's is :data:`CDN_HOST`)."""
    return [f"127.0.0.{n}" for n in range(2, spec.hosts + 2)]


def _image(rng: random.Random, n: int) -> tuple[str, bytes]:
    """A small distinct image: (extension, bytes)."""
    fmt, ext = (("PNG", "png"), ("WEBP", "webp"), ("JPEG", "jpg"), ("JPEG", "jpg"))[n % 4]
    width, height = rng.choice(((64, 48), (80, 60), (48, 48)))
    picture = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    buf = io.BytesIO()
    picture.save(buf, fmt, **({"quality": 80} if fmt != "PNG" else {"compress_level": 1}))
    return ext, buf.getvalue()


def _text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(words))


def _bundle(rng: random.Random, size: int) -> str:
    """Minified-looking JavaScript of about ``size`` characters."""
    parts, length = [], 0
    while length < size:
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(6))
        part = (f"function {name}(e,t){{var n=e.{name}||{{}};return t&&t.length>{rng.randrange(99)}?"
                f"n[t[0]]:Object.assign({{}},n,{{k:'{_text(rng, 3)}'}})}};")
        parts.append(part)
        length += len(part)
    return "".join(parts)


def _small(url: str) -> str:
    """The URL of the smaller ``srcset`` candidate of ``url``."""
    stem, ext = url.rsplit(".", 1)
    return f"{stem}-320w.{ext}"


def _img_markup(n: int, url: str, alt: str) -> str:
    """The markup of one image, in one of the ways real pages reference them (kinds 1 and 2 name
    a smaller candidate too, as ``src`` or in ``srcset``)."""
    small = _small(url)
    kind = n % 6
    if kind == 0:
        return f'<img src="{url}" alt="{alt}" width="640" height="360" loading="lazy">'
    if kind == 1:
        return (f'<img src="{small}" srcset="{small} 320w, {url} 1280w" sizes="(max-width: 600px) 100vw, 640px" '
                f'alt="{alt}" decoding="async">')
    if kind == 2:
        return (f'<picture><source type="image/webp" srcset="{small} 320w, {url} 1280w">'
                f'<img src="{url}" alt="{alt}"></picture>')
    if kind == 3:
        return f'<img class="lazyload" src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7" data-src="{url}" alt="{alt}">'
    if kind == 4:
        return f'<figure><img src="{url}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'
    return f'<div class="thumb" style="background-image:url(\'{url}\')" role="img" aria-label="{alt}"></div>'


def _page(rng: random.Random, spec: BroadSpec, host: str, index: int, images: list[str], links: list[str]) -> str:
    title = _text(rng, 8).capitalize()
    metas = "".join(f'<meta name="x-{k}" content="{_text(rng, 6)}">' for k in range(15))
    og = f'<meta property="og:image" content="{images[0]}"><meta name="twitter:image" content="{images[1]}">'
    rules = " ".join(f".c{k}{{margin:{k}px;padding:{k % 7}px;color:#{rng.randrange(16 ** 6):06x}}}" for k in range(80))
    backgrounds = f".hero{{background:url({images[2]}) center/cover}} .band{{background-image:url({images[3]})}}"
    json_ld = {"@context": "https://schema.org", "@type": "NewsArticle", "headline": title,
               "image": images[4:7], "datePublished": "2026-12-01T08:00:00Z",
               "author": {"@type": "Person", "name": _text(rng, 2)}}
    config = {"page": index, "gallery": [{"src": u, "caption": _text(rng, 5)} for u in images[7:10]],
              "tracking": {"id": rng.randrange(10 ** 9), "tags": _text(rng, 20).split()}}
    nav = "".join(f'<li><a href="{link}">{_text(rng, 3)}</a></li>' for link in links)
    body = []
    for n, url in enumerate(images[10:]):
        body.append(f"<p>{_text(rng, rng.randrange(40, 120))}</p>")
        body.append(_img_markup(n, url, _text(rng, 4)))
    body += [f"<p>{_text(rng, rng.randrange(40, 120))}</p>" for _ in range(10)]
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>{metas}{og}'
        f'<link rel="stylesheet" href="http://{host}:{_PORT}/static/site.css">'
        f"<style>{rules} {backgrounds}</style>"
        f"<script>{_bundle(rng, rng.randrange(20_000, 70_000))}</script>"
        f'<script type="application/ld+json">{json.dumps(json_ld)}</script>'
        f"<script>window.__CONFIG__={json.dumps(config)};</script></head>"
        f'<body><header><img src="/static/logo.png" alt="logo"><nav><ul>{nav}</ul></nav><div class="hero"></div></header>'
        f'<main><article><h1>{title}</h1>{"".join(body)}</article><div class="band"></div></main>'
        f'<footer><ul>{nav}</ul><img src="/static/icon.png" alt=""><p>{_text(rng, 60)}</p></footer></body></html>'
    )


def ensure_broad_site(root: Path, spec: BroadSpec = BROAD) -> dict:
    """Generate ``spec`` under ``root`` unless it is there already; return its manifest: ``pages``
    (URL paths, each with its host), ``images`` (the number of distinct images) and ``bytes`` (HTML)."""
    if manifest := cached_manifest(root, GENERATOR_VERSION, spec):
        return manifest
    rng = random.Random(spec.seed)
    hosts = page_hosts(spec)
    (root / "static").mkdir(parents=True, exist_ok=True)
    (root / "robots.txt").write_text("User-agent: *\nAllow: /\n")
    pages: list[str] = []
    html_bytes = image_count = 0
    for index in range(spec.pages):
        host = hosts[index % len(hosts)]
        images = []
        for n in range(spec.images):
            ext, data = _image(rng, image_count)
            on_cdn = n % 2
            rel = f"{'cdn' if on_cdn else 'media'}/{index // 100}/{index}-{n}.{ext}"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
            if n >= 10 and (n - 10) % 6 in (1, 2):  # see _img_markup: a smaller candidate
                (root / _small(rel)).write_bytes(_image(rng, image_count)[1])
            images.append(f"http://{CDN_HOST if on_cdn else host}:{_PORT}/{rel}")
            image_count += 1
        links = [f"http://{host}:{_PORT}/news/{(index + k) % spec.pages}.html" for k in range(1, 41)]
        html = _page(rng, spec, host, index, images, links)
        (root / "templates").mkdir(exist_ok=True)
        (root / f"templates/{index}.html").write_text(html, encoding="utf-8")
        pages.append(f"{host}/news/{index}.html")
        html_bytes += len(html)
    for shared in ("logo.png", "icon.png"):
        (root / "static" / shared).write_bytes(_image(rng, 0)[1])
    sheet = " ".join(f".s{k}{{background:url(/static/icon.png)}}" for k in range(20))
    (root / "static/site.css").write_text(sheet + " .logo{background:url(logo.png)}")
    manifest = {"version": GENERATOR_VERSION, "spec": spec.__dict__, "pages": pages,
                "images": image_count + 2, "bytes": html_bytes}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return manifest


def write_pages(root: Path, manifest: dict, port: int) -> None:
    """Write the pages under ``root/news/`` with their URLs on ``port``."""
    (root / "news").mkdir(exist_ok=True)
    for index in range(len(manifest["pages"])):
        html = (root / f"templates/{index}.html").read_text(encoding="utf-8")
        (root / f"news/{index}.html").write_text(html.replace(_PORT, str(port)), encoding="utf-8")


def url_list(manifest: dict, port: int, count: int, path: Path) -> Path:
    """Write the first ``count`` pages' URLs on ``port`` to ``path``, one a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"http://{page.replace('/', f':{port}/', 1)}\n" for page in manifest["pages"][:count]))
    return path
