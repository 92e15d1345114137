"""Tests for imgscraper.discovery: image and page link discovery in HTML, CSS and scripts."""

from __future__ import annotations

import pytest
from parsel import Selector

from imgscraper.discovery.css import css_image_urls, css_import_urls, find_css_images
from imgscraper.discovery.html import find_frames, find_images, find_page_links, find_page_title, find_stylesheets
from imgscraper.discovery.references import ImageRef
from imgscraper.discovery.srcset import SrcsetCandidate, parse_srcset, pick_srcset
from imgscraper.discovery.urls import image_url_digest, is_image_url

PAGE = "https://example.com/blog/post.html"
PNG_URI = (
    "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
)
GIF_URI = (
    "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
)


def found(html: str, **kwargs) -> list[tuple[str, str]]:
    """(url, source) of each image find_images() reports for *html*."""
    return [(image.url, image.source) for image in find_images(html, PAGE, **kwargs)]


def urls(html: str, **kwargs) -> list[str]:
    return [image.url for image in find_images(html, PAGE, **kwargs)]


# --- is_image_url ------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "a.jpg",
        "/full/PHOTO.JPG?w=2000",
        "https://cdn.example.com/x/y.webp#frag",
        "//cdn.example.com/icon.SVG",
        "photo.jpeg",
        "a.avif",
        "a.jxl",
        "a.heic",
        "favicon.ico",
    ],
)
def test_is_image_url(url):
    assert is_image_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "/page.html",
        "/image.php?file=a.jpg",
        "/photos/a.jpg/",
        "/photos.jpg/index",
        "https://example.jpg",
        "https://example.com/",
        "",
        "http://[::1/a.jpg",
    ],
)
def test_is_not_image_url(url):
    assert not is_image_url(url)


def test_image_url_digest_is_eight_bytes_of_the_url_key():
    digest = image_url_digest("http://example.com/a.jpg?b=2&a=1")
    assert len(digest) == 8
    assert digest == image_url_digest("http://example.com/a.jpg?a=1&b=2")  # the same canonical URL
    assert digest != image_url_digest("http://example.com/b.jpg?a=1&b=2")
    long_data_uri = "data:image/gif;base64," + "A" * 100_000
    assert len(image_url_digest(long_data_uri)) == 8
    assert image_url_digest(long_data_uri) != image_url_digest(long_data_uri + "A")


# --- parse_srcset ------------------------------------------------------------


def test_parse_srcset_keeps_commas_inside_urls():
    value = (
        "https://res.cloudinary.com/x/image/upload/w_300,h_200,c_fill/a.jpg 300w, "
        "https://res.cloudinary.com/x/image/upload/w_600,h_400,c_fill/a.jpg 600w"
    )
    assert parse_srcset(value) == [
        SrcsetCandidate(
            "https://res.cloudinary.com/x/image/upload/w_300,h_200,c_fill/a.jpg", 300
        ),
        SrcsetCandidate(
            "https://res.cloudinary.com/x/image/upload/w_600,h_400,c_fill/a.jpg", 600
        ),
    ]


def test_parse_srcset_descriptors():
    assert parse_srcset("a.jpg, b.jpg 2x, c.jpg 1.5x, d.jpg 100w, e.jpg 100w 50h") == [
        SrcsetCandidate("a.jpg"),
        SrcsetCandidate("b.jpg", density=2.0),
        SrcsetCandidate("c.jpg", density=1.5),
        SrcsetCandidate("d.jpg", width=100),
        SrcsetCandidate("e.jpg", width=100),
    ]


def test_parse_srcset_without_descriptors():
    assert parse_srcset("a.jpg") == [SrcsetCandidate("a.jpg")]
    # Without whitespace, a comma does not end a URL.
    assert parse_srcset("a.jpg,b.jpg") == [SrcsetCandidate("a.jpg,b.jpg")]


@pytest.mark.parametrize(
    "value",
    [
        "a.jpg 100w 2x",
        "a.jpg 2x 100w",
        "a.jpg 1x 2x",
        "a.jpg 100w 200w",
        "a.jpg -1x",
        "a.jpg 0w",
        "a.jpg -100w",
        "a.jpg 1.5w",
        "a.jpg abcx",
        "a.jpg 1.x",
        "a.jpg 2X",
        "a.jpg 100",
        "a.jpg foo",
        "a.jpg 50h",
        "a.jpg 2x 50h",
        "a.jpg (1x)",
    ],
)
def test_parse_srcset_drops_invalid_candidates(value):
    assert parse_srcset(f"{value}, ok.jpg 3x") == [
        SrcsetCandidate("ok.jpg", density=3.0)
    ]


def test_parse_srcset_trailing_commas_end_candidates():
    assert parse_srcset("a.jpg,, b.jpg 2x,") == [
        SrcsetCandidate("a.jpg"),
        SrcsetCandidate("b.jpg", density=2.0),
    ]
    assert parse_srcset(",,,") == []
    assert parse_srcset("") == []


def test_parse_srcset_whitespace_and_newlines():
    value = "\n   a.jpg\t320w,\n\n   b.jpg \n 640w  ,\r\n c.jpg\f960w\n"
    assert parse_srcset(value) == [
        SrcsetCandidate("a.jpg", 320),
        SrcsetCandidate("b.jpg", 640),
        SrcsetCandidate("c.jpg", 960),
    ]


def test_parse_srcset_tracks_parentheses_in_descriptors():
    # The comma inside parentheses does not end the candidate, which is
    # invalid as a whole; the next one still parses.
    assert parse_srcset("a.jpg 1x (x, y), b.jpg 2x") == [
        SrcsetCandidate("b.jpg", density=2.0)
    ]


def test_parse_srcset_data_uri():
    assert parse_srcset(f"{GIF_URI} 1x, b.jpg 2x") == [
        SrcsetCandidate(GIF_URI, density=1.0),
        SrcsetCandidate("b.jpg", density=2.0),
    ]


# --- pick_srcset -------------------------------------------------------------


def test_pick_srcset_largest_width():
    candidates = parse_srcset("s.jpg 320w, l.jpg 1280w, m.jpg 640w")
    assert pick_srcset(candidates) == ["l.jpg"]


def test_pick_srcset_largest_density_without_descriptor_as_1x():
    assert pick_srcset(parse_srcset("a.jpg, b.jpg 0.5x")) == ["a.jpg"]
    assert pick_srcset(parse_srcset("a.jpg, b.jpg 3x, c.jpg 2x")) == ["b.jpg"]


def test_pick_srcset_prefers_widths_over_densities():
    assert pick_srcset(parse_srcset("a.jpg 4x, b.jpg 100w")) == ["b.jpg"]


def test_pick_srcset_all():
    candidates = parse_srcset("s.jpg 320w, l.jpg 1280w")
    assert pick_srcset(candidates, "all") == ["s.jpg", "l.jpg"]


