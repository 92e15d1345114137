"""Signed-in crawls: cookies files, the login wall, HTTP basic auth, and the User-Agent.

End to end against a members-only site served on 127.0.0.1 (:class:`MembersSite`): its start page
redirects to ``/login`` (a password form) without the session cookie, its images answer ``403``
without it, and its page sets a cookie of its own. A second host, 127.0.0.2, serves an image the
page names: no cookie of the file may reach it. The file formats, the scoping rules and the
middlewares' pieces are tested on their own below the crawls.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import stat as stat_module
import time
from dataclasses import dataclass, field
from http.cookiejar import Cookie
from pathlib import Path
from typing import Iterator

import pytest
from scrapy.http import HtmlResponse, Request, Response
from scrapy.http.cookies import CookieJar
from scrapy.settings import Settings

import imgscraper.settings
from imgscraper import __version__
from imgscraper.addons.useragent import ContactUserAgent, contact_reference
from imgscraper.downloadermiddlewares.cookiesfile import CookiesFileMiddleware
from imgscraper.downloadermiddlewares.httpauth import credentials_of, start_hosts
from imgscraper.downloadermiddlewares.loginwall import login_wall
from imgscraper.exceptions import CookiesFileError, ScheduleError
from imgscraper.http.cookiefiles import (
    JSON,
    NETSCAPE,
    HostOnlyCookiePolicy,
    browser_cookie,
    format_cookies,
    make_cookie,
    parse_cookies,
    read_cookies_file,
)
from imgscraper.rendering.browsercontext import CONTEXT_KWARGS
from imgscraper.scrapyd.schedule import load_schedule
from tests.support.httpserver import HTTPTestServer, RecordedRequest, RequestHandler
from tests.support.images import png

SESSION = "s3cr3t-session"
PASSWORD_PAGE = """<!doctype html><html><head><title>Sign in</title></head><body>
<img src="/static/logo.png" alt="logo">
<form method="post" action="/login"><input name="user"><input type="PASSWORD" name="pw"><button>Sign in</button></form>
</body></html>"""
GALLERY = """<!doctype html><html><head><title>Members' gallery</title></head><body>
<img src="/members/a.png"><img src="/members/b.png"><img src="{other}cdn/c.png">
<div id="more"></div>
<script>
fetch("/api/photos").then((r) => r.json()).then((urls) => {{
  for (const url of urls) {{ const img = document.createElement("img"); img.src = url; document.body.append(img); }}
}});
</script>
</body></html>"""


@dataclass
class MembersSite:
    """The members-only site on 127.0.0.1 and the second host, 127.0.0.2, that serves one of its images."""

    server: HTTPTestServer
    other: HTTPTestServer
    images: dict[str, bytes] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def clear(self) -> None:
        self.server.log.clear()
        self.other.log.clear()

    def requests(self) -> list[RecordedRequest]:
        self.server.log.wait_idle()
        return self.server.log.snapshot()

    def other_requests(self) -> list[RecordedRequest]:
        self.other.log.wait_idle()
        return self.other.log.snapshot()


def _cookies(handler: RequestHandler) -> dict[str, str]:
    header = handler.headers.get("Cookie", "")
    return dict(part.strip().partition("=")[::2] for part in header.split(";") if part.strip())


def _png(handler: RequestHandler, data: bytes) -> bool:
    handler.send_body(data, content_type="image/png")
    return True


def serve_members_site(site: MembersSite) -> None:
    def signed_in(handler: RequestHandler) -> bool:
        return _cookies(handler).get("sid") == SESSION

    def start_page(handler: RequestHandler) -> bool:
        if not signed_in(handler):
            handler.send_body(b"", status=302, headers={"Location": "/login?next=/"})
            return True
        handler.send_body(GALLERY.format(other=site.other.url), content_type="text/html; charset=utf-8",
                          headers={"Set-Cookie": "seen=yes; Path=/; Max-Age=86400"})
        return True

    def members_file(handler: RequestHandler) -> bool:
        if not signed_in(handler):
            handler.send_body("members only", status=403)
            return True
        name = handler.url_path.rsplit("/", 1)[1]
        return _png(handler, site.images[name])

    def api(handler: RequestHandler) -> bool:
        if not signed_in(handler):
            handler.send_body("members only", status=403)
            return True
        handler.send_body(json.dumps(["/members/api-1.png"]), content_type="application/json")
        return True

    site.server.add_handler("/", start_page)
    site.server.add_handler("/login", lambda h: h.send_body(PASSWORD_PAGE, content_type="text/html") or True)
    site.server.add_handler("/static/logo.png", lambda h: _png(h, site.images["logo.png"]))
    site.server.add_handler("/members/*", members_file)
    site.server.add_handler("/api/photos", api)
    site.other.add_handler("/cdn/c.png", lambda h: _png(h, site.images["c.png"]))


@contextlib.contextmanager
def two_hosts(root: Path) -> Iterator[MembersSite]:
    """A server on 127.0.0.1 and one on 127.0.0.2 (the test is skipped where that cannot be bound)."""
    with HTTPTestServer(root) as server:
        try:
            other = HTTPTestServer(root, host="127.0.0.2")
        except OSError:
            pytest.skip("127.0.0.2 cannot be bound here")
        with other:
            yield MembersSite(server, other)


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    with two_hosts(tmp_path_factory.mktemp("members")) as site:
        site.images = {name: png(name, (40, 30)) for name in ("a.png", "b.png", "c.png", "api-1.png", "logo.png")}
        serve_members_site(site)
        yield site


def netscape_file(path: Path, expires: int = 0, extra: str = "") -> Path:
    """A cookies.txt as a browser's export extension writes it: the session cookie HttpOnly,
    a cookie of another site, and one that must never leave the members' path."""
    path.write_text(
        "# Netscape HTTP Cookie File\n"
        "# https://curl.se/docs/http-cookies.html\n\n"
        f"#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t{expires}\tsid\t{SESSION}\n"
        "127.0.0.1\tFALSE\t/members\tFALSE\t0\tpath_only\tm\n"
        ".example.org\tTRUE\t/\tFALSE\t4102444800\telsewhere\tx\n" + extra,
        encoding="utf-8",
    )
    return path


