"""Wrong settings: one error line saying what is wrong and how to fix it,
exit status 1, no traceback, nothing fetched or stored.

``check_settings`` is tested directly on Scrapy ``Settings`` objects, and a
few crawls show the whole path through ``scrapy crawl``.
"""

from __future__ import annotations

import pytest
from scrapy.settings import Settings

from imgscraper import settings as project_settings
from imgscraper.addons.settingscheck import check_settings


def project(tmp_path, **overrides) -> Settings:
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    settings.set("IMAGES_STORE", str(tmp_path / "store"), priority="cmdline")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    return settings


def test_project_defaults_pass(tmp_path):
    assert check_settings(project(tmp_path)) == []
    assert (tmp_path / "store").is_dir()


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
    ],
)
def test_wrong_setting_is_one_clear_problem(tmp_path, overrides, words):
    problems = check_settings(project(tmp_path, **overrides))
    assert len(problems) == 1, problems
    for word in words:
        assert word in problems[0], problems[0]
    assert any(fix in problems[0] for fix in ("-s ", "docs/settings.md", "did you mean")), f"no fix: {problems[0]}"


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
    assert result.stats.get("finish_reason") == "bad_setting"
    assert not result.stored_files()
    assert not result.requests, "requests made despite a wrong setting"
