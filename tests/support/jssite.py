"""A small generated site whose images JavaScript inserts, for the rendering tests.

:func:`generate_js_site` writes it under a directory served by
:class:`httpserver.HTTPTestServer`. ``index.html`` has one static image,
links to one page per way of inserting images, and a link a script adds to
``scripted.html`` (one image in its HTML):

``fetch.html``
    a script ``fetch()``-es a JSON list and adds an ``<img>`` per entry;
``scroll.html``
    infinite scroll: each time the page is scrolled to its bottom, the next
    JSON batch (three in all) adds an image and more page below it;
``background.html``
    a script sets an element's ``style.backgroundImage``, and inserts a CSS
    rule with a background into a style sheet (CSSOM only: never in the
    serialized DOM, so only the browser's request shows it);
``slideshow.html``
    an ``<img>`` whose ``src`` a timer swaps twice (only the last one is in
    the final DOM);
``blocked.html``
    a web font, a video and a tracker script (on ``localhost``, and one on
    google-analytics.com), which a renderer should not fetch.

Pages not linked from the index: ``late.html`` (adds an image 3 s after
loading, with no request in between) and ``busy.html`` (polls the server
every 100 ms forever, asks for a new URL every 100 ms too, so it is never
done, and has one static image).

Image URLs appear in no HTML nor script text, so only a browser finds them
(except ``static.png``, ``slide-1.png``, ``blocked-page.png``,
``scripted.png`` and ``busy.png``, which are in the HTML).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.images import png

__all__ = ["JSSite", "generate_js_site"]


@dataclass
class JSSite:
    base_url: str
    #: image file name -> the page (file name) showing it.
    images: dict[str, str] = field(default_factory=dict)
    #: images in the static HTML of the linked pages.
    static: set[str] = field(default_factory=set)
    #: images of the pages linked from the index.
    linked: set[str] = field(default_factory=set)

    def url(self, path: str) -> str:
        return self.base_url + path

    def image_url(self, name: str) -> str:
        return self.base_url + "img/" + name


PAGES = ["fetch.html", "scroll.html", "background.html", "slideshow.html", "blocked.html"]

# Built with join() so no image file name is ever spelled out in a page.
_JS_IMG = 'const img = (name) => ["img", name].join("/");'


def _page(title: str, body: str) -> str:
    return f"<!doctype html>\n<html><head><meta charset=utf-8><title>{title}</title></head>\n<body>\n{body}\n</body></html>\n"


def generate_js_site(root: Path, base_url: str, port: int) -> JSSite:
    """Write the site under ``root``; ``base_url`` ends with ``/``; ``port``
    is the server's (the tracker script is fetched from ``localhost:port``)."""
    root = Path(root)
    site = JSSite(base_url=base_url)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)

    def image(name: str, page: str, static: bool = False) -> str:
        (root / "img" / name).write_bytes(png(len(site.images) + 1, (24, 16)))
        site.images[name] = page
        if static:
            site.static.add(name)
        return name

    def write(name: str, html: str) -> None:
        (root / name).write_text(html, encoding="utf-8")

    links = "\n".join(f'<p><a href="{p}">{p}</a></p>' for p in PAGES)
    write("index.html", _page("index", f'''<img src="img/{image("static.png", "index.html", True)}">
{links}
<p id="more"></p>
<script>
const more = document.createElement("a");
more.href = ["scripted", "html"].join(".");
more.textContent = "more";
document.getElementById("more").append(more);
</script>'''))
    # Its image is in its HTML, but only a script links to the page.
    write("scripted.html", _page("scripted", f'<img src="img/{image("scripted.png", "scripted.html")}">'))

    gallery = [image("fetch-1.png", "fetch.html"), image("fetch-2.png", "fetch.html")]
    (root / "data" / "gallery.json").write_text(json.dumps([n.removesuffix(".png") for n in gallery]))
    write("fetch.html", _page("fetch", f"""<div id="gallery"></div>
<script>
{_JS_IMG}
fetch("data/gallery.json").then((r) => r.json()).then((names) => {{
  for (const name of names) {{
    const el = document.createElement("img");
    el.src = img(name + ".png");
    document.getElementById("gallery").append(el);
  }}
}});
</script>"""))

    for batch in (1, 2, 3):
        name = image(f"scroll-{batch}.png", "scroll.html")
        (root / "data" / f"scroll-{batch}.json").write_text(json.dumps([name.removesuffix(".png")]))
    write("scroll.html", _page("scroll", f"""<div id="feed"><div style="height:2000px">top</div></div>
<script>
{_JS_IMG}
let batch = 0, loading = false;
async function more() {{
  if (loading || batch >= 3) return;
  loading = true;
  batch += 1;
  const names = await (await fetch("data/scroll-" + batch + ".json")).json();
  const feed = document.getElementById("feed");
  for (const name of names) {{
    const el = document.createElement("img");
    el.src = img(name + ".png");
    el.width = 24;
    el.height = 16;
    feed.append(el);
  }}
  const more = document.createElement("div");
  more.style.height = "2000px";
  feed.append(more);
  loading = false;
}}
window.addEventListener("scroll", () => {{
  if (window.innerHeight + window.scrollY >= document.documentElement.scrollHeight - 100) more();
}});
</script>"""))

    bg, cssom = image("background.png", "background.html"), image("cssom.png", "background.html")
    write("background.html", _page("background", f"""<style>.tile {{ width: 40px; height: 40px }}</style>
<div id="hero" style="width:200px;height:100px"></div>
<div class="tile"></div>
<script>
{_JS_IMG}
document.getElementById("hero").style.backgroundImage = "url(" + img("{bg.removesuffix('.png')}" + ".png") + ")";
document.styleSheets[0].insertRule(".tile {{ background-image: url(" + img("{cssom.removesuffix('.png')}" + ".png") + ") }}");
</script>"""))

    slides = [image("slide-1.png", "slideshow.html", True), image("slide-2.png", "slideshow.html"),
              image("slide-3.png", "slideshow.html")]
    write("slideshow.html", _page("slideshow", f"""<img id="slide" src="img/{slides[0]}" width="24" height="16">
<script>
{_JS_IMG}
const slides = {json.dumps([s.removesuffix(".png") for s in slides[1:]])};
let shown = 0;
const timer = setInterval(() => {{
  document.getElementById("slide").src = img(slides[shown++] + ".png");
  if (shown === slides.length) clearInterval(timer);
}}, 150);
</script>"""))

    (root / "fonts").mkdir(exist_ok=True)
    (root / "fonts" / "face.woff2").write_bytes(b"wOF2" + bytes(64))
    (root / "media").mkdir(exist_ok=True)
    (root / "media" / "clip.mp4").write_bytes(bytes(64))
    (root / "tracker.js").write_text("window.tracked = true;\n")
    write("blocked.html", _page("blocked", f"""<style>
@font-face {{ font-family: Face; src: url(fonts/face.woff2) format("woff2"); }}
body {{ font-family: Face, sans-serif }}
</style>
<p>Some text in a web font.</p>
<video src="media/clip.mp4" autoplay muted width="40" height="30"></video>
<img src="img/{image("blocked-page.png", "blocked.html", True)}">
<script src="http://localhost:{port}/tracker.js"></script>
<script src="https://www.google-analytics.com/analytics.js"></script>"""))
    site.linked = set(site.images)

    late = image("late.png", "late.html")
    write("late.html", _page("late", f"""<div id="late"></div>
<script>
{_JS_IMG}
window.addEventListener("load", () => setTimeout(() => {{
  const el = document.createElement("img");
  el.src = img("{late.removesuffix('.png')}" + ".png");
  document.getElementById("late").append(el);
}}, 3000));
</script>"""))

    (root / "data" / "poll.json").write_text("{}")
    # Never done: besides polling, it asks for something new every 100 ms.
    write("busy.html", _page("busy", f"""<img src="img/{image("busy.png", "busy.html", True)}">
<script>
let fed = 0;
setInterval(() => fetch("data/poll.json?" + Date.now()), 100);
setInterval(() => fetch("data/feed-" + fed++ + ".json"), 100);
</script>"""))
    return site