def json_file(path: Path, expires: float | None = None) -> Path:
    """The same cookies as cookie-editor extensions export them."""
    sid = {"domain": "127.0.0.1", "hostOnly": True, "httpOnly": True, "name": "sid", "path": "/",
           "sameSite": "lax", "secure": False, "session": expires is None, "storeId": "0", "value": SESSION}
    if expires is not None:
        sid["expirationDate"] = expires
    path.write_text(json.dumps([
        sid,
        {"domain": "127.0.0.1", "hostOnly": True, "name": "path_only", "path": "/members", "secure": False,
         "session": True, "value": "m"},
        {"domain": ".example.org", "hostOnly": False, "name": "elsewhere", "path": "/", "secure": False,
         "expirationDate": 4102444800.5, "value": "x"},
    ], indent=1), encoding="utf-8")
    return path


def crawl(site: MembersSite, run_crawl, *args: str, **kwargs):
    site.clear()
    result = run_crawl(["-a", f"url={site.url}", *args], **kwargs)
    result.requests = site.requests()
    result.other_requests = site.other_requests()
    return result


def stat(result, key: str) -> int | None:
    found = re.search(rf"'{re.escape(key)}': (\d+)", result.stderr)
    return int(found.group(1)) if found else None


def warnings(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if " WARNING: " in line]


def assert_ok(result) -> None:
    assert result.returncode == 0, result.tail()
    assert not result.error_lines(), result.tail()


def stored(result, site: MembersSite) -> dict[str, bytes]:
    """Image name -> stored bytes, for the images stored."""
    return {item["url"].rsplit("/", 1)[1]: (result.store / item["path"]).read_bytes()
            for item in result.items if item["status"] == "downloaded"}


def cookie_header(request: RecordedRequest) -> dict[str, str]:
    header = request.header("Cookie") or ""
    return dict(part.strip().partition("=")[::2] for part in header.split(";") if part.strip())