def test_pick_srcset_empty_and_unknown_mode():
    assert pick_srcset([]) == []
    with pytest.raises(ValueError):
        pick_srcset([SrcsetCandidate("a.jpg")], "smallest")


# --- css_image_urls ----------------------------------------------------------


def test_css_image_urls_quoting_and_whitespace():
    css = """
        a { background: url(a.png) }
        b { background: URL( "b.png" ) no-repeat }
        c { background-image: url('c d.png'), url(
            e.png
        ) }
        f { background: url(  " f.png  " ) }
    """
    assert css_image_urls(css) == ["a.png", "b.png", "c d.png", "e.png", "f.png"]


def test_css_image_urls_escapes():
    css = r"""a { background: url(a\(1\).png) url("b\"q.png") url('c\'s.png') url(\64 .png) }
              b { background: url("long\
name.png") }"""
    assert css_image_urls(css) == [
        "a(1).png",
        'b"q.png',
        "c's.png",
        "d.png",
        "longname.png",
    ]


def test_css_image_urls_image_set():
    css = """
        a { background-image: image-set("a.avif" type("image/avif"), 'a.png' 1x, url(a2.png) 2x) }
        b { background-image: -webkit-image-set(url("b.png") 1x, "b2.png" 2x) }
    """
    assert css_image_urls(css) == ["a.avif", "a.png", "a2.png", "b.png", "b2.png"]


def test_css_image_urls_skips_imports_fonts_comments_and_strings():
    css = """
        @import url("theme.css") screen;
        @import 'print.css' print;
        @namespace svg url(http://www.w3.org/2000/svg);
        @font-face { font-family: "X"; src: url(x.woff2) format("woff2"), url('x.ttf') }
        /* .old { background: url(old.png) } */
        p::before { content: "url(not-a-url.png)" }
        .new { background: url(new.png) }
        .myurl { x: myurl(nope.png) }
    """
    assert css_image_urls(css) == ["new.png"]


def test_css_image_urls_keeps_data_uris_and_custom_properties():
    css = f':root {{ --hero: url({PNG_URI}); }} a {{ mask: url("data:image/svg+xml,%3Csvg/%3E") }}'
    assert css_image_urls(css) == [PNG_URI, "data:image/svg+xml,%3Csvg/%3E"]


def test_css_image_urls_malformed():
    # A string missing its closing quote ends at the end of its line.
    assert css_image_urls('a { content: "oops\n} b { background: url(b.png) }') == [
        "b.png"
    ]
    assert css_image_urls('a { background: url("a.png }') == []
    assert css_image_urls("a { background: url(a b.png) }") == []
    # This would take minutes to a backtracking regex.
    assert css_image_urls('image-set("\\' * 20_000) == []


# --- find_images: each kind of reference -------------------------------------


def test_img_src_resolved():
    assert found('<img src="a.jpg"><img src="/b.png"><img src="../c.gif">') == [
        ("https://example.com/blog/a.jpg", "img"),
        ("https://example.com/b.png", "img"),
        ("https://example.com/c.gif", "img"),
    ]


def test_img_src_and_largest_srcset():
    html = '<img src="small.jpg" srcset="small.jpg 1x, big.jpg 2x, medium.jpg 1.5x">'
    assert found(html) == [
        ("https://example.com/blog/small.jpg", "img"),
        ("https://example.com/blog/big.jpg", "srcset"),
    ]


def test_srcset_all():
    html = '<img src="small.jpg" srcset="small.jpg 1x, big.jpg 2x, medium.jpg 1.5x">'
    assert found(html, srcset="all") == [
        ("https://example.com/blog/small.jpg", "img"),
        ("https://example.com/blog/big.jpg", "srcset"),
        ("https://example.com/blog/medium.jpg", "srcset"),
    ]


def test_unknown_srcset_mode():
    with pytest.raises(ValueError):
        find_images("<p>", PAGE, srcset="smallest")


def test_picture_sources():
    html = """
        <picture>
          <source type="image/avif" srcset="https://cdn.example.com/w_400,f_avif/a.avif 400w,
                                            https://cdn.example.com/w_800,f_avif/a.avif 800w">
          <source type="image/webp" srcset="/a-400.webp 400w, /a-800.webp 800w">
          <source src="/legacy-source.jpg">
          <img src="/a-400.jpg" alt="">
        </picture>
    """
    assert found(html) == [
        ("https://example.com/legacy-source.jpg", "img"),
        ("https://example.com/a-400.jpg", "img"),
        ("https://cdn.example.com/w_800,f_avif/a.avif", "srcset"),
        ("https://example.com/a-800.webp", "srcset"),
    ]


def test_video_sources_are_not_images():
    html = (
        '<video poster="/poster.jpg"><source src="/movie.mp4" type="video/mp4"></video>'
    )
    assert found(html) == [("https://example.com/poster.jpg", "poster")]


@pytest.mark.parametrize(
    "attribute",
    [
        "data-src",
        "data-original",
        "data-lazy-src",
        "data-lazy",
        "data-url",
        "data-hi-res-src",
        "data-full-src",
        "data-zoom-image",
        "data-large_image",
        "data-bg",
        "data-background",
        "data-background-image",
        "data-image",
        "data-echo",
    ],
)
def test_lazy_attributes_on_img(attribute):
    html = f'<img src="{GIF_URI}" {attribute}="https://cdn.example.com/photos/123">'
    assert found(html) == [
        (GIF_URI, "img"),
        ("https://cdn.example.com/photos/123", "lazy"),
    ]


@pytest.mark.parametrize("attribute", ["data-srcset", "data-lazy-srcset", "data-bgset", "data-original-set"])
def test_lazy_srcset_attributes(attribute):
    html = f'<img {attribute}="/a-320.jpg 320w, /a-960.jpg 960w, /a-640.jpg 640w">'
    assert found(html) == [("https://example.com/a-960.jpg", "lazy")]
    assert urls(html, srcset="all") == [
        "https://example.com/a-320.jpg",
        "https://example.com/a-960.jpg",
        "https://example.com/a-640.jpg",
    ]


def test_image_urls_quoted_in_inline_scripts():
    html = r"""
        <img src="/first.jpg">
        <script>
          window.__STATE__ = {"gallery": [{"src": "https://cdn.example.com/g/1.jpg"},
            {"src": "https:\/\/cdn.example.com\/g\/2.PNG?w=1200&h=800"}, {"src": "\u002Fg\u002F3.webp"}],
            "spinner": "spinner.gif", "bundle": "/static/app.js", "home": "/index.html",
            "thumb": "/thumbs/{id}.jpg", "vue": "/thumbs/{{ photo.id }}.jpg",
            "first": "/first.jpg", "caption": "a photo of /tmp/x.jpg taken today"};
          var slides = ['//img.example.net/s/a.avif', './s/b.gif', "../up/c.jpeg#frame"];
          var html = "<figure><img src=\"\/fig\/d.jpg\"><\/figure>";
        </script>
        <script type="application/json" id="__NEXT_DATA__">{"props": {"hero": "/uploads/hero.jpg"}}</script>
        <script type="text/template"><img src="/tpl/e.svg" alt=""></script>
        <script src="/static/vendor.js"></script>
    """
    assert found(html) == [
        ("https://example.com/first.jpg", "img"),
        ("https://cdn.example.com/g/1.jpg", "script"),
        ("https://cdn.example.com/g/2.PNG?w=1200&h=800", "script"),
        ("https://example.com/g/3.webp", "script"),
        ("https://img.example.net/s/a.avif", "script"),
        ("https://example.com/blog/s/b.gif", "script"),
        ("https://example.com/up/c.jpeg", "script"),
        ("https://example.com/fig/d.jpg", "script"),
        ("https://example.com/uploads/hero.jpg", "script"),
        ("https://example.com/tpl/e.svg", "script"),
    ]
    assert found(html, scripts=False) == [("https://example.com/first.jpg", "img")]


