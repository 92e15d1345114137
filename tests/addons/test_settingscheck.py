"""Wrong settings: one error line saying what is wrong and how to fix it,
exit status 1, no traceback, nothing fetched or stored.

``check_settings`` is tested directly on Scrapy ``Settings`` objects, the
add-on on a crawler, and a few crawls show the whole path through ``scrapy
crawl`` (tests/test_bad_input.py shows that nothing is changed).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import scrapy
import scrapy_playwright
import scrapy_redis
from scrapy.settings import Settings, default_settings
from scrapy.utils.test import get_crawler

from imgscraper import settings as project_settings
from imgscraper.addons.settingscheck import SettingsCheck, check_settings, known_setting_names, unknown_settings
from imgscraper.settingspec import SETTINGS
from imgscraper.spiders.images import ImagesSpider

ARGUMENTS = ImagesSpider.argument_names()


def project(tmp_path, **overrides) -> Settings:
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.set("IMAGES_STORE", str(tmp_path / "store"), priority="cmdline")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def test_every_project_setting_has_a_kind_and_one_default():
    defined = {name for name in dir(project_settings) if name.startswith("IMGSCRAPER_")}
    assert {name for name in SETTINGS if name.startswith("IMGSCRAPER_")} == defined
    without_default = {name for name in SETTINGS if not hasattr(project_settings, name) and not hasattr(default_settings, name)}
    assert without_default == {"IMAGES_THUMBS"}  # ImagesPipeline.THUMBS: {}


def test_project_defaults_pass_and_the_check_creates_nothing(tmp_path):
    assert check_settings(project(tmp_path)) == []
    assert not (tmp_path / "store").exists()


@pytest.mark.parametrize(
    "overrides, words",
    [
        ({"IMGSCRAPER_FILE_NAMES": "bogus"}, ("IMGSCRAPER_FILE_NAMES", "'bogus'", "stable, random")),
        ({"IMGSCRAPER_SRCSET": "biggest"}, ("IMGSCRAPER_SRCSET", "largest, all")),
        ({"IMGSCRAPER_NEAR_DUPLICATES": "on"}, ("IMGSCRAPER_NEAR_DUPLICATES", "'on'", "off, mark, skip")),
        ({"IMGSCRAPER_FILE_NAME": "random"}, ("unknown setting IMGSCRAPER_FILE_NAME", "did you mean IMGSCRAPER_FILE_NAMES")),
        ({"IMAGE_STORE": "x"}, ("unknown setting IMAGE_STORE", "did you mean IMAGES_STORE")),
        ({"IMGSCRAPER_CONVERT_TO_JPEG": "maybe"}, ("IMGSCRAPER_CONVERT_TO_JPEG", "true or false")),
        ({"IMAGES_EXPIRES": "abc"}, ("IMAGES_EXPIRES", "integer")),
        ({"IMGSCRAPER_EXPIRES": "soon"}, ("IMGSCRAPER_EXPIRES", "duration")),
        ({"IMAGES_MIN_WIDTH": "-3"}, ("IMAGES_MIN_WIDTH", ">= 0")),
        ({"CONCURRENT_REQUESTS": "0"}, ("CONCURRENT_REQUESTS", ">= 1")),
        ({"IMGSCRAPER_PROGRESS_INTERVAL": "soon"}, ("IMGSCRAPER_PROGRESS_INTERVAL", "number")),
        ({"IMGSCRAPER_PROGRESS": "sometimes"}, ("IMGSCRAPER_PROGRESS", "true or false")),
        ({"IMGSCRAPER_MAX_PAGES": "-1"}, ("IMGSCRAPER_MAX_PAGES", ">= 0")),
        ({"IMGSCRAPER_WORKERS": "0"}, ("IMGSCRAPER_WORKERS", ">= 1")),
        ({"IMGSCRAPER_MAX_RATE": "fast"}, ("IMGSCRAPER_MAX_RATE='fast' is not a size", "-s IMGSCRAPER_MAX_RATE=1M")),
        ({"IMGSCRAPER_MAX_RATE": "-1M"}, ("IMGSCRAPER_MAX_RATE='-1M' is not a size",)),
        ({"IMGSCRAPER_RETRY_AFTER_MAX": "soon"}, ("IMGSCRAPER_RETRY_AFTER_MAX", "number")),
        ({"IMGSCRAPER_HOST_FAILURES": "-1"}, ("IMGSCRAPER_HOST_FAILURES", ">= 0")),
        ({"IMGSCRAPER_HOST_COOLDOWN": "soon"}, ("IMGSCRAPER_HOST_COOLDOWN", "number")),
        ({"IMGSCRAPER_FAILURE_LINES": "few"}, ("IMGSCRAPER_FAILURE_LINES", "integer")),
        ({"IMAGES_THUMBS": "[1, 2]"}, ("IMAGES_THUMBS", "JSON object")),
        ({"IMAGES_THUMBS": {"small": [64]}}, ('IMAGES_THUMBS["small"]', "[width, height]")),
        ({"IMGSCRAPER_RENDER_MAX_PAGES": "0"}, ("IMGSCRAPER_RENDER_MAX_PAGES", ">= 1")),
        ({"IMGSCRAPER_RENDER_MAX_SCROLLS": "-1"}, ("IMGSCRAPER_RENDER_MAX_SCROLLS", ">= 0")),
        ({"IMGSCRAPER_RENDER_SETTLE_MS": "soon"}, ("IMGSCRAPER_RENDER_SETTLE_MS", "integer")),
        ({"IMGSCRAPER_RENDER_TIMEOUT": "-1"}, ("IMGSCRAPER_RENDER_TIMEOUT", ">= 0")),
        ({"IMGSCRAPER_RENDER_LOAD_IMAGES": "maybe"}, ("IMGSCRAPER_RENDER_LOAD_IMAGES", "true or false")),
        ({"IMGSCRAPER_ALLOW_PRIVATE_NETWORKS": "maybe"}, ("IMGSCRAPER_ALLOW_PRIVATE_NETWORKS", "true or false")),
        ({"TWISTED_REACTOR_ENABLED": True, "TWISTED_DNS_RESOLVER": "scrapy.resolver.CachingThreadedResolver"},
         ("TWISTED_DNS_RESOLVER", "cannot refuse private addresses", "GuardedResolver")),
        ({"IMGSCRAPER_RENDER_MAX_CLICKS": "-1"}, ("IMGSCRAPER_RENDER_MAX_CLICKS", ">= 0")),
        ({"IMGSCRAPER_RENDER_MAX_CLICKS": "many"}, ("IMGSCRAPER_RENDER_MAX_CLICKS", "integer")),
        ({"TWISTED_REACTOR_ENABLED": False}, ("TWISTED_REACTOR_ENABLED=False", "experimental", "rewrites")),
        # Every name, not only the project's: a misspelt Scrapy setting would be ignored.
        ({"JOB_DIR": "crawls/1"}, ("unknown setting JOB_DIR", "did you mean JOBDIR?")),
        ({"CONCURENT_REQUESTS_PER_DOMAIN": "2"}, ("did you mean CONCURRENT_REQUESTS_PER_DOMAIN?",)),
        ({"DOWNLOAD_DELAI": "1"}, ("unknown setting DOWNLOAD_DELAI", "did you mean DOWNLOAD_DELAY?")),
        ({"log_level": "DEBUG"}, ("unknown setting log_level", "did you mean LOG_LEVEL?")),
        ({"REDIS_URI": "redis://x"}, ("did you mean REDIS_URL?",)),
        ({"PLAYWRIGHT_MAX_CONTEXT": "2"}, ("did you mean PLAYWRIGHT_MAX_CONTEXTS?",)),
        # Depth is a spider argument: a depth setting, misspelt or Scrapy's, points there.
        ({"IMGSCRAPER_DEPHT": "2"}, ("unknown setting IMGSCRAPER_DEPHT", "did you mean the spider argument -a depth=")),
        ({"DEPTH": "2"}, ("unknown setting DEPTH", "-a depth=")),
        ({"DEPTH_LIMIT": "2"}, ("DEPTH_LIMIT='2'", "pass -a depth=2 instead")),
        ({"DEPTH_LIMIT": "deep"}, ("DEPTH_LIMIT='deep'", "-a depth=")),
        ({"IMGSCRAPER_NOTHING_LIKE_IT": "1"}, ("unknown setting IMGSCRAPER_NOTHING_LIKE_IT", "see docs/settings.md")),
    ],
)
def test_wrong_setting_is_one_clear_problem(tmp_path, overrides, words):
    problems = check_settings(project(tmp_path, **overrides), ARGUMENTS)
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems[0]
    assert "DENY" not in problems[0]
    assert any(fix in problems[0] for fix in ("-s ", "-a ", "docs/settings.md", "did you mean")), f"no fix: {problems[0]}"


@pytest.mark.parametrize("name", ["MY_MIDDLEWARE_RETRIES", "SPLASH_URL", "PROXY_POOL_ENABLED", "ZYTE_API_KEY"])
def test_a_setting_close_to_no_known_one_is_no_problem(tmp_path, name):
    settings = project(tmp_path, **{name: "1"})
    assert check_settings(settings, ARGUMENTS) == []
    assert unknown_settings(settings, ARGUMENTS) == {name: ""}


def test_scrapys_default_depth_limit_passes(tmp_path):
    assert check_settings(project(tmp_path, DEPTH_LIMIT="0"), ARGUMENTS) == []


def names_read_in(package, pattern: re.Pattern[str]) -> set[str]:
    return {name for path in Path(package.__file__).parent.rglob("*.py") for name in pattern.findall(path.read_text())}


def test_the_settings_the_components_read_are_known():
    """Scrapy's settings outside its default settings, scrapy-redis' and scrapy-playwright's,
    read from their sources as installed: an upgrade that adds one fails here."""
    read = re.compile(r"""(?:settings|resolve|_key_for_pipe)\s*(?:\.get\w*\(|\[|\()\s*["']([A-Z_][A-Z0-9_]+)["']""")
    quoted = re.compile(r"""["'](_?[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)["']""")
    names = names_read_in(scrapy, read) | names_read_in(scrapy_redis, quoted) | names_read_in(scrapy_playwright, quoted)
    assert {"IMAGES_THUMBS", "REDIS_URL", "SCHEDULER_PERSIST", "PLAYWRIGHT_LAUNCH_OPTIONS"} <= names
    assert names - known_setting_names() == set()


def test_the_add_on_warns_once_of_a_setting_close_to_no_known_one(tmp_path, caplog):
    check = SettingsCheck.from_crawler(get_crawler(ImagesSpider))
    with caplog.at_level(logging.WARNING, logger="imgscraper.addons.settingscheck"):
        check.update_settings(project(tmp_path, MY_MIDDLEWARE_RETRIES="5"))
    assert check.problems == []
    assert [record.getMessage() for record in caplog.records] == [
        "Unknown setting MY_MIDDLEWARE_RETRIES: not one of Scrapy's, scrapy-redis', scrapy-playwright's or imgscraper's,"
        " nor close to one: left to your own components"
    ]


def test_the_add_on_leaves_out_the_pipelines_of_a_crawl_with_a_wrong_setting(tmp_path):
    check = SettingsCheck.from_crawler(get_crawler(ImagesSpider))
    settings = project(tmp_path, IMGSCRAPER_FILE_NAMES="bogus")
    check.update_settings(settings)
    assert len(check.problems) == 1 and "IMGSCRAPER_FILE_NAMES" in check.problems[0]
    assert settings.getdict("ITEM_PIPELINES") == {} and settings.get("IMGSCRAPER_FILE_NAMES") == "stable"


def test_unwritable_store(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    problems = check_settings(project(tmp_path, IMAGES_STORE=str(tmp_path / "file" / "store")))
    assert len(problems) == 1 and "IMAGES_STORE" in problems[0] and "cannot be written" in problems[0], problems


def test_store_not_checked_when_not_downloading(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    settings = project(tmp_path, IMAGES_STORE=str(tmp_path / "file" / "store"), ITEM_PIPELINES={})
    assert check_settings(settings) == []


def test_any_resolver_when_private_networks_allowed(tmp_path):
    settings = project(tmp_path, TWISTED_REACTOR_ENABLED=True, IMGSCRAPER_ALLOW_PRIVATE_NETWORKS=True,
                       TWISTED_DNS_RESOLVER="scrapy.resolver.CachingHostnameResolver")
    assert check_settings(settings) == []
    assert check_settings(project(tmp_path, TWISTED_REACTOR_ENABLED=True)) == []
    ipv6 = project(tmp_path, TWISTED_DNS_RESOLVER="imgscraper.resolver.GuardedHostnameResolver")
    assert check_settings(ipv6) == []


def test_other_components_settings_are_not_flagged(tmp_path):
    assert check_settings(project(tmp_path, PLAYWRIGHT_BROWSER_TYPE="chromium", AWS_ENDPOINT_URL="http://x")) == []


# -- through scrapy crawl ----------------------------------------------------


@pytest.fixture(scope="module")
def srv(site_server_module):
    return site_server_module


@pytest.mark.parametrize(
    "setting, words",
    [
        ("IMGSCRAPER_FILE_NAMES=bogus", ("IMGSCRAPER_FILE_NAMES", "stable")),
        ("IMGSCRAPER_SKIP_TRACKING_PIXEL=no", ("did you mean IMGSCRAPER_SKIP_TRACKING_PIXELS",)),
        ("", ("IMAGES_STORE", "cannot be written")),
        # Read by the spider (built before the check) and by the crawl command (before the crawler).
        ("IMGSCRAPER_MAX_PAGES=many", ("IMGSCRAPER_MAX_PAGES", "integer")),
        ("IMGSCRAPER_WORKERS=all", ("IMGSCRAPER_WORKERS", "integer")),
        ("IMGSCRAPER_SCRIPT_IMAGES=maybe", ("IMGSCRAPER_SCRIPT_IMAGES", "true or false")),
        ("IMGSCRAPER_NEAR_DUPLICATES=yes", ("IMGSCRAPER_NEAR_DUPLICATES", "off, mark, skip")),
        # Scrapy's experimental aiohttp transport: no handler built, nothing left unclosed.
        ("TWISTED_REACTOR_ENABLED=False", ("TWISTED_REACTOR_ENABLED=False", "experimental")),
        ("TWISTED_DNS_RESOLVER=scrapy.resolver.CachingThreadedResolver", ("TWISTED_DNS_RESOLVER", "GuardedResolver")),
    ],
    ids=["bad-value", "misspelt-name", "unwritable-store", "not-a-number-spider", "not-a-number-command",
         "not-a-boolean-spider", "bad-near-duplicates", "reactorless", "unguarded-resolver"],
)
def test_crawl_refuses_wrong_setting(srv, run_crawl, tmp_path, setting, words):
    (tmp_path / "file").write_text("not a directory")
    store = tmp_path / ("store" if setting else "file/store")
    result = run_crawl(["-a", f"url={srv.url}"] + (["-s", setting] if setting else []), store=store, out_dir=tmp_path,
                       servers=srv.servers)
    assert result.returncode == 1, result.tail()
    assert "Traceback" not in result.output, result.tail()
    errors = result.error_lines()
    assert len(errors) == 1, errors
    for word in words:
        assert word in errors[0], errors[0]
    # Refused before the crawl is set up: no banner, no stats, nothing created.
    assert len(result.stderr.splitlines()) <= 3 and errors[0] == result.stderr.splitlines()[0], result.stderr
    assert not store.exists() and not result.items_path.exists()
    assert not result.requests, "requests made despite a wrong setting"
