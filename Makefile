# imgscraper: `make crawl URL=...` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
URL ?=
DEPTH ?= 0
STORE ?= images
OUT ?= images.jsonl
# Worker processes of the crawl on this machine (IMGSCRAPER_WORKERS; above 1, a private redis-server).
WORKERS ?= 1
SCRAPY_ARGS ?=
# Debian packages the tests need, installed by `make debs` when missing (add yours here).
DEBS := chromium redis-server
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Scrapyd (see docs/scrapyd.md).
SCRAPYD_PORT ?= 6800
SCRAPYD_URL ?= http://127.0.0.1:$(SCRAPYD_PORT)
SCRAPYD_HOME ?= $(HOME)/.local/share/imgscraper/scrapyd
SCRAPYD_AUTH_FILE ?= $(HOME)/.config/imgscraper/scrapyd.env
SETTINGS ?=
SCHEDULE ?= schedule.toml
export SCRAPYD_URL
# Loads SCRAPYD_USERNAME/SCRAPYD_PASSWORD from SCRAPYD_AUTH_FILE unless they are in the environment.
WITH_SCRAPYD_AUTH = if [ -z "$$SCRAPYD_PASSWORD" ]; then \
	  test -r "$(SCRAPYD_AUTH_FILE)" || { echo "no Scrapyd credentials: set SCRAPYD_USERNAME and SCRAPYD_PASSWORD, or run make scrapyd-auth" >&2; exit 2; }; \
	  set -a; . "$(SCRAPYD_AUTH_FILE)"; set +a; fi;
