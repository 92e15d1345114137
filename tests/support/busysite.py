"""Pages whose network is never quiet, and "load more" buttons, for ``render=yes``.

:func:`generate_busy_site` writes the pages under a root served by an
:class:`httpserver.HTTPTestServer`, and adds the server's dynamic answers:
an EventSource stream (``/events``), a WebSocket (``/ws``, a minimal
RFC 6455 handshake and text frames from the standard library), and the
"load more" batches (``/more/...``, 300 ms late each).

Busy pages (:data:`BUSY_PAGES`), each showing every image it names within
``site.last_new[page]`` seconds of loading and then busy forever:

``swap.html``
    an ``<img>`` whose ``src`` a timer swaps every 300 ms over 5 images, round
    and round;
``poll.html``
    an XHR poll every 200 ms (a new ``?t=`` each time); the first answer
    names an image;
``stream.html``
    an EventSource and a WebSocket held open, each naming an image every
    300 ms (always the same one);
``carousel.html``
    an auto-playing carousel of 4 slides (one every 250 ms, forever: well within
    IMGSCRAPER_RENDER_SETTLE_MS, even on a loaded machine), each slide's image set when the slide comes;
``scroll.html``
    a ``scroll`` listener appending 3 batches of images, with a slideshow
    cycling over 2 images and a poll running all along;
``observer.html``
    an ``IntersectionObserver`` on a sentinel appending 3 batches, with an
    EventSource open all along.

Click pages (:data:`CLICK_PAGES`), a "Load more" button (``.more``) below a
tall block; each click fetches a batch of 2 images, 3 batches in all, after
which the button is ``disabled`` (``more-disabled.html``), removed
(``more-gone.html``), or stays and brings nothing (``more-stays.html``).

Image URLs are built by scripts, never spelled out, except the few in
``site.static``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.httpserver import HTTPTestServer, RequestHandler
from tests.support.images import png

__all__ = ["BUSY_PAGES", "CLICK_PAGES", "BusySite", "generate_busy_site"]

BUSY_PAGES = ["swap.html", "poll.html", "stream.html", "carousel.html", "scroll.html", "observer.html"]
CLICK_PAGES = ["more-disabled.html", "more-gone.html", "more-stays.html"]
CLICK_BATCHES = 3
#: Seconds the server takes to answer a "load more" batch.
MORE_DELAY = 0.3
#: Seconds a stream (EventSource, WebSocket) is held open at most.
STREAM_LIFETIME = 30

_JS_IMG = 'const img = (name) => ["img/", name, ".png"].join("");'
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass
class BusySite:
    base_url: str
    #: image file name -> the page showing it.
    images: dict[str, str] = field(default_factory=dict)
    #: images in the pages' HTML.
    static: set[str] = field(default_factory=set)
    #: page -> seconds after loading when it shows its last new image (scrolling aside).
    last_new: dict[str, float] = field(default_factory=dict)

    def url(self, path: str) -> str:
        return self.base_url + path

    def image_url(self, name: str) -> str:
        return self.base_url + "img/" + name

    def images_of(self, pages: list[str]) -> set[str]:
        return {name for name, page in self.images.items() if page in pages}


def _page(title: str, body: str) -> str:
    return f"<!doctype html>\n<html><head><meta charset=utf-8><title>{title}</title></head>\n<body>\n{body}\n</body></html>\n"


def _stream(handler: RequestHandler, headers: dict[str, str], status: int, messages, interval: float = 0.3) -> bool:
    """Answer with ``headers``, then write each of ``messages`` (bytes) every
    ``interval`` seconds until the client goes away (or STREAM_LIFETIME)."""
    handler.close_connection = True
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.end_headers()
    ends = time.monotonic() + STREAM_LIFETIME
    try:
        for message in messages:
            handler.wfile.write(message)
            handler.wfile.flush()
            if time.monotonic() > ends:
                break
            time.sleep(interval)
    except OSError:
        pass  # the page closed
    return True


def _forever(message: bytes):
    while True:
        yield message


def event_source(handler: RequestHandler) -> bool:
    return _stream(handler, {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}, 200,
                   _forever(b"data: stream-es\n\n"))


def websocket(handler: RequestHandler) -> bool:
    key = handler.headers.get("Sec-WebSocket-Key", "")
    if handler.headers.get("Upgrade", "").lower() != "websocket" or not key:
        handler.send_body("not a WebSocket handshake", status=400)
        return True
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    payload = b"stream-ws"
    frame = bytes([0x81, len(payload)]) + payload  # FIN, text; short, unmasked (server to client)
    return _stream(handler, {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": accept}, 101,
                   _forever(frame))


def more_batch(handler: RequestHandler) -> bool:
    """``/more/KIND-N.json``: the 2 image names of batch N (none past the last), late."""
    kind, _, number = handler.url_path.rsplit("/", 1)[1].removesuffix(".json").rpartition("-")
    time.sleep(MORE_DELAY)
    names = [f"{kind}-{number}-{side}" for side in "ab"] if int(number) <= CLICK_BATCHES else []
    handler.send_body(json.dumps(names), content_type="application/json", headers={"Cache-Control": "no-store"})
    return True


def generate_busy_site(root: Path, server: HTTPTestServer) -> BusySite:
    """Write the site under ``root`` (served by ``server``) and add the server's handlers."""
    root = Path(root)
    site = BusySite(base_url=server.url)
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)

    def image(name: str, page: str, static: bool = False) -> str:
        (root / "img" / f"{name}.png").write_bytes(png(len(site.images) + 1, (20, 12)))
        site.images[f"{name}.png"] = page
        if static:
            site.static.add(f"{name}.png")
        return name

    def write(name: str, body: str) -> None:
        (root / name).write_text(_page(name.removesuffix(".html"), body), encoding="utf-8")

    swaps = [image(f"swap-{i}", "swap.html", static=i == 0) for i in range(5)]
    write("swap.html", f"""<img id="swap" src="img/{swaps[0]}.png" width="20" height="12">
<script>
{_JS_IMG}
const names = {json.dumps(swaps)};
let shown = 0;
setInterval(() => {{ document.getElementById("swap").src = img(names[++shown % names.length]); }}, 300);
</script>""")
    site.last_new["swap.html"] = 4 * 0.3

    first = image("poll-0", "poll.html", static=True)
    polled = image("poll-1", "poll.html")
    (root / "data" / "poll.json").write_text(json.dumps({"image": polled}))
    write("poll.html", f"""<img src="img/{first}.png"><img id="polled" width="20" height="12">
<script>
{_JS_IMG}
setInterval(() => {{
  const xhr = new XMLHttpRequest();
  xhr.open("GET", "data/poll.json?t=" + Date.now());
  xhr.onload = () => {{
    const src = img(JSON.parse(xhr.responseText).image);
    const el = document.getElementById("polled");
    if (!el.src.endsWith(src)) el.src = src;
  }};
  xhr.send();
}}, 200);
</script>""")
    site.last_new["poll.html"] = 0.2

    image("stream-0", "stream.html", static=True)
    image("stream-es", "stream.html")
    image("stream-ws", "stream.html")
    write("stream.html", f"""<img src="img/stream-0.png"><img id="es" width="20" height="12"><img id="ws" width="20" height="12">
<script>
{_JS_IMG}
const show = (id) => (event) => {{
  const src = img(event.data);
  const el = document.getElementById(id);
  if (!el.src.endsWith(src)) el.src = src;
}};
new EventSource("events").onmessage = show("es");
new WebSocket("ws://" + location.host + "/ws").onmessage = show("ws");
</script>""")
    site.last_new["stream.html"] = 0.3

    slides = [image(f"carousel-{i}", "carousel.html") for i in range(4)]
    write("carousel.html", f"""<style>
#track {{ display: flex; width: 80px; overflow: hidden }}
#track img {{ flex: none; width: 80px; height: 48px; transition: transform 0.3s }}
</style>
<div id="track"></div>
<script>
{_JS_IMG}
const slides = {json.dumps(slides)}.map((name) => {{
  const el = document.createElement("img");
  el.dataset.name = name;
  document.getElementById("track").append(el);
  return el;
}});
let current = 0;
const show = () => {{
  const slide = slides[current % slides.length];
  if (!slide.src) slide.src = img(slide.dataset.name);
  for (const el of slides) el.style.transform = "translateX(" + (-100 * (current % slides.length)) + "%)";
  current += 1;
}};
show();
setInterval(show, 250);
</script>""")
    site.last_new["carousel.html"] = 3 * 0.25

    noise = [image(f"scroll-slide-{i}", "scroll.html") for i in range(2)]
    for batch in (1, 2, 3):
        (root / "data" / f"scroll-{batch}.json").write_text(json.dumps([image(f"scroll-{batch}", "scroll.html")]))
    write("scroll.html", f"""<img id="slide" width="20" height="12">
<div id="feed"><div style="height:2000px">top</div></div>
<script>
{_JS_IMG}
const noise = {json.dumps(noise)};
let tick = 0;
setInterval(() => {{ document.getElementById("slide").src = img(noise[tick++ % noise.length]); }}, 300);
setInterval(() => fetch("data/poll.json?t=" + Date.now()), 200);
let batch = 0, loading = false;
window.addEventListener("scroll", async () => {{
  if (loading || batch >= 3 || innerHeight + scrollY < document.documentElement.scrollHeight - 100) return;
  loading = true;
  batch += 1;
  const feed = document.getElementById("feed");
  for (const name of await (await fetch("data/scroll-" + batch + ".json")).json()) {{
    const el = document.createElement("img");
    el.src = img(name);
    feed.append(el);
  }}
  const more = document.createElement("div");
  more.style.height = "2000px";
  feed.append(more);
  loading = false;
}});
</script>""")
    site.last_new["scroll.html"] = 0.3

    for batch in (1, 2, 3):
        (root / "data" / f"observer-{batch}.json").write_text(json.dumps([image(f"observer-{batch}", "observer.html")]))
    write("observer.html", f"""<div id="feed"><div style="height:2000px">top</div></div>
<div id="sentinel" style="height:10px"></div>
<script>
{_JS_IMG}
new EventSource("events");
let batch = 0;
const observer = new IntersectionObserver(async (entries) => {{
  if (!entries.some((e) => e.isIntersecting) || batch >= 3) return;
  batch += 1;
  const feed = document.getElementById("feed");
  for (const name of await (await fetch("data/observer-" + batch + ".json")).json()) {{
    const el = document.createElement("img");
    el.src = img(name);
    el.width = 20;
    el.height = 12;
    feed.append(el);
  }}
  const more = document.createElement("div");
  more.style.height = "2000px";
  feed.append(more);
  if (batch >= 3) observer.disconnect();
}});
observer.observe(document.getElementById("sentinel"));
</script>""")
    site.last_new["observer.html"] = 0.0

    ends = {"disabled": 'button.disabled = true;', "gone": 'button.remove();', "stays": ""}
    for kind, end in ends.items():
        page = f"more-{kind}.html"
        for batch in range(1, CLICK_BATCHES + 1):
            for side in "ab":
                image(f"{kind}-{batch}-{side}", page)
        write(page, f"""<div style="height:1500px">top</div>
<div id="list"></div>
<button class="more">Load more</button>
<script>
{_JS_IMG}
let batch = 0;
const button = document.querySelector(".more");
button.addEventListener("click", async () => {{
  batch += 1;
  const names = await (await fetch("more/{kind}-" + batch + ".json")).json();
  for (const name of names) {{
    const el = document.createElement("img");
    el.src = img(name);
    el.width = 20;
    el.height = 12;
    document.getElementById("list").append(el);
  }}
  if (batch >= {CLICK_BATCHES}) {{ {end} }}
}});
</script>""")

    server.add_handler("/events", event_source)
    server.add_handler("/ws", websocket)
    server.add_handler("/more/*", more_batch)
    return site