def test_css_urls_and_template_literals_in_inline_scripts():
    html = r"""
        <script>
          hero.style.backgroundImage = "url(/img/hero.jpg)";
          var card = '<div style="background: url(img/card.png)"></div>';
          var state = {"css": "background:url(https:\/\/cdn.example.com\/bg\/1.png)", "q": "url("/q/2.gif?x=1")"};
          const still = `/img/static.webp`, dynamic = `/img/${id}.jpg`;
          var font = "url(/fonts/a.woff2)", plain = "url(/api/image)";
        </script>
    """
    assert urls(html) == [
        "https://example.com/q/2.gif?x=1",
        "https://example.com/img/static.webp",
        "https://example.com/img/hero.jpg",
        "https://example.com/blog/img/card.png",
        "https://cdn.example.com/bg/1.png",
    ]


def test_script_images_come_before_noscript_fallbacks():
    html = """
        <noscript><img src="/fallback.jpg"></noscript>
        <script>var big = "/fallback.jpg", other = "/other.png";</script>
    """
    assert found(html) == [
        ("https://example.com/fallback.jpg", "script"),
        ("https://example.com/other.png", "script"),
    ]


def test_lazysizes_width_placeholder_takes_the_largest_data_width():
    html = """
        <img class="lazyload" data-src="//cdn.shop.example/products/shoe_{width}x.jpg?v=7"
             data-widths="[180, 360, 1080, 540]" data-sizes="auto">
        <img class="lazyload" data-src="//cdn.shop.example/products/sock_{width}x.jpg">
    """
    # Without data-widths the URL cannot be fetched as it is: left out.
    assert found(html) == [("https://cdn.shop.example/products/shoe_1080x.jpg?v=7", "lazy")]
    assert urls(html, srcset="all") == [
        f"https://cdn.shop.example/products/shoe_{width}x.jpg?v=7" for width in (180, 360, 540, 1080)
    ]


def test_iframe_srcdoc_images_resolve_against_the_page():
    html = """<iframe srcdoc="<img src=&quot;a.png&quot;><p style='background: url(/b.jpg)'>"></iframe>
              <iframe srcdoc=""></iframe>"""
    assert found(html) == [
        ("https://example.com/blog/a.png", "srcdoc"),
        ("https://example.com/b.jpg", "srcdoc"),
    ]


def test_find_frames():
    html = """
        <a href="/not-a-frame">link</a>
        <iframe src="/embed/gallery#top"></iframe> <iframe src="/embed/gallery"></iframe>
        <iframe src="/files/menu.pdf"></iframe> <iframe srcdoc="<p>inline</p>"></iframe>
        <frameset><frame src="left.html"><frame src="javascript:void(0)"></frameset>
    """
    assert find_frames(html, PAGE) == ["https://example.com/embed/gallery", "https://example.com/blog/left.html"]


def test_lazysizes_bgset_sets_with_media():
    html = (
        '<div class="lazyload" data-bgset="/bg-400.jpg 400w, /bg-800.jpg 800w [(max-width: 600px)]'
        ' | /bg-1600.jpg 1600w, /bg-1200.jpg 1200w [--wide] | /bg.jpg"></div>'
    )
    # One candidate per set, as a browser at one width or another would show.
    assert found(html) == [
        ("https://example.com/bg-800.jpg", "lazy"),
        ("https://example.com/bg-1600.jpg", "lazy"),
        ("https://example.com/bg.jpg", "lazy"),
    ]
    assert len(urls(html, srcset="all")) == 5


def test_lazy_background_attributes_on_any_element():
    html = """
        <div data-bg="/bg/hero"></div>
        <section data-background-image="url(&quot;/bg/section.jpg&quot;)"></section>
        <span data-bg='url("/bg/a.jpg"), url(/bg/b.jpg)'></span>
        <header data-background="https://cdn.example.com/header"></header>
    """
    assert found(html) == [
        ("https://example.com/bg/hero", "lazy"),
        ("https://example.com/bg/section.jpg", "lazy"),
        ("https://example.com/bg/a.jpg", "lazy"),
        ("https://example.com/bg/b.jpg", "lazy"),
        ("https://cdn.example.com/header", "lazy"),
    ]


def test_other_data_attributes_holding_images():
    html = """
        <a href="/p/1" data-flickity-lazyload="slides/one.JPG"></a>
        <li data-thumb="//cdn.example.com/t/1"></li>
        <figure data-orig-file="https://cdn.example.com/full/1.png"></figure>
        <div data-placeholder="data:image/svg+xml,%3Csvg/%3E"></div>
        <img data-src-retina="/retina/2">
        <div data-gallery='[{"src": "/g/1.jpg", "caption": "One"}, {"src": "/g/2.webp"}]'></div>
        <div data-config='{"zoom": {"image": "https://cdn.example.com/z.avif"}, "next": "/p/2"}'></div>
        <img data-srcset='{"1x": "/j/a.jpg", "2x": "/j/a@2x.jpg"}'>
    """
    assert found(html) == [
        ("https://example.com/blog/slides/one.JPG", "lazy"),
        ("https://cdn.example.com/t/1", "lazy"),
        ("https://cdn.example.com/full/1.png", "lazy"),
        ("data:image/svg+xml,%3Csvg/%3E", "lazy"),
        ("https://example.com/retina/2", "lazy"),
        ("https://example.com/g/1.jpg", "lazy"),
        ("https://example.com/g/2.webp", "lazy"),
        ("https://cdn.example.com/z.avif", "lazy"),
        ("https://example.com/j/a.jpg", "lazy"),
        ("https://example.com/j/a@2x.jpg", "lazy"),
    ]