# --- a members-only site ------------------------------------------------------


@pytest.fixture(scope="module", params=[NETSCAPE, JSON])
def signed_in(request, members, run_crawl, tmp_path_factory):
    """A crawl of the members' site with its cookies file, in either format."""
    directory = tmp_path_factory.mktemp("signed-in")
    path = netscape_file(directory / "cookies.txt") if request.param == NETSCAPE else json_file(directory / "cookies.json")
    result = crawl(members, run_crawl, "-a", f"cookies={path}")
    result.cookies_path = path
    return result


def test_signed_in_crawl_stores_the_members_images(members, signed_in):
    assert_ok(signed_in)
    assert stored(signed_in, members) == {name: members.images[name] for name in ("a.png", "b.png", "c.png")}
    assert not [r for r in signed_in.requests if r.url_path.startswith("/login")]
    assert not [r for r in signed_in.requests if r.status == 403]
    assert stat(signed_in, "imgscraper/login_wall") is None
    assert stat(signed_in, "imgscraper/cookies/loaded") == 3
    assert f"Cookies: 3 from {signed_in.cookies_path}, for 127.0.0.1, example.org" in signed_in.stderr


def test_signed_in_crawl_sends_each_cookie_where_it_belongs(signed_in):
    by_path = {r.url_path: cookie_header(r) for r in signed_in.requests}
    # The page and the images: the session; the members' images also the cookie of their path.
    assert by_path["/"] == {"sid": SESSION}
    assert by_path["/members/a.png"] == by_path["/members/b.png"] == {"sid": SESSION, "path_only": "m", "seen": "yes"}
    # Another host gets no cookie at all, of this site or of another.
    assert sorted(r.url_path for r in signed_in.other_requests) == ["/cdn/c.png", "/robots.txt"]
    assert {r.header("Cookie") for r in signed_in.other_requests} == {None}
    assert not any("elsewhere" in cookie_header(r) for r in signed_in.requests)


def test_without_cookies_the_login_wall_is_named(members, run_crawl):
    result = crawl(members, run_crawl)
    assert result.returncode == 0, result.tail()
    (warning,) = warnings(result)
    assert (f"Start page {members.url} is behind a login (redirected to a sign-in page with a password field"
            f" ({members.url}login?next=/))") in warning
    assert "-a cookies=FILE (docs/cookies.md)" in warning
    assert stat(result, "imgscraper/login_wall") == 1
    # What a visitor sees: the login page's logo, and none of the members' images.
    assert set(stored(result, members)) == {"logo.png"}


def test_an_expired_cookie_is_named_with_its_date(members, run_crawl, tmp_path):
    path = netscape_file(tmp_path / "cookies.txt", expires=1577836800)  # 2020-01-01 00:00 UTC
    result = crawl(members, run_crawl, "-a", f"cookies={path}")
    assert result.returncode == 0, result.tail()
    expired, login = warnings(result)
    assert f"Cookies of {path} that have expired, not sent: sid (127.0.0.1, expired 2020-01-01 00:00 UTC)" in expired
    assert stat(result, "imgscraper/cookies/expired") == 1
    assert f"the cookies of {path} did not sign the crawl in: export them again" in login
    assert not any(cookie_header(r).get("sid") for r in result.requests)


@pytest.mark.parametrize("file_format", [NETSCAPE, JSON])
def test_the_jar_is_saved_with_the_sites_cookies(members, run_crawl, tmp_path, file_format):
    path = netscape_file(tmp_path / "cookies.txt") if file_format == NETSCAPE else json_file(tmp_path / "cookies.json")
    result = crawl(members, run_crawl, "-a", f"cookies={path}", "-s", "IMGSCRAPER_COOKIES_SAVE=True")
    assert_ok(result)
    saved = read_cookies_file(path)
    assert saved.format == file_format
    assert {(c.domain, c.path, c.name, c.value) for c in saved.cookies} == {
        ("127.0.0.1", "/", "sid", SESSION),  # still a session cookie: a scheduled crawl keeps its session
        ("127.0.0.1", "/members", "path_only", "m"),
        (".example.org", "/", "elsewhere", "x"),
        ("127.0.0.1", "/", "seen", "yes"),  # the page's Set-Cookie
    }
    assert {c.name: c.expires for c in saved.cookies}["sid"] is None
    assert 0 < {c.name: c.expires for c in saved.cookies}["seen"] - time.time() <= 86400
    assert stat_module.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    assert stat(result, "imgscraper/cookies/saved") == 4
    # The saved file signs the next crawl in.
    again = crawl(members, run_crawl, "-a", f"cookies={path}")
    assert_ok(again)
    assert cookie_header(again.requests[0]) == {"sid": SESSION, "seen": "yes"}


