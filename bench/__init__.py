"""``make bench``: imgscraper against stock Scrapy and curl on a local nginx site.

One module per concern, so that other measured tools (e.g. a two-worker
run) can be added as one more function in :mod:`bench.tools`:

* :mod:`bench.site`: generates the sites (deterministic, cached);
* :mod:`bench.servers`: nginx on 127.0.0.1 and a proxy adding latency;
* :mod:`bench.measure`: runs a command, measuring wall, CPU, peak RSS;
* :mod:`bench.tools`: one function per measured tool;
* :mod:`bench.report`: table, JSON and chart;
* :mod:`bench.__main__`: the run itself (``python -m bench --help``).
"""