def test_url_lists_of_lazy_loaders_split_before_each_url():
    html = """
        <div class="lozad" data-background-image="/bg/one.jpg,/bg/two.jpg"></div>
        <img class="b-lazy" data-src="/p/small.jpg|/p/retina.jpg">
        <img data-src="https://res.cloudinary.com/demo/image/upload/w_200,h_100,c_fill/sample.jpg">
        <div data-bg="https://cdn.example.com/a.jpg , https://cdn.example.com/b.jpg"></div>
    """
    assert found(html) == [
        ("https://example.com/bg/one.jpg", "lazy"),
        ("https://example.com/bg/two.jpg", "lazy"),
        ("https://example.com/p/small.jpg", "lazy"),
        ("https://example.com/p/retina.jpg", "lazy"),
        ("https://res.cloudinary.com/demo/image/upload/w_200,h_100,c_fill/sample.jpg", "lazy"),
        ("https://cdn.example.com/a.jpg", "lazy"),
        ("https://cdn.example.com/b.jpg", "lazy"),
    ]


def test_css_declarations_in_data_attributes():
    html = """<div data-style="background-image: url('/bg/styled.jpg')"></div>"""
    assert found(html) == [("https://example.com/bg/styled.jpg", "lazy")]


def test_width_placeholder_in_a_data_srcset():
    html = """
        <img data-srcset="//cdn.shop.example/p/a_{width}x.jpg" data-widths="[180, 720]">
        <img data-srcset="//cdn.shop.example/p/b_{width}x.jpg">
    """
    assert found(html) == [("https://cdn.shop.example/p/a_720x.jpg", "lazy")]


def test_plain_img_attributes_of_old_lazy_loaders_and_forums():
    html = """
        <img src="/static/none.gif" lazy-src="/photos/1.jpg">
        <img class="lazy" original="/photos/2.png">
        <img src="static/image/common/none.gif" file="data/attachment/forum/3.jpg"
             zoomfile="data/attachment/forum/3_big.jpg">
        <img nitro-lazy-src="/photos/5.webp" nitro-lazy-srcset="/photos/5-300.webp 300w, /photos/5-900.webp 900w">
        <img src="/photos/4.jpg" alt="IMG_0042.JPG" title="holiday.jpg" onerror="this.src='/x.jpg'"
             aria-label="see photo.jpg" width="100.5" sizes="(max-width: 600px) 480px">
    """
    assert found(html) == [
        ("https://example.com/static/none.gif", "img"),
        ("https://example.com/blog/static/image/common/none.gif", "img"),
        ("https://example.com/photos/4.jpg", "img"),
        ("https://example.com/photos/1.jpg", "lazy"),
        ("https://example.com/photos/2.png", "lazy"),
        ("https://example.com/blog/data/attachment/forum/3.jpg", "lazy"),
        ("https://example.com/blog/data/attachment/forum/3_big.jpg", "lazy"),
        ("https://example.com/photos/5.webp", "lazy"),
        ("https://example.com/photos/5-900.webp", "lazy"),
    ]


def test_urls_are_read_as_browsers_read_them():
    html = r"""
        <img src="\images\win.jpg"> <img src="photos\rel.png?caption=a\b">
        <img src="https:///cdn.example.com/three.jpg"> <img src="///cdn.example.com/relative.jpg">
        <img src="/path///kept.jpg">
    """
    assert urls(html) == [
        "https://example.com/images/win.jpg",
        r"https://example.com/blog/photos/rel.png?caption=a\b",  # a query keeps its backslashes
        "https://cdn.example.com/three.jpg",
        "https://cdn.example.com/relative.jpg",
        "https://example.com/path///kept.jpg",
    ]
    assert find_page_links(r'<a href="\archive\2001.html">2001</a>', PAGE) == ["https://example.com/archive/2001.html"]


def test_malformed_urls_are_skipped_not_fatal():
    html = """
        <base href="http://[broken">
        <img src="http://[::1/a.png"> <img src="https://cdn.example.com:99999/b.png"> <img src="/ok.png">
        <a href="http://host:port/page.html">x</a> <a href="/next.html">next</a>
        <style>@import url(http://[bad/x.css); .a{background:url(https://h:70000/c.png)}</style>
    """
    assert urls(html) == ["https://example.com/ok.png"]  # the broken <base> is ignored, as browsers do
    assert find_page_links(html, PAGE) == ["https://example.com/next.html"]
    assert find_stylesheets(html, PAGE) == []


def test_data_attributes_that_are_not_images():
    html = """
        <div class="share" data-url="https://example.com/blog/post.html" data-title="A. B"></div>
        <a data-url="/share?u=1" data-src="#inline-content" data-track="nav.click">x</a>
        <iframe data-src="https://www.youtube.com/embed/abc"></iframe>
        <video data-src="/media/movie.mp4"></video>
        <img data-lazy="true" data-image-type="image/jpeg" data-sizes="auto" data-ratio="1.5">
        <div data-bg="#ffffff" data-src="/widgets/comments.js" data-img="/fonts/x.woff2"></div>
        <div data-config='{"api": "/api/v1.json", "broken": }'></div>
    """
    assert found(html) == []


def test_noscript_content_is_parsed_as_elements():
    # parsel's lxml parser builds elements inside <noscript>, so that its
    # images are found like any other, only reported as "noscript".
    html = '<noscript><img src="/fallback.jpg"></noscript>'
    assert Selector(text=html).xpath("//noscript/img/@src").get() == "/fallback.jpg"
    assert found(html) == [("https://example.com/fallback.jpg", "noscript")]


def test_noscript_comes_last_and_does_not_take_over_lazy_images():
    html = """
        <noscript><img src="/a.jpg" srcset="/a.jpg 1x, /a@2x.jpg 2x"></noscript>
        <img class="lazyload" data-src="/a.jpg">
        <noscript><div style="background: url(/only-here.png)"></div></noscript>
        <img src="/b.jpg">
    """
    assert found(html) == [
        ("https://example.com/b.jpg", "img"),
        ("https://example.com/a.jpg", "lazy"),
        ("https://example.com/a@2x.jpg", "noscript"),
        ("https://example.com/only-here.png", "noscript"),
    ]


def test_links_to_image_files():
    html = """
        <a href="/full/PHOTO.JPG?w=2000"><img src="/thumb/photo.jpg"></a>
        <a href="/gallery/">Gallery</a>
        <a href="download.php?file=x.jpg">Download</a>
        <map><area href="/maps/region.png" shape="rect"><area href="/region"></map>
    """
    assert found(html) == [
        ("https://example.com/thumb/photo.jpg", "img"),
        ("https://example.com/full/PHOTO.JPG?w=2000", "link-href"),
        ("https://example.com/maps/region.png", "link-href"),
    ]


def test_style_attributes():
    html = """
        <div style="background:url(&quot;/bg1.jpg&quot;)"></div>
        <div style="background-image: url('/bg2.png'), linear-gradient(red, blue)"></div>
        <div style="background: URL(/bg3.gif) no-repeat; color: rgb(1, 2, 3)"></div>
        <div style="--card-bg: image-set('/bg4.avif' type('image/avif'), '/bg4.jpg' 1x)"></div>
        <div style="filter: url(#blur); font: url(/font.woff)"></div>
        <td background="/table-bg.gif"></td>
    """
    assert found(html) == [
        ("https://example.com/bg1.jpg", "css"),
        ("https://example.com/bg2.png", "css"),
        ("https://example.com/bg3.gif", "css"),
        ("https://example.com/bg4.avif", "css"),
        ("https://example.com/bg4.jpg", "css"),
        ("https://example.com/table-bg.gif", "css"),
    ]