@pytest.mark.parametrize("content, problem", [
    (None, "cannot be read (No such file or directory)"),
    ("# Netscape HTTP Cookie File\n127.0.0.1 FALSE / FALSE 0 sid x\n", "line 2 is not a cookie (1 tab-separated field)"),
    ('[{"name": "sid", "value": "x"}]', "cookie 1 of the list is not a cookie (no domain)"),
])
def test_an_unreadable_or_malformed_file_is_a_bad_argument(members, run_crawl, tmp_path, content, problem):
    path = tmp_path / "cookies.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = crawl(members, run_crawl, "-a", f"cookies={path}")
    assert result.returncode == 1
    (error,) = result.error_lines()
    assert f"Bad argument: cookies {path}: {problem}" in error
    assert len(result.stderr.splitlines()) == 1, "checked before the crawl starts: one line, no banner"
    assert result.requests == []


def test_the_argument_wins_over_the_setting(members, run_crawl, tmp_path):
    good = netscape_file(tmp_path / "good.txt")
    result = crawl(members, run_crawl, "-a", f"cookies={good}", "-s", f"IMGSCRAPER_COOKIES={tmp_path / 'missing.txt'}")
    assert_ok(result)
    assert set(stored(result, members)) == {"a.png", "b.png", "c.png"}
    from_setting = crawl(members, run_crawl, "-s", f"IMGSCRAPER_COOKIES={good}")
    assert_ok(from_setting)
    assert set(stored(from_setting, members)) == {"a.png", "b.png", "c.png"}


def test_the_user_agent_names_the_program_and_its_version(signed_in):
    assert {r.header("User-Agent") for r in signed_in.requests + signed_in.other_requests} == {f"imgscraper/{__version__}"}


# --- rendering -----------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which(imgscraper.settings.IMGSCRAPER_RENDER_BROWSER)
    if not path:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: `make test` installs Debian's chromium")
        pytest.skip("Chromium is missing: `make test` installs Debian's chromium")
    return path


def test_rendered_pages_and_their_scripts_get_the_cookies(members, run_crawl, chromium, tmp_path):
    path = netscape_file(tmp_path / "cookies.txt")
    result = crawl(members, run_crawl, "-a", f"cookies={path}", "-a", "render=yes",
                   "-s", "IMGSCRAPER_RENDER_SETTLE_MS=300", "-s", "IMGSCRAPER_COOKIES_SAVE=True")
    assert_ok(result)
    # api-1.png is named by the members' API only, which the page's script called with the session.
    assert stored(result, members) == {name: members.images[name] for name in ("a.png", "b.png", "c.png", "api-1.png")}
    (page,) = [r for r in result.requests if r.url_path == "/"]
    assert page.header("Sec-Fetch-Dest") == "document"  # loaded by the browser
    assert cookie_header(page) == {"sid": SESSION}
    (api,) = [r for r in result.requests if r.url_path == "/api/photos"]
    assert cookie_header(api) == {"sid": SESSION, "seen": "yes"}
    assert api.status == 200
    assert "/cdn/c.png" in {r.url_path for r in result.other_requests}
    assert {r.header("Cookie") for r in result.other_requests} == {None}
    # The page's own Set-Cookie reached the jar.
    assert "seen" in {c.name for c in read_cookies_file(path).cookies}


# --- HTTP basic auth -------------------------------------------------------------


