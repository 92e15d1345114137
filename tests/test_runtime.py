"""imgscraper.runtime: the garbage collector tuned for a crawl, in the function and in a real crawl."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest

from imgscraper.runtime import tune_garbage_collector

TESTS_DIR = Path(__file__).resolve().parent


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
    args = ["-a", f"url={site_server_module.url}", "-s", 'EXTENSIONS={"gc_probe.GCProbe": 0}']
    if setting:
        args += ["-s", setting]
    result = run_crawl(args, env={"PYTHONPATH": str(TESTS_DIR), "GC_PROBE_FILE": str(probe)})
    assert result.returncode == 0, result.tail()
    state = json.loads(probe.read_text())
    if tuned:
        assert state["threshold"][0] == 20000 and state["frozen"] > 1000, state
    else:
        assert state["threshold"] == [700, 10, 10] and state["frozen"] == 0, state