# Local paths are made absolute: Scrapyd runs jobs in SCRAPYD_HOME.
STORE_URI = $(if $(findstring ://,$(STORE)),$(STORE),$(abspath $(STORE)))

.PHONY: help install install-dev debs crawl test test-fast bench bench-workers bench-render faults clean scrapyd-auth scrapyd deploy schedule scheduler jobs test-fast

help:
	@echo "make help: this list. Crawling:"
	@echo "  make crawl URL=https://example.com [DEPTH=0] [STORE=images] [OUT=images.jsonl] [WORKERS=1] [SCRAPY_ARGS='-a download=no -s NAME=VALUE']"
	@echo "                         one crawl: images into STORE, items into OUT; SCRAPY_ARGS adds any scrapy crawl option"
	@echo "  make install            what running the crawler needs (requirements.txt) in .venv [PYTHON=python3]"
	@echo "  make install-dev        plus the tests' and benchmarks' (requirements-dev.txt)"
	@echo "  make debs               the Debian packages the tests need: $(DEBS) (sudo unless root)"
	@echo "  make clean              remove .venv and .pytest_cache"
	@echo "Testing and measuring:"
	@echo "  make test               the whole suite (minutes); one file: .venv/bin/python -m pytest -q tests/extensions/test_summary.py"
	@echo "  make test-fast          the tests that start no crawl, browser or service (about a minute)"
	@echo "  make bench [BENCH_ARGS=...]          a few minutes; see docs/benchmarks.md"
	@echo "  make bench-workers [BENCH_ARGS=...]  images/s of 1, 2 and 3 workers sharing a crawl through Redis"
	@echo "  make bench-render [BENCH_ARGS=...]   per-page time and pages/min with and without -a render=yes"
	@echo "  make faults [TRIES=3]   every fault scenario TRIES times, as a table: docs/faults.md (root: mounts a tmpfs)"
	@echo "Scrapyd (docs/scrapyd.md; SCRAPYD_PORT=6800, SCRAPYD_URL=http://127.0.0.1:SCRAPYD_PORT,"
	@echo "         SCRAPYD_HOME=~/.local/share/imgscraper/scrapyd, SCRAPYD_AUTH_FILE=~/.config/imgscraper/scrapyd.env):"
	@echo "  make scrapyd-auth       create SCRAPYD_AUTH_FILE (user and random password) unless it exists"
	@echo "  make scrapyd            run Scrapyd in the foreground on 127.0.0.1:SCRAPYD_PORT"
	@echo "  make deploy             upload the project to Scrapyd at SCRAPYD_URL"
	@echo "  make schedule URL=https://example.com [DEPTH=0] [STORE=images] [SETTINGS='NAME=VALUE ...']   one job now"
	@echo "  make scheduler [SCHEDULE=schedule.toml]   the schedule file's crawls, on time (foreground)"
	@echo "  make jobs               the recent jobs: exit status and summary, failed first"

# Two sets: what running the crawler needs (requirements.txt: install), and that plus
# what the tests and benchmarks need (requirements-dev.txt: install-dev). Each has its
# own stamp, so a fresh clone's `make crawl` installs only the first.
$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.installed-dev: requirements-dev.txt $(BIN)/.installed
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

install: $(BIN)/.installed

install-dev: $(BIN)/.installed-dev

debs:
	@missing="$$(for p in $(DEBS); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done)"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

crawl: install
	@test -n "$(URL)" || { echo "usage: make crawl URL=https://example.com [DEPTH=1] [WORKERS=2]" >&2; exit 2; }
	$(BIN)/scrapy crawl images -a url="$(URL)" -a depth=$(DEPTH) -s IMAGES_STORE="$(STORE)" -O "$(OUT)" \
	  -s IMGSCRAPER_WORKERS=$(WORKERS) $(SCRAPY_ARGS)

# The gallery and rendering tests use Debian's headless Chromium, the shared-crawl tests a real Redis (DEBS).
# The project's modules compiled first (see bench): the tests start a few hundred crawls.
# Two pytest workers (pytest-xdist), each taking whole files: most tests wait on a crawl
# process, so the suite takes about half as long on two cores.
test: install-dev debs
	$(BIN)/python -m compileall -q imgscraper
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# The quick loop: the tests marked neither crawl, chromium nor services (pytest.ini), in seconds.
test-fast: install-dev
	$(BIN)/python -m pytest -q -m "not crawl and not chromium and not services"

# The project's modules compiled first, as pip compiles installed packages: with
# PYTHONDONTWRITEBYTECODE set, every crawl would compile them again (about 0.05 s).
bench: install-dev debs
	$(BIN)/python -m compileall -q imgscraper
	$(BIN)/python -m bench $(BENCH_ARGS)

# Creates SCRAPYD_AUTH_FILE (user imgscraper, a random password, mode 600) unless
# credentials are in the environment or the file exists.
scrapyd-auth: install
	@if [ -z "$$SCRAPYD_PASSWORD" ] && [ ! -f "$(SCRAPYD_AUTH_FILE)" ]; then \
	  mkdir -p "$(dir $(SCRAPYD_AUTH_FILE))" && umask 077 && \
	  printf 'SCRAPYD_USERNAME=imgscraper\nSCRAPYD_PASSWORD=%s\n' \
	    "$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(24))')" > "$(SCRAPYD_AUTH_FILE)" && \
	  echo "Scrapyd credentials written to $(SCRAPYD_AUTH_FILE)"; fi

# Runs Scrapyd in the foreground on 127.0.0.1:SCRAPYD_PORT, with its eggs, logs,
# items and job database in SCRAPYD_HOME. Its jobs inherit its environment: every
# job's runner (scrapyd.runner) imports pkg_resources, which warns on import.
SCRAPYD_JOB_WARNINGS = ignore:pkg_resources is deprecated:UserWarning
scrapyd: scrapyd-auth
	mkdir -p "$(SCRAPYD_HOME)"
	cp deploy/scrapyd.conf "$(SCRAPYD_HOME)/scrapyd.conf"
	@$(WITH_SCRAPYD_AUTH) cd "$(SCRAPYD_HOME)" && SCRAPYD_HTTP_PORT=$(SCRAPYD_PORT) \
	  PYTHONWARNINGS="$(SCRAPYD_JOB_WARNINGS)" exec "$(CURDIR)/$(BIN)/scrapyd"

# Each target that talks to Scrapyd first checks that it answers (one line if not).
SCRAPYD_UP = $(BIN)/python -m imgscraper.scrapyd.service

deploy: install
	@$(WITH_SCRAPYD_AUTH) $(SCRAPYD_UP) && $(BIN)/scrapyd-deploy env

schedule: install
	@test -n "$(URL)" || { echo "usage: make schedule URL=https://example.com [DEPTH=1]" >&2; exit 2; }
	@$(WITH_SCRAPYD_AUTH) $(SCRAPYD_UP) && $(BIN)/scrapyd-client schedule -t env -p imgscraper images \
	  --arg url="$(URL)" --arg depth=$(DEPTH) --arg setting=IMAGES_STORE="$(STORE_URI)" \
	  $(foreach s,$(SETTINGS),--arg setting=$(s))

# Submits the crawls of SCHEDULE to Scrapyd on their cron expressions (foreground).
scheduler: install
	@$(WITH_SCRAPYD_AUTH) exec $(BIN)/python -m imgscraper.scrapyd.schedule "$(SCHEDULE)"

# Scrapyd's recent jobs with their exit status and summary line, failed ones first.
jobs: install
	@$(WITH_SCRAPYD_AUTH) $(BIN)/python -m imgscraper.scrapyd.jobs

# Many workers, one crawl: 1, 2 and 3 workers through Redis (make bench runs a part).
bench-workers: install-dev debs
	$(BIN)/python -m bench.workers $(BENCH_ARGS)

bench-render: install-dev debs
	$(BIN)/python -m bench.render $(BENCH_ARGS)

# Every fault scenario of the tests, TRIES times each, as a table (see docs/faults.md).
TRIES ?= 3
faults: install-dev
	$(BIN)/python -m tests.support.faults_report --tries $(TRIES)

clean:
	rm -rf $(VENV) .pytest_cache