@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    """A site behind HTTP basic auth (user ``member``, password ``pw``) on 127.0.0.1, naming an image on 127.0.0.2."""
    with two_hosts(tmp_path_factory.mktemp("protected")) as site:
        serve_protected_site(site)
        yield site


def serve_protected_site(site: MembersSite) -> None:
    server, other = site.server, site.other
    image = png("protected.png", (30, 30))
    expected = "Basic bWVtYmVyOnB3"  # member:pw

    def guarded(handler: RequestHandler) -> bool:
        if handler.headers.get("Authorization") != expected:
            handler.send_body("", status=401, headers={"WWW-Authenticate": 'Basic realm="members"'})
        elif handler.url_path == "/robots.txt":
            handler.send_body("", status=404)
        elif handler.url_path == "/":
            handler.send_body(f'<img src="/p.png"><img src="{other.url}o.png"><iframe src="{other.url}frame.html"></iframe>',
                              content_type="text/html")
        else:
            handler.send_body(image, content_type="image/png")
        return True

    server.add_handler(lambda path: True, guarded)
    other.add_handler("/o.png", lambda h: _png(h, image))
    other.add_handler("/frame.html", lambda h: h.send_body("<p>framed</p>", content_type="text/html") or True)


def test_basic_auth_goes_to_the_start_host_only(protected, run_crawl):
    result = crawl(protected, run_crawl, "-s", "IMGSCRAPER_HTTP_USER=member", env={"IMGSCRAPER_HTTP_PASSWORD": "pw"})
    assert_ok(result)
    assert {item["url"].rsplit("/", 1)[1]: item["status"] for item in result.items} == {
        "p.png": "downloaded", "o.png": "downloaded"}
    assert sorted((r.url_path, r.status) for r in result.requests) == [("/", 200), ("/p.png", 200), ("/robots.txt", 404)]
    assert {r.header("Authorization") for r in result.requests} == {"Basic bWVtYmVyOnB3"}
    assert sorted(r.url_path for r in result.other_requests) == ["/o.png", "/robots.txt"]  # a frame elsewhere: not followed
    assert {r.header("Authorization") for r in result.other_requests} == {None}


def test_basic_auth_in_the_browser_goes_to_the_start_host_only(protected, run_crawl, chromium):
    result = crawl(protected, run_crawl, "-a", "render=yes", "-s", "IMGSCRAPER_RENDER_SETTLE_MS=300",
                   env={"IMGSCRAPER_HTTP_USER": "member", "IMGSCRAPER_HTTP_PASSWORD": "pw"})
    assert_ok(result)
    assert {item["url"].rsplit("/", 1)[1]: item["status"] for item in result.items} == {
        "p.png": "downloaded", "o.png": "downloaded"}
    # The browser answered the start page's challenge; the frame on the other host got no credentials.
    page = [r for r in result.requests if r.url_path == "/"]
    assert [(r.header("Sec-Fetch-Dest"), r.status) for r in page][-1] == ("document", 200)
    frames = [r for r in result.other_requests if r.url_path == "/frame.html"]
    assert "iframe" in {r.header("Sec-Fetch-Dest") for r in frames}
    assert {r.header("Authorization") for r in result.other_requests} == {None}


def test_basic_auth_missing_is_named(protected, run_crawl):
    result = crawl(protected, run_crawl)
    assert result.returncode == 1  # the start page failed
    (warning,) = warnings(result)
    assert f'Start page {protected.url} is behind a login (HTTP 401, Basic realm="members")' in warning
    assert "set IMGSCRAPER_HTTP_USER, and IMGSCRAPER_HTTP_PASSWORD in the environment" in warning


# --- the User-Agent ------------------------------------------------------------


def test_a_contact_is_added_to_the_user_agent_and_user_agent_wins(members, run_crawl):
    result = crawl(members, run_crawl, "-s", "IMGSCRAPER_CONTACT=ops@example.com")
    assert {r.header("User-Agent") for r in result.requests} == {f"imgscraper/{__version__} (+mailto:ops@example.com)"}
    result = crawl(members, run_crawl, "-s", "IMGSCRAPER_CONTACT=ops@example.com", "-s", "USER_AGENT=mine/1.0")
    assert {r.header("User-Agent") for r in result.requests} == {"mine/1.0"}