def test_style_elements():
    html = """
        <style>
          @import url(/css/theme.css);
          @font-face { font-family: Icons; src: url(/fonts/icons.eot?#iefix) }
          .hero { background: url("../img/hero.jpg") center / cover }
          .sprite { background: url(/img/sprite.svg#icon) }
          .clip { clip-path: url(#clip) }
          .x { behavior: url(/ie.htc) }
        </style>
    """
    assert found(html) == [
        ("https://example.com/img/hero.jpg", "css"),
        ("https://example.com/img/sprite.svg", "css"),
    ]


def test_meta_images():
    html = """
        <meta property="og:image" content="/og.jpg">
        <meta property="og:image:url" content="/og-url.jpg">
        <meta property="OG:IMAGE:SECURE_URL" content="https://secure.example.com/og.jpg">
        <meta name="twitter:image" content="/tw.jpg">
        <meta name="twitter:image:src" content="/tw-src.jpg">
        <meta itemprop="image" content="/itemprop.jpg">
        <meta name="msapplication-TileImage" content="/tile.png">
        <meta property="og:image:width" content="1200">
        <meta property="og:title" content="/not-an-image.jpg">
    """
    assert urls(html) == [
        "https://example.com/og.jpg",
        "https://example.com/og-url.jpg",
        "https://secure.example.com/og.jpg",
        "https://example.com/tw.jpg",
        "https://example.com/tw-src.jpg",
        "https://example.com/itemprop.jpg",
        "https://example.com/tile.png",
    ]
    assert {image.source for image in find_images(html, PAGE)} == {"meta"}


def test_link_images():
    html = """
        <link rel="icon" href="/favicon.ico">
        <link rel="shortcut icon" href="/favicon-32.png">
        <link rel="apple-touch-icon" sizes="180x180" href="/apple-touch-icon.png">
        <link rel="apple-touch-icon-precomposed" href="/precomposed.png">
        <link rel="mask-icon" href="/safari-pinned-tab.svg" color="#000">
        <link rel="image_src" href="/image-src.jpg">
        <link rel="preload" as="image" href="/hero.jpg"
              imagesrcset="/hero-800.jpg 800w, /hero-1600.jpg 1600w">
        <link rel="preload" as="font" href="/font.woff2">
        <link rel="stylesheet" href="/site.css">
        <link rel="canonical" href="/blog/post.html">
        <link rel="prefetch" href="/slides/next.webp"> <link rel="prefetch" href="/next.html">
        <link rel="dns-prefetch" href="//cdn.example.com">
    """
    assert urls(html) == [
        "https://example.com/favicon.ico",
        "https://example.com/favicon-32.png",
        "https://example.com/apple-touch-icon.png",
        "https://example.com/precomposed.png",
        "https://example.com/safari-pinned-tab.svg",
        "https://example.com/image-src.jpg",
        "https://example.com/hero.jpg",
        "https://example.com/slides/next.webp",
        "https://example.com/hero-1600.jpg",
    ]
    assert {image.source for image in find_images(html, PAGE)} == {"link"}


def test_input_svg_poster_object_embed():
    html = """
        <form><input type="IMAGE" src="/submit.png"><input type="text" src="/no.png"></form>
        <svg xmlns:xlink="http://www.w3.org/1999/xlink">
          <image href="/svg-href.png"/><image xlink:href="/svg-xlink.jpg"/>
          <use href="/icons.svg#menu"/><use xlink:href="#local"/>
        </svg>
        <video poster="/poster.jpg"></video>
        <object data="/diagram.svg" type="image/svg+xml"></object>
        <object data="/movie.swf"></object>
        <embed src="/chart.PNG"><embed src="/player.swf">
    """
    assert found(html) == [
        ("https://example.com/submit.png", "input"),
        ("https://example.com/poster.jpg", "poster"),
        ("https://example.com/svg-href.png", "svg"),
        ("https://example.com/svg-xlink.jpg", "svg"),
        ("https://example.com/icons.svg", "svg"),
        ("https://example.com/diagram.svg", "img"),
        ("https://example.com/chart.PNG", "img"),
    ]


def test_json_ld():
    html = """
        <script type="application/ld+json">
        {"@context": "https://schema.org", "@graph": [
          {"@type": "NewsArticle", "image": ["/ld/1.jpg", "/ld/2.jpg"],
           "thumbnailUrl": "/ld/thumb.jpg", "url": "/blog/post.html",
           "author": {"@type": "Person", "url": "/authors/me", "image": {"url": "/ld/me.png"}},
           "publisher": {"@type": "Organization", "logo": {"@type": "ImageObject",
                         "url": "/ld/logo.png", "width": 600}}},
          {"@type": "ImageObject", "@id": "/blog/post.html#primaryimage",
           "contentUrl": "/ld/primary.jpg"},
          {"@type": "WebPage", "image": {"@id": "/blog/post.html#primaryimage"}},
          {"@type": "VideoObject", "contentUrl": "/ld/video.mp4", "thumbnailUrl": ["/ld/v.jpg"]}
        ]}
        </script>
        <script type="application/ld+json">{"image": "/ld/raw
newline.jpg"}</script>
        <script type="application/ld+json">{not json</script>
        <script type="application/json">{"image": "/not-ld.jpg"}</script>
    """
    assert found(html) == [
        ("https://example.com/ld/1.jpg", "meta"),
        ("https://example.com/ld/2.jpg", "meta"),
        ("https://example.com/ld/thumb.jpg", "meta"),
        ("https://example.com/ld/me.png", "meta"),
        ("https://example.com/ld/logo.png", "meta"),
        ("https://example.com/ld/primary.jpg", "meta"),
        ("https://example.com/ld/v.jpg", "meta"),
        ("https://example.com/ld/rawnewline.jpg", "meta"),
        # Not JSON-LD: a quoted image URL of an inline script.
        ("https://example.com/not-ld.jpg", "script"),
    ]


# --- find_images: URLs -------------------------------------------------------


def test_base_href():
    html = '<head><base href="https://cdn.example.net/assets/"></head><img src="a.jpg">'
    assert urls(html) == ["https://cdn.example.net/assets/a.jpg"]


def test_relative_base_href_and_only_the_first_one():
    html = '<base href="/static/"><base href="/ignored/"><img src="a.jpg"><a href="p">p</a>'
    assert urls(html) == ["https://example.com/static/a.jpg"]
    assert find_page_links(html, PAGE) == ["https://example.com/static/p"]


def test_schemes_in_lower_case():
    html = '<img src="HTTPS://CDN.example.com/A.jpg"><img src="Http://x.org/b.jpg">'
    assert urls(html) == ["https://CDN.example.com/A.jpg", "http://x.org/b.jpg"]
    assert find_page_links('<a href="HTTP://x.org/Page">', PAGE) == [
        "http://x.org/Page"
    ]


