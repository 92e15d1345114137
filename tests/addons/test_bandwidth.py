"""The BandwidthLimit add-on: IMGSCRAPER_MAX_RATE gives http and https to the paced handler,
where Scrapy's HTTP/1.1 handler had them; nothing else changes."""

from __future__ import annotations

import logging

import pytest
from scrapy.settings import Settings

from imgscraper import settings as project_settings
from imgscraper.addons.bandwidth import PACED_HANDLER, BandwidthLimit

SCRAPYS = "scrapy.core.downloader.handlers.http11.HTTP11DownloadHandler"


def handlers_after(**overrides) -> dict:
    settings = Settings()
    settings.setmodule(project_settings, priority="project")
    for name, value in overrides.items():
        settings.set(name, value, priority="cmdline")
    BandwidthLimit().update_settings(settings)
    return dict(settings.getwithbase("DOWNLOAD_HANDLERS"))


@pytest.mark.parametrize("rate", ["", "0", 0])
def test_without_a_limit_nothing_changes(rate):
    handlers = handlers_after(IMGSCRAPER_MAX_RATE=rate)
    assert handlers["http"] == handlers["https"] == SCRAPYS


def test_a_limit_paces_http_and_https_and_keeps_the_other_schemes():
    handlers = handlers_after(IMGSCRAPER_MAX_RATE="1M")
    assert handlers["http"] == handlers["https"] == PACED_HANDLER
    assert handlers["file"] is None and handlers["ftp"] is None
    assert handlers["data"].endswith("DataURIDownloadHandler")


def test_a_handler_of_your_own_is_kept_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="imgscraper.addons.bandwidth"):
        handlers = handlers_after(IMGSCRAPER_MAX_RATE="1M", DOWNLOAD_HANDLERS={"https": "my.project.Handler"})
    assert handlers["http"] == PACED_HANDLER and handlers["https"] == "my.project.Handler"
    assert [record.getMessage() for record in caplog.records] == [
        "IMGSCRAPER_MAX_RATE does not pace https: DOWNLOAD_HANDLERS gives it to my.project.Handler, not to"
        " Scrapy's HTTP/1.1 handler"]


def test_a_scheme_turned_off_stays_off():
    handlers = handlers_after(IMGSCRAPER_MAX_RATE="1M", DOWNLOAD_HANDLERS={"http": None, "https": SCRAPYS})
    assert handlers["http"] is None and handlers["https"] == PACED_HANDLER


def test_a_wrong_value_is_left_to_the_settings_check():
    handlers = handlers_after(IMGSCRAPER_MAX_RATE="fast")
    assert handlers["http"] == SCRAPYS