def test_contact_reference():
    assert contact_reference("") == ""
    assert contact_reference("me@example.com") == "mailto:me@example.com"
    assert contact_reference("mailto:me@example.com") == "mailto:me@example.com"
    assert contact_reference("https://example.com/bot") == "https://example.com/bot"
    for wrong in ("me", "me@localhost", "https://", "ftp://example.com/", "https://example.com/a b", "a (b)@c.d"):
        with pytest.raises(ValueError, match="neither an e-mail address nor an http"):
            contact_reference(wrong)


def project_settings(**overrides: object) -> Settings:
    settings = Settings()
    settings.setmodule(imgscraper.settings, priority="project")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def test_the_user_agent_add_on():
    settings = project_settings()
    ContactUserAgent().update_settings(settings)
    assert settings["USER_AGENT"] == f"imgscraper/{__version__}"
    assert "github" not in settings["USER_AGENT"]
    settings = project_settings(IMGSCRAPER_CONTACT="https://example.com/bot")
    ContactUserAgent().update_settings(settings)
    assert settings["USER_AGENT"] == f"imgscraper/{__version__} (+https://example.com/bot)"
    settings = project_settings(IMGSCRAPER_CONTACT="bogus")  # the settings check reports it
    ContactUserAgent().update_settings(settings)
    assert settings["USER_AGENT"] == f"imgscraper/{__version__}"


# --- the file formats ------------------------------------------------------------


def test_netscape_format():
    text = (
        "# HTTP cookie file.\n# Generated by Wget\n\n"  # wget's first line, which MozillaCookieJar refuses
        "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t4102444800\tsid\tabc\n"
        "example.com\tFALSE\t/gallery\tFALSE\t0\ttheme\tdark\n"  # 0: a session cookie (curl, extensions)
        "localhost\tFALSE\t/\tFALSE\t0\tdev\t1\n"
        "old.example.com\tFALSE\t/\tFALSE\t1000\told\t1\n"
    )
    file_format, cookies = parse_cookies(text)
    assert file_format == NETSCAPE
    sid, theme, dev, old = cookies
    assert (sid.domain, sid.domain_specified, sid.secure, sid.expires, sid.has_nonstandard_attr("HttpOnly")) == (
        ".example.com", True, True, 4102444800, True)
    assert (theme.domain, theme.domain_specified, theme.path, theme.expires, theme.discard) == (
        "example.com", False, "/gallery", None, True)
    assert dev.domain == "localhost.local"  # how http.cookiejar keeps localhost's cookies
    assert old.is_expired()
    # Written back as read.
    assert format_cookies(cookies, NETSCAPE).splitlines()[3:] == [
        "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t4102444800\tsid\tabc",
        "example.com\tFALSE\t/gallery\tFALSE\t0\ttheme\tdark",
        "localhost\tFALSE\t/\tFALSE\t0\tdev\t1",
        "old.example.com\tFALSE\t/\tFALSE\t1000\told\t1",
    ]


@pytest.mark.parametrize("text, problem", [
    ("example.com\tFALSE\t/\tFALSE\t0\tsid\n", "line 1 is not a cookie (6 tab-separated fields)"),
    ("example.com\tmaybe\t/\tFALSE\t0\tsid\tx\n", "line 1 is not a cookie (include subdomains is 'maybe', not TRUE or FALSE)"),
    ("# c\nexample.com\tFALSE\t/\tFALSE\tsoon\tsid\tx\n", "line 2 is not a cookie (expiry is 'soon', not a Unix time)"),
    ("<html>", "line 1 is not a cookie (1 tab-separated field)"),
    ("[1, 2", "not valid JSON"),
    ('{"cookies": []}', "line 1 is not a cookie"),
    ('[{"name": "a", "value": "b", "domain": ""}]', "cookie 1 of the list is not a cookie (no domain)"),
    ('[{"name": "a", "value": "b", "domain": "x.org", "expirationDate": "never"}]',
     "cookie 1 of the list is not a cookie (its expirationDate 'never' is not a Unix time)"),
])
def test_malformed_files_are_named(text, problem):
    with pytest.raises(CookiesFileError) as raised:
        parse_cookies(text)
    assert str(raised.value).startswith(problem)


