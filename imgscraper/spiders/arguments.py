"""The ``images`` spider's arguments (``-a NAME=VALUE``): parsed and checked before the crawl starts.

The arguments are the keyword parameters of the spider's ``__init__``, with
their defaults in its signature: ``url`` (comma-separated) and/or ``urls_file``;
``sitemap`` (sitemap URLs, or ``auto`` for those the start sites' robots.txt
names); ``depth`` (default 0: the start pages only); ``follow_domains``
(comma-separated domains whose pages are followed too, ``*`` for any; by default
only the start URLs' sites); ``download=no`` to list images without downloading;
``render=yes`` to render pages in Chromium first (:mod:`imgscraper.rendering.renderer`);
``click=CSS_SELECTOR`` to click a "load more" element on every rendered page
(implies ``render=yes``). The filters ``allow``, ``deny`` (pages followed),
``image_allow``, ``image_deny``, ``formats``, ``min_bytes`` and ``max_bytes``
(images kept) set their ``IMGSCRAPER_<NAME>`` setting (:mod:`imgscraper.filters`), and so
do ``originals=yes`` (the full-size originals of thumbnails, :mod:`imgscraper.discovery.originals`)
and ``max_images=N`` (stop once N images are stored): :func:`apply_setting_arguments`.
Any other argument is a bad argument, except Scrapyd's own (``_job``, ``_version``).

:func:`parse_arguments` turns their raw text into :class:`SpiderArguments`. A
wrong one is an :class:`~imgscraper.exceptions.ArgumentError` whose message
says how to fix it.
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cssselect
from scrapy.settings import SETTINGS_PRIORITIES, BaseSettings

from imgscraper.exceptions import ArgumentError
from imgscraper.filters import FILTERS, resolve_arguments

__all__ = [
    "SETTING_ARGUMENTS", "SpiderArguments", "apply_setting_arguments", "check_argument_names", "check_http_url",
    "is_http_url", "parse_arguments", "parse_click", "parse_count", "parse_depth", "parse_follow_domains",
    "parse_sitemaps", "parse_start_urls", "parse_yes_no", "with_guessed_scheme",
]

logger = logging.getLogger(__name__)

#: A host name or address, maybe with a port, then maybe a path: what people type for a site.
_SCHEMELESS_URL = re.compile(r"(?P<host>localhost|\[[0-9a-fA-F:.]+\]|[\w-]+(?:\.[\w-]+)+)(?::\d+)?(?:[/?#].*)?", re.DOTALL)
_IP_ADDRESS = re.compile(r"\[.*\]|[\d.]+")


@dataclass
class SpiderArguments:
    """What the crawl arguments ask for, parsed: the start pages and sitemaps, how deep and
    how far to follow links, whether to download, render and click."""

    start_urls: list[str] = field(default_factory=list)
    sitemap_urls: list[str] = field(default_factory=list)
    #: ``-a sitemap=auto``: read the sitemaps the start sites' robots.txt names.
    sitemaps_from_robots_txt: bool = False
    depth: int = 0
    #: The domains whose pages are followed besides the start pages' sites (``*``: any).
    follow_domains: list[str] = field(default_factory=list)
    download: bool = True
    render: bool = False
    click: str = ""


def parse_arguments(arguments: Mapping[str, Any], known: Collection[str]) -> tuple[SpiderArguments, str]:
    """The ``arguments`` (name: raw value, every one the spider takes and any other given)
    parsed, and what is wrong with the first bad one (empty when none).

    ``known`` are the names the spider takes (:func:`check_argument_names`). The
    arguments parsed before a bad one keep their values, the others their defaults.
    """
    parsed = SpiderArguments(follow_domains=parse_follow_domains(arguments["follow_domains"]))
    try:
        check_argument_names(arguments, known)
        parsed.sitemap_urls, parsed.sitemaps_from_robots_txt = parse_sitemaps(arguments["sitemap"])
        parsed.start_urls = parse_start_urls(
            arguments["url"], arguments["urls_file"],
            required=not (parsed.sitemap_urls or parsed.sitemaps_from_robots_txt),
        )
        if parsed.sitemaps_from_robots_txt and not parsed.start_urls:
            raise ArgumentError(
                "sitemap=auto reads the sitemaps the start sites' robots.txt names: pass -a url=https://example.com too"
            )
        parsed.depth = parse_depth(arguments["depth"])
        parsed.download = parse_yes_no("download", arguments["download"])
        render = arguments["render"]
        parsed.click = parse_click(arguments["click"], render)
        parsed.render = parse_yes_no("render", render) if render is not None else bool(parsed.click)
        setting_values(arguments)
    except ArgumentError as exc:
        return parsed, str(exc)
    return parsed, ""


def apply_setting_arguments(arguments: Mapping[str, Any], settings: BaseSettings) -> None:
    """Each filter given as an argument (``-a formats=jpeg``) sets its setting
    (``IMGSCRAPER_FORMATS``), and so does each of :data:`SETTING_ARGUMENTS` (``-a originals=yes``:
    ``IMGSCRAPER_ORIGINALS=True``), over one given with ``-s``: the components read them there.

    Raises ``ValueError`` for the first bad one (:func:`imgscraper.filters.resolve_arguments`).
    """
    values = {option.setting: value for option, value in resolve_arguments(arguments, FILTERS).items()}
    for setting, value in {**values, **setting_values(arguments)}.items():
        settings.set(setting, value, priority=max(settings.getpriority(setting) or 0, SETTINGS_PRIORITIES["cmdline"]))


def setting_values(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The settings that :data:`SETTING_ARGUMENTS` given in ``arguments`` set, with their parsed values;
    raises :class:`ArgumentError` for a bad one."""
    return {setting: parse(arguments[name]) for name, (setting, parse) in SETTING_ARGUMENTS.items()
            if arguments.get(name) is not None}


