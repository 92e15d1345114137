"""Record the scrapy-mock cassettes of tests/spiders/test_images.py from the generated site.

Run from the project root: ``.venv/bin/python -m tests.support.record_cassettes``. It
serves the deterministic test site on 127.0.0.1:8719 and runs the callback
tests with recording on (scrapy-mock records missing cassettes unless
``CI`` is set). Delete a cassette to record it again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.crawl import PROJECT_ROOT
from tests.support.httpserver import HTTPTestServer
from tests.support.sitegen import generate_recorded_site


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate_recorded_site(Path(tmp))
        with HTTPTestServer(Path(tmp), port=8719):
            env = {k: v for k, v in os.environ.items() if k != "CI"}
            return subprocess.call([sys.executable, "-m", "pytest", "-q", "tests/spiders/test_images.py"], env=env,
                                   cwd=PROJECT_ROOT)


if __name__ == "__main__":
    sys.exit(main())