def test_cookie_editor_json_round_trip(tmp_path):
    path = json_file(tmp_path / "cookies.json", expires=4102444800.25)
    cookies = read_cookies_file(path).cookies
    sid, path_only, elsewhere = cookies
    assert (sid.domain, sid.domain_specified, sid.expires) == ("127.0.0.1", False, 4102444800)
    assert (elsewhere.domain, elsewhere.domain_specified) == (".example.org", True)
    entries = json.loads(format_cookies(cookies, JSON))
    assert entries[0] == {"domain": "127.0.0.1", "hostOnly": True, "name": "sid", "value": SESSION, "path": "/",
                          "secure": False, "httpOnly": True, "sameSite": "lax", "session": False,
                          "expirationDate": 4102444800}
    assert entries[1]["session"] is True and "expirationDate" not in entries[1]
    assert parse_cookies(format_cookies(cookies, JSON))[1][2].domain == ".example.org"


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "Cookies"
    path.write_bytes(b"SQLite format 3\x00\xff\xfe")
    with pytest.raises(CookiesFileError, match=f"^{re.escape(str(path))}: not a text file$"):
        read_cookies_file(path)


# --- scoping ---------------------------------------------------------------------


def jar_of(*cookies: Cookie) -> CookieJar:
    jar = CookieJar(HostOnlyCookiePolicy())
    for cookie in cookies:
        jar.set_cookie(cookie)
    return jar


def sent(jar: CookieJar, url: str) -> str | None:
    request = Request(url)
    jar.add_cookie_header(request)
    value = request.headers.get("Cookie")
    return value.decode() if value else None


def test_host_only_domain_path_and_secure_scoping():
    jar = jar_of(
        make_cookie("host", "1", "example.com", host_only=True),
        make_cookie("domain", "2", ".example.com", host_only=False),
        make_cookie("secure", "3", "example.com", host_only=True, secure=True),
        make_cookie("members", "4", "example.com", host_only=True, path="/members"),
    )
    assert sent(jar, "http://example.com/") == "host=1; domain=2"
    assert sent(jar, "https://example.com/members/a.png") == "members=4; host=1; secure=3; domain=2"
    assert sent(jar, "http://www.example.com/") == "domain=2"  # a host-only cookie stays on its host
    assert sent(jar, "http://example.com.evil.org/") is None
    assert sent(jar, "http://notexample.com/") is None


def test_set_cookie_updates_the_jar_with_the_same_scoping():
    middleware = CookiesFileMiddleware()
    request = Request("http://example.com/")
    middleware.process_request(request)
    response = Response("http://example.com/", request=request,
                        headers={"Set-Cookie": ["sid=1; Path=/", "wide=2; Domain=example.com; Path=/"]})
    middleware.process_response(request, response)
    for url, expected in [("http://example.com/x", "sid=1; wide=2"), ("http://cdn.example.com/x", "wide=2"),
                          ("http://example.org/x", None)]:
        request = Request(url)
        middleware.process_request(request)
        assert request.headers.get("Cookie") == (expected.encode() if expected else None), url