def parse_start_urls(url: str | None, urls_file: str | None, required: bool = True) -> list[str]:
    """The start URLs from ``-a url=A,B`` and/or ``-a urls_file=FILE`` (one per line, ``#`` comments);
    none is an error when ``required`` (a crawl from sitemaps needs none)."""
    candidates = [u.strip() for u in (url or "").split(",")]
    if urls_file:
        try:
            lines = Path(urls_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ArgumentError(f"cannot read urls_file {urls_file!r}: {exc.strerror}") from None
        candidates += [line.strip() for line in lines if not line.strip().startswith("#")]
    urls = [with_guessed_scheme(u) for u in candidates if u]
    if not urls and required:
        raise ArgumentError("no start URL: pass -a url=https://example.com (or -a urls_file=FILE, -a sitemap=URL)")
    for start_url in urls:
        check_http_url("url", start_url)
    return list(dict.fromkeys(urls))


def check_http_url(argument: str, url: str) -> None:
    """Raise :class:`ArgumentError` unless ``url`` (given as ``argument``) is a well-formed http(s) URL."""
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise ArgumentError(f"{argument} {url!r} is not an http(s) URL: pass e.g. -a {argument}=https://example.com")
    try:
        urlsplit(url).port  # noqa: B018 - reading it is the check
    except ValueError as exc:
        raise ArgumentError(f"{argument} {url!r} is malformed ({exc}): pass e.g. -a {argument}=https://example.com") from None


def is_http_url(url: str) -> bool:
    """Whether ``url`` (read from a sitemap) is a well-formed http(s) URL."""
    try:
        check_http_url("url", url)
    except ArgumentError:
        return False
    return True


def parse_sitemaps(value: str | None) -> tuple[list[str], bool]:
    """``-a sitemap=URL[,URL...]``, where ``auto`` stands for the sitemaps the start sites'
    robots.txt names: the sitemap URLs, and whether ``auto`` was given."""
    names = [name.strip() for name in (value or "").split(",") if name.strip()]
    urls = [name for name in names if name.lower() != "auto"]
    for url in urls:
        check_http_url("sitemap", url)
    return list(dict.fromkeys(urls)), len(urls) < len(names)


def with_guessed_scheme(url: str) -> str:
    """``url``, or for a site typed without a scheme (``example.com/gallery``) its URL as a
    browser would try it: ``https://``, or ``http://`` for ``localhost`` and IP addresses."""
    match = _SCHEMELESS_URL.fullmatch(url)
    if "://" in url or not match:
        return url
    scheme = "http" if match["host"] == "localhost" or _IP_ADDRESS.fullmatch(match["host"]) else "https"
    logger.info("Start URL %r has no scheme: crawling %s://%s", url, scheme, url)
    return f"{scheme}://{url}"


def parse_depth(depth: Any) -> int:
    """``-a depth=N``: a non-negative integer."""
    return parse_count("depth", depth)


def parse_count(name: str, value: Any, example: int = 1) -> int:
    """Argument ``name`` (``-a depth=N``, ``-a max_images=N``): a non-negative integer."""
    try:
        count = int(str(value).strip())
    except ValueError:
        count = -1
    if count < 0:
        raise ArgumentError(f"{name} {value!r} is not a non-negative integer: pass e.g. -a {name}={example}")
    return count


def parse_yes_no(name: str, value: Any) -> bool:
    """``yes/no``, ``true/false``, ``1/0``, ``on/off``."""
    text = str(value).strip().lower()
    if text in ("yes", "true", "1", "on"):
        return True
    if text in ("no", "false", "0", "off"):
        return False
    raise ArgumentError(f"{name} {value!r} is not yes or no: pass e.g. -a {name}=no")


def parse_click(selector: str | None, render: str | None) -> str:
    """``-a click=CSS_SELECTOR``: a CSS selector (checked by cssselect's parser,
    which lets through pseudo-classes only a browser knows); it needs
    rendering, so it implies ``render=yes`` and contradicts ``render=no``."""
    if selector is None:
        return ""
    try:
        cssselect.parse(selector)
    except cssselect.SelectorSyntaxError as exc:
        raise ArgumentError(
            f"click {selector!r} is not a CSS selector ({exc}): pass e.g. -a 'click=button.load-more'") from None
    if render is not None and not parse_yes_no("render", render):
        raise ArgumentError(
            f"click {selector!r} clicks in the browser, and render is {render!r}: leave render out or pass -a render=yes")
    return selector


def parse_follow_domains(value: str) -> list[str]:
    """``-a follow_domains=A,B``: the domains, lower case (``*`` stands for any)."""
    return [domain.strip().lower() for domain in value.split(",") if domain.strip()]


def check_argument_names(given: Iterable[str], known: Collection[str]) -> None:
    """Raise :class:`ArgumentError` for an argument in ``given`` the spider does not take.

    Names starting with ``_`` pass: Scrapyd adds its own (``_job``, ``_version``).
    """
    unknown = [name for name in given if name not in known and not name.startswith("_")]
    if not unknown:
        return
    problems = []
    for name in unknown:
        close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
        problems.append(f"{name} (did you mean {close[0]}?)" if close else name)
    plural = "s" if len(unknown) > 1 else ""
    raise ArgumentError(f"unknown argument{plural} {', '.join(problems)}: the arguments are {', '.join(known)}")


#: The arguments besides the filters that set a setting (the argument wins): the setting, and how the
#: argument's text is read (raises :class:`ArgumentError`).
SETTING_ARGUMENTS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "originals": ("IMGSCRAPER_ORIGINALS", partial(parse_yes_no, "originals")),
    "max_images": ("IMGSCRAPER_MAX_IMAGES", partial(parse_count, "max_images", example=100)),
}