def test_protocol_relative_urls():
    assert urls('<img src="//cdn.example.net/a.jpg">') == [
        "https://cdn.example.net/a.jpg"
    ]
    assert [
        i.url
        for i in find_images('<img src="//cdn.example.net/a.jpg">', "http://x.org/")
    ] == ["http://cdn.example.net/a.jpg"]


def test_entities_whitespace_and_fragments():
    html = """
        <img src="/a.jpg?w=1&amp;h=2">
        <img src="  /b.jpg
        ">
        <img src="/c/
long-name.jpg">
        <img src="/d.jpg#top">
        <img src="https://cdn.example.com/e f.jpg">
    """
    assert urls(html) == [
        "https://example.com/a.jpg?w=1&h=2",
        "https://example.com/b.jpg",
        "https://example.com/c/long-name.jpg",
        "https://example.com/d.jpg",
        "https://cdn.example.com/e f.jpg",
    ]


def test_each_url_once_first_reference_wins():
    html = """
        <a href="/a.jpg"><img src="/a.jpg" srcset="/a.jpg 1x"></a>
        <img src="/a.jpg#again" data-src="https://example.com/a.jpg">
        <div style="background: url(/a.jpg)"></div>
    """
    assert found(html) == [("https://example.com/a.jpg", "img")]


def test_data_uris():
    html = f"""
        <img src="{GIF_URI}">
        <img src="{PNG_URI}">
        <img src="DATA:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg'/>">
        <img src="data:text/html;base64,PGgxPg==">
        <img src="data:,hello">
    """
    assert urls(html) == [
        GIF_URI,
        PNG_URI,
        "data:image/svg+xml;utf8,<svg xmlns='http://www.w3.org/2000/svg'/>",
    ]


def test_non_http_and_empty_values_are_ignored():
    html = """
        <img src="javascript:alert(1)"><img src="about:blank"><img src="#">
        <img src=""><img src="   "><img src><img src="mailto:me@example.com">
        <img src="ftp://example.com/a.jpg"><img src="file:///etc/a.jpg">
        <a href="javascript:void(0)"></a>
    """
    assert found(html) == []


def test_names_in_any_letter_case():
    html = """<IMG SRC="/a.jpg" DATA-SRC="/b.jpg"><Meta Property="OG:Image" Content="/c.jpg">
              <INPUT TYPE="Image" SRC="/d.gif"><LINK REL="Shortcut Icon" HREF="/e.ico">"""
    assert found(html) == [
        ("https://example.com/c.jpg", "meta"),
        ("https://example.com/e.ico", "link"),
        ("https://example.com/a.jpg", "img"),
        ("https://example.com/d.gif", "input"),
        ("https://example.com/b.jpg", "lazy"),
    ]


def test_amp_images():
    html = """<amp-img src="/amp.jpg" srcset="/amp.jpg 1x, /amp@2x.jpg 2x"></amp-img>
              <amp-anim src="/anim/loop" width="400" height="300"></amp-anim>"""
    assert found(html) == [
        ("https://example.com/amp.jpg", "img"),
        ("https://example.com/anim/loop", "img"),
        ("https://example.com/amp@2x.jpg", "srcset"),
    ]


def test_selector_is_used_as_is():
    html = '<img src="/a.jpg"><div data-src="/b.jpg"></div>'
    selector = Selector(text=html)
    assert find_images(selector, PAGE) == [
        ImageRef("https://example.com/a.jpg", "img"),
        ImageRef("https://example.com/b.jpg", "lazy"),
    ]
    # The whole document, even from a selector of a part of it.
    assert find_images(selector.css("div")[0], PAGE) == find_images(selector, PAGE)


def test_empty_document():
    assert find_images("", PAGE) == []
    assert find_page_links("", PAGE) == []


# --- find_page_links ---------------------------------------------------------


def test_find_page_links():
    html = """
        <a href="/about">About</a>
        <a href="post-2.html#comments">Post 2</a>
        <a href="post-2.html">Post 2 again</a>
        <a href="#top">Top</a>
        <a href="/photos/big.JPG">Photo</a>
        <a href="/files/report.PDF">Files, not pages:</a> <a href="/dl/app.tar.gz">archive</a>
        <a href="/v/clip.mp4?t=3">video</a> <a href="/dl/setup.exe">program</a> <a href="/data.csv">data</a>
        <a href="mailto:me@example.com">Mail</a>
        <a href="tel:+123">Call</a>
        <a href="javascript:void(0)">JS</a>
        <a href="data:text/html,hi">Data</a>
        <a href=" https://other.example.org/page?q=1&amp;r=2 ">Other</a>
        <a href="//cdn.example.com/path">Protocol-relative</a>
        <a>No href</a>
        <map><area href="/region"></map>
        <iframe src="https://www.youtube.com/embed/abc"></iframe>
        <frameset><frame src="frame.html"></frameset>
    """
    assert find_page_links(html, PAGE) == [
        "https://example.com/about",
        "https://example.com/blog/post-2.html",
        "https://other.example.org/page?q=1&r=2",
        "https://cdn.example.com/path",
        "https://example.com/region",
        "https://www.youtube.com/embed/abc",
        "https://example.com/blog/frame.html",
    ]


# --- A realistic page --------------------------------------------------------

