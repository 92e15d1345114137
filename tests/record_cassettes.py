"""Record the scrapy-mock cassettes of tests/test_spider.py from the generated site.

Run from the project root: ``.venv/bin/python tests/record_cassettes.py``. It
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

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS), str(TESTS.parent)]

from httpserver import HTTPTestServer  # noqa: E402
from test_spider import generate_recorded_site  # noqa: E402


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        generate_recorded_site(Path(tmp))
        with HTTPTestServer(Path(tmp), port=8719):
            env = {k: v for k, v in os.environ.items() if k != "CI"}
            return subprocess.call([sys.executable, "-m", "pytest", "-q", str(TESTS / "test_spider.py")], env=env, cwd=TESTS.parent)


if __name__ == "__main__":
    sys.exit(main())