def test_rendered_requests_give_the_cookies_to_the_browser():
    middleware = CookiesFileMiddleware()
    middleware.jars[None].set_cookie(make_cookie("sid", "1", "example.com", host_only=True, http_only=True))
    request = Request("http://example.com/", meta={"playwright": True, CONTEXT_KWARGS: {"service_workers": "block"}})
    copy = request.copy()
    middleware.process_request(request)
    # Not as a header: scrapy-playwright would send it with every navigation, other hosts' frames included.
    assert request.headers.get("Cookie") is None
    assert request.meta[CONTEXT_KWARGS] == {"service_workers": "block", "storage_state": {"cookies": [{
        "name": "sid", "value": "1", "domain": "example.com", "path": "/", "expires": -1, "httpOnly": True,
        "secure": False}], "origins": []}}
    assert copy.meta[CONTEXT_KWARGS] == {"service_workers": "block"}
    # Playwright joins Set-Cookie headers with newlines; taken back once downloaded (a retry is stored without them).
    response = HtmlResponse("http://example.com/", request=request, headers={"Set-Cookie": "a=1\nb=2"})
    middleware.process_response(request, response)
    assert request.meta[CONTEXT_KWARGS] == {"service_workers": "block"}
    assert sorted(c.name for c in middleware.jars[None]) == ["a", "b", "sid"]


def test_browser_cookie_keeps_host_only_and_same_site():
    host_only = browser_cookie(make_cookie("a", "1", "localhost", host_only=True, expires=4102444800, same_site="Strict"))
    assert host_only == {"name": "a", "value": "1", "domain": "localhost", "path": "/", "expires": 4102444800.0,
                         "httpOnly": False, "secure": False, "sameSite": "Strict"}
    # Chromium refuses SameSite=None without Secure: the browser's default then.
    assert "sameSite" not in browser_cookie(make_cookie("b", "2", ".example.com", host_only=False, same_site="None"))


# --- login walls and basic auth, piece by piece -----------------------------------


def html(url: str, body: str, status: int = 200, request_url: str | None = None, **meta) -> tuple[Request, HtmlResponse]:
    request = Request(request_url or url, meta=meta)
    return request, HtmlResponse(url, status=status, body=body.encode(), request=request)


def test_login_wall():
    assert login_wall(*html("https://example.com/", "<form><input type=password></form>")) == (
        "a sign-in page with a password field (https://example.com/)")
    assert login_wall(*html("https://example.com/account/signin?next=/", "<a href=/sso>Sign in with...</a>",
                            redirect_urls=["https://example.com/"])) == (
        "redirected to a sign-in page (https://example.com/account/signin?next=/)")
    assert login_wall(*html("https://example.com/", "", status=403)) == "HTTP 403"
    assert login_wall(*html("https://example.com/", "<img src=a.png>")) == ""
    assert login_wall(*html("https://example.com/blog/", "<p>login tips</p>", redirect_urls=["https://example.com/blog"])) == ""


def test_credentials_and_start_hosts():
    settings = Settings({"IMGSCRAPER_HTTP_USER": "member", "IMGSCRAPER_HTTP_PASSWORD": ""})
    assert credentials_of(settings, {"IMGSCRAPER_HTTP_PASSWORD": "pw"}) == ("member", "pw")
    assert credentials_of(Settings(), {}) == ("", "")
    assert start_hosts(["http://example.com/", "https://shop.example.com:8443/a"]) == {
        ("example.com", 80), ("example.com", 443), ("shop.example.com", 8443)}


# --- the schedule file -------------------------------------------------------------


def test_the_schedule_names_a_cookies_file_per_site(tmp_path):
    netscape_file(tmp_path / "members.txt")
    schedule = tmp_path / "schedule.toml"
    schedule.write_text(
        '[[sites]]\nurl = "https://members.example.com/"\nevery = "6h"\ncookies = "members.txt"\n'
        '[[sites]]\nurl = "https://example.org/"\nevery = "6h"\n', encoding="utf-8")
    members_site, public = load_schedule(schedule).sites
    assert ("cookies", str(tmp_path / "members.txt")) in members_site.spider_args()
    assert not any(name == "cookies" for name, _ in public.spider_args())


def test_the_schedule_check_refuses_a_missing_cookies_file(tmp_path):
    schedule = tmp_path / "schedule.toml"
    schedule.write_text('[[sites]]\nurl = "https://members.example.com/"\nevery = "6h"\ncookies = "gone.txt"\n',
                        encoding="utf-8")
    with pytest.raises(ScheduleError, match=r"Bad argument: cookies .*gone\.txt: cannot be read"):
        load_schedule(schedule)