SHOP_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Trail Runner 3 &ndash; Outdoor Co.</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta property="og:title" content="Trail Runner 3">
  <meta property="og:image" content="https://cdn.outdoor.example/products/tr3/og.jpg">
  <meta property="og:image:width" content="1200">
  <meta name="twitter:card" content="summary_large_image">
  <meta name="twitter:image" content="https://cdn.outdoor.example/products/tr3/og.jpg">
  <link rel="icon" type="image/png" sizes="32x32" href="/favicon-32x32.png">
  <link rel="apple-touch-icon" href="/apple-touch-icon.png">
  <link rel="stylesheet" href="/assets/app.css">
  <link rel="preload" as="font" href="/assets/inter.woff2" crossorigin>
  <link rel="canonical" href="https://www.outdoor.example/p/trail-runner-3">
  <style>
    @import url("/assets/print.css") print;
    @font-face { font-family: Inter; src: url(/assets/inter.woff2) format("woff2"); }
    .promo-banner { background: #123 url('/assets/img/promo-bg.webp') center/cover; }
    .icon-cart { background-image: image-set("/assets/img/cart.png" 1x, "/assets/img/cart@2x.png" 2x); }
    /* .legacy { background: url(/assets/img/legacy.gif); } */
  </style>
  <script type="application/ld+json">
  {
    "@context": "https://schema.org/",
    "@type": "Product",
    "name": "Trail Runner 3",
    "image": [
      "https://cdn.outdoor.example/products/tr3/1x1.jpg",
      "https://cdn.outdoor.example/products/tr3/4x3.jpg"
    ],
    "brand": {"@type": "Brand", "name": "Outdoor Co.", "logo": "https://cdn.outdoor.example/brand/logo.svg"},
    "offers": {"@type": "Offer", "url": "https://www.outdoor.example/p/trail-runner-3", "price": "129.00"}
  }
  </script>
  <script src="/assets/app.js" defer></script>
</head>
<body class="product-page">
  <header class="site-header">
    <a href="/" class="logo"><img src="/assets/img/logo.svg" alt="Outdoor Co." width="120" height="40"></a>
    <nav>
      <a href="/c/men">Men</a> <a href="/c/women">Women</a> <a href="/c/sale#top">Sale</a>
      <a href="/cart" class="icon-cart" aria-label="Cart"></a>
    </nav>
  </header>
  <div class="promo-banner" data-track="promo.view">Free shipping over $50</div>
  <main>
    <section class="hero">
      <picture>
        <source type="image/avif"
                srcset="https://res.cloudinary.com/outdoor/image/upload/w_800,f_avif/tr3/hero.avif 800w,
                        https://res.cloudinary.com/outdoor/image/upload/w_1600,f_avif/tr3/hero.avif 1600w"
                sizes="100vw">
        <source type="image/webp"
                srcset="https://res.cloudinary.com/outdoor/image/upload/w_800,f_webp/tr3/hero.webp 800w,
                        https://res.cloudinary.com/outdoor/image/upload/w_1600,f_webp/tr3/hero.webp 1600w">
        <img src="https://res.cloudinary.com/outdoor/image/upload/w_800/tr3/hero.jpg"
             alt="Trail Runner 3 on a mountain trail" fetchpriority="high">
      </picture>
    </section>
    <section class="gallery" data-component="gallery">
      <a href="https://cdn.outdoor.example/products/tr3/zoom/side.JPG" class="zoom">
        <img src="data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
             data-src="https://cdn.outdoor.example/products/tr3/side-600.jpg"
             data-srcset="https://cdn.outdoor.example/products/tr3/side-600.jpg 600w,
                          https://cdn.outdoor.example/products/tr3/side-1200.jpg 1200w"
             class="lazyload" alt="Side view">
      </a>
      <noscript><img src="https://cdn.outdoor.example/products/tr3/side-600.jpg" alt="Side view"></noscript>
      <div class="thumb" data-bg="https://cdn.outdoor.example/products/tr3/top-thumb.jpg"></div>
      <div class="thumb" style="background-image: url(&quot;https://cdn.outdoor.example/products/tr3/sole-thumb.jpg&quot;)"></div>
      <button class="play" data-video-id="x9f3"
              data-poster-image="https://cdn.outdoor.example/products/tr3/video-poster.webp">Play</button>
    </section>
    <article class="description">
      <h1>Trail Runner 3</h1>
      <p>Grippy, light and fast. <a href="/guides/trail-running">Read our guide</a>.</p>
      <img class="lazyload" src="/assets/img/placeholder.svg"
           data-src="https://cdn.outdoor.example/editorial/forest-run.jpg?auto=format&amp;q=80" alt="">
      <iframe data-src="https://www.youtube.com/embed/x9f3" title="Video" class="lazyload"></iframe>
    </article>
    <aside class="share">
      <a href="https://twitter.com/intent/tweet?url=https%3A%2F%2Fwww.outdoor.example%2Fp%2Ftr3">Tweet</a>
      <a href="mailto:?subject=Trail%20Runner%203">Email</a>
      <div class="share-button" data-url="https://www.outdoor.example/p/trail-runner-3"></div>
    </aside>
    <section class="related">
      <ul class="grid">
        <li class="card"><a href="/p/trail-runner-2">
          <img loading="lazy" src="https://cdn.outdoor.example/products/tr2/card.jpg"
               srcset="https://cdn.outdoor.example/products/tr2/card.jpg 1x, https://cdn.outdoor.example/products/tr2/card@2x.jpg 2x"
               alt="Trail Runner 2"></a></li>
        <li class="card"><a href="/p/road-runner">
          <img class="lazyload" data-srcset="/media/road-runner-300.jpg 300w, /media/road-runner-600.jpg 600w" alt=""></a></li>
      </ul>
    </section>
  </main>
  <footer>
    <a href="/about">About</a> <a href="javascript:void(0)" onclick="openChat()">Chat</a>
    <img src="https://tracker.example.net/pixel.gif?page=tr3" width="1" height="1" alt="">
  </footer>
</body>
</html>
"""


def test_realistic_page_images():
    assert {
        (ref.url, ref.source) for ref in find_images(SHOP_PAGE, "https://www.outdoor.example/p/trail-runner-3")
    } == {(ref.url, ref.source) for ref in {
        ImageRef("https://cdn.outdoor.example/products/tr3/og.jpg", "meta"),
        ImageRef("https://www.outdoor.example/favicon-32x32.png", "link"),
        ImageRef("https://www.outdoor.example/apple-touch-icon.png", "link"),
        ImageRef("https://www.outdoor.example/assets/img/logo.svg", "img"),
        ImageRef(
            "https://res.cloudinary.com/outdoor/image/upload/w_800/tr3/hero.jpg", "img"
        ),
        ImageRef(
            "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7",
            "img",
        ),
        ImageRef("https://www.outdoor.example/assets/img/placeholder.svg", "img"),
        ImageRef("https://cdn.outdoor.example/products/tr2/card.jpg", "img"),
        ImageRef("https://tracker.example.net/pixel.gif?page=tr3", "img"),
        ImageRef(
            "https://res.cloudinary.com/outdoor/image/upload/w_1600,f_avif/tr3/hero.avif",
            "srcset",
        ),
        ImageRef(
            "https://res.cloudinary.com/outdoor/image/upload/w_1600,f_webp/tr3/hero.webp",
            "srcset",
        ),
        ImageRef("https://cdn.outdoor.example/products/tr2/card@2x.jpg", "srcset"),
        ImageRef("https://cdn.outdoor.example/products/tr3/side-600.jpg", "lazy"),
        ImageRef("https://cdn.outdoor.example/products/tr3/side-1200.jpg", "lazy"),
        ImageRef("https://cdn.outdoor.example/products/tr3/top-thumb.jpg", "lazy"),
        ImageRef("https://cdn.outdoor.example/products/tr3/video-poster.webp", "lazy"),
        ImageRef(
            "https://cdn.outdoor.example/editorial/forest-run.jpg?auto=format&q=80",
            "lazy",
        ),
        ImageRef("https://www.outdoor.example/media/road-runner-600.jpg", "lazy"),
        ImageRef("https://cdn.outdoor.example/products/tr3/sole-thumb.jpg", "css"),
        ImageRef("https://www.outdoor.example/assets/img/promo-bg.webp", "css"),
        ImageRef("https://www.outdoor.example/assets/img/cart.png", "css"),
        ImageRef("https://www.outdoor.example/assets/img/cart@2x.png", "css"),
        ImageRef("https://cdn.outdoor.example/products/tr3/1x1.jpg", "meta"),
        ImageRef("https://cdn.outdoor.example/products/tr3/4x3.jpg", "meta"),
        ImageRef("https://cdn.outdoor.example/brand/logo.svg", "meta"),
        ImageRef("https://cdn.outdoor.example/products/tr3/zoom/side.JPG", "link-href"),
    }}


def test_realistic_page_links():
    assert find_page_links(
        SHOP_PAGE, "https://www.outdoor.example/p/trail-runner-3"
    ) == [
        "https://www.outdoor.example/",
        "https://www.outdoor.example/c/men",
        "https://www.outdoor.example/c/women",
        "https://www.outdoor.example/c/sale",
        "https://www.outdoor.example/cart",
        "https://www.outdoor.example/guides/trail-running",
        "https://twitter.com/intent/tweet?url=https%3A%2F%2Fwww.outdoor.example%2Fp%2Ftr3",
        "https://www.outdoor.example/p/trail-runner-2",
        "https://www.outdoor.example/p/road-runner",
        "https://www.outdoor.example/about",
    ]


# --- external style sheets ---------------------------------------------------


def test_find_stylesheets():
    html = (
        '<base href="/b/"><link rel="stylesheet" href="site.css"><link rel="preload" as="style" href="late.css#x">'
        '<link rel="alternate stylesheet" href="//cdn.example/alt.css"><link rel="icon" href="i.ico">'
        '<link rel="stylesheet" href="site.css"><link rel="preload" as="font" href="f.woff2">'
        '<style>@import url("theme.css"); @import \'print.css\' print; @import "site.css"; .x{color:red}</style>'
        '<style>.y{background:url(import.png)}</style>'
    )
    assert find_stylesheets(html, "https://example.com/p/page.html") == [
        "https://example.com/b/site.css",
        "https://example.com/b/late.css",
        "https://cdn.example/alt.css",
        "https://example.com/b/theme.css",
        "https://example.com/b/print.css",
    ]


def test_find_css_images_resolves_against_the_sheet_and_skips_fonts():
    css = (
        "@font-face{font-family:x;src:url(f.woff2)} .a{background:url(../img/bg.png)}"
        ".b{background-image:image-set('a.webp' 1x, 'b.webp' 2x)} .c{background:url(data:image/gif;base64,R0lG)}"
        ".d{cursor:url(/cur.svg),auto} .e{background:url(../img/bg.png)} .f{behavior:url(x.htc)}"
    )
    assert find_css_images(css, "https://cdn.example/css/site.css") == [
        ImageRef("https://cdn.example/img/bg.png", "stylesheet"),
        ImageRef("https://cdn.example/css/a.webp", "stylesheet"),
        ImageRef("https://cdn.example/css/b.webp", "stylesheet"),
        ImageRef("data:image/gif;base64,R0lG", "stylesheet"),
        ImageRef("https://cdn.example/cur.svg", "stylesheet"),
    ]


def test_css_import_urls():
    css = "@import url(\"base.css\");\n@import 'theme.css' screen;\n@IMPORT url(//x.example/y.css);\n.a{color:red}"
    assert css_import_urls(css, "https://e.example/css/site.css") == [
        "https://e.example/css/base.css",
        "https://e.example/css/theme.css",
        "https://x.example/y.css",
    ]


# --- context: alt, title, caption, srcset descriptor, page title --------------


def context(html: str, **kwargs) -> dict[str, tuple[str, str, str, str]]:
    """(alt, title, caption, srcset_descriptor) of each image, by URL path."""
    return {
        image.url.removeprefix("https://example.com"): (image.alt, image.title, image.caption, image.srcset_descriptor)
        for image in find_images(html, PAGE, **kwargs)
    }


def test_context_of_img_in_figure():
    html = """<figure class="photo"><img src="/a.jpg" alt="  A red
        door " title="Door">
      <figcaption>The <b>red</b>   door, 1920</figcaption></figure>
      <img src="/b.jpg">"""
    assert context(html) == {
        "/a.jpg": ("A red door", "Door", "The red door, 1920", ""),
        "/b.jpg": ("", "", "", ""),
    }


def test_context_srcset_descriptor_of_the_chosen_candidate():
    html = """<img src="/s.jpg" srcset="/s.jpg 400w, /l.jpg 800w" alt="Sizes">
      <img srcset="/one.jpg, /two.jpg 2x" alt="Densities">
      <img data-srcset="/lazy-300.jpg 300w, /lazy-600.jpg 600w" alt="Lazy">"""
    assert context(html) == {
        "/s.jpg": ("Sizes", "", "", ""),
        "/l.jpg": ("Sizes", "", "", "800w"),
        "/two.jpg": ("Densities", "", "", "2x"),
        "/lazy-600.jpg": ("Lazy", "", "", "600w"),
    }
    assert context('<img srcset="/a.jpg 1.5x, /b.jpg">', srcset="all") == {
        "/a.jpg": ("", "", "", "1.5x"),
        "/b.jpg": ("", "", "", "1x"),
    }


def test_context_picture_source_takes_the_img_alt():
    html = """<figure><picture>
        <source type="image/webp" srcset="/p.webp 1200w">
        <img src="/p.jpg" alt="Harbour" title="At dawn"></picture>
      <figcaption>Harbour at dawn</figcaption></figure>"""
    assert context(html) == {
        "/p.jpg": ("Harbour", "At dawn", "Harbour at dawn", ""),
        "/p.webp": ("Harbour", "At dawn", "Harbour at dawn", "1200w"),
    }


def test_context_link_to_image_takes_the_thumbnail_alt():
    html = '<a href="/full.jpg" title="Full size"><img src="/thumb.jpg" alt="Bridge"></a>'
    assert context(html) == {
        "/thumb.jpg": ("Bridge", "", "", ""),
        "/full.jpg": ("Bridge", "Full size", "", ""),
    }


def test_context_css_background_has_none():
    html = '<div style="background-image: url(/bg.jpg)">text</div><style>p { background: url(/p.png) }</style>'
    assert context(html) == {"/bg.jpg": ("", "", "", ""), "/p.png": ("", "", "", "")}


def test_context_first_non_empty_alt_of_an_image_referenced_twice():
    html = """<img src="/a.jpg"><img src="/a.jpg" alt="Second" title="T2"><img src="/a.jpg" alt="Third">
      <img src="/b.jpg" alt="First"><img src="/b.jpg" alt="Other">"""
    assert context(html) == {"/a.jpg": ("Second", "T2", "", ""), "/b.jpg": ("First", "", "", "")}


def test_context_is_bounded():
    html = f'<img src="/a.jpg" alt="{"x" * 100_000}">'
    assert len(find_images(html, PAGE)[0].alt) == 1000


def test_page_title():
    assert find_page_title("<html><head><title>  My \n page </title></head><body></body></html>") == "My page"
    assert find_page_title('<body><svg><title>icon</title></svg><img src="a.jpg"></body>') == ""
    assert find_page_title("") == ""
