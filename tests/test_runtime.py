"""imgscraper.runtime: the garbage collector tuned for a crawl, in the function and in a real crawl;
per-request DEBUG records skipped above DEBUG."""

from __future__ import annotations

import gc
import json
import logging

import pytest

from imgscraper.runtime import PER_REQUEST_LOGGERS, skip_records_below, tune_garbage_collector


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tuning_freezes_what_is_alive_and_raises_the_threshold(restore_gc):
    tune_garbage_collector(20000)
    assert gc.get_threshold()[0] == 20000
    assert gc.get_freeze_count() > 1000  # modules, classes, functions


def test_zero_leaves_the_collector_alone(restore_gc):
    before = gc.get_threshold()
    tune_garbage_collector(0)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(("setting", "tuned"), [(None, True), ("IMGSCRAPER_GC_THRESHOLD=0", False)])
def test_crawl_runs_with_the_setting(site_server_module, run_crawl, tmp_path, setting, tuned):
    probe = tmp_path / "gc.json"
    args = ["-a", f"url={site_server_module.url}", "-s", 'EXTENSIONS={"tests.support.gc_probe.GCProbe": 0}']
    if setting:
        args += ["-s", setting]
    result = run_crawl(args, env={"GC_PROBE_FILE": str(probe)})
    assert result.returncode == 0, result.tail()
    state = json.loads(probe.read_text())
    if tuned:
        assert state["threshold"][0] == 20000 and state["frozen"] > 1000, state
    else:
        assert state["threshold"] == [700, 10, 10] and state["frozen"] == 0, state


@pytest.fixture
def restore_levels():
    levels = {name: logging.getLogger(name).level for name in PER_REQUEST_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(("level", "expected"), [("INFO", logging.INFO), ("WARNING", logging.WARNING),
                                               ("DEBUG", logging.NOTSET)])
def test_per_request_loggers_drop_records_under_the_log_level(restore_levels, level, expected):
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    skip_records_below(level)
    assert {logging.getLogger(name).level for name in PER_REQUEST_LOGGERS} == {expected}


@pytest.mark.parametrize(("log_level", "expected"), [("INFO", logging.INFO), ("DEBUG", logging.NOTSET)])
def test_a_crawl_sets_the_per_request_loggers_to_its_log_level(site_server_module, run_crawl, tmp_path,
                                                               log_level, expected):
    probe = tmp_path / "probe.json"
    args = ["-a", f"url={site_server_module.url}", "-s", 'EXTENSIONS={"tests.support.gc_probe.GCProbe": 0}']
    result = run_crawl(args, env={"GC_PROBE_FILE": str(probe)}, log_level=log_level)
    assert result.returncode == 0, result.tail()
    assert set(json.loads(probe.read_text())["levels"].values()) == {expected}
    assert ("Crawled (200)" in result.output) is (log_level == "DEBUG")
