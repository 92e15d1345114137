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

.PHONY: help install install-dev debs crawl test bench bench-workers bench-render faults clean scrapyd-auth scrapyd deploy schedule scheduler

help:
	@echo "make crawl URL=https://example.com [DEPTH=1] [STORE=images] [OUT=images.jsonl] [WORKERS=2]"
	@echo "make test"
	@echo "make install | make install-dev   # what running the crawler needs (requirements.txt) | plus tests and benchmarks (requirements-dev.txt)"
	@echo "make bench [BENCH_ARGS=...]   # a few minutes; see docs/benchmarks.md"
	@echo "make scrapyd | make deploy | make schedule URL=https://example.com [DEPTH=1] [STORE=images] [SETTINGS='NAME=VALUE ...'] | make scheduler SCHEDULE=schedule.toml"
	@echo "make bench-render [BENCH_ARGS=...]   # per-page time and pages/min with and without -a render=yes"
	@echo "make faults [TRIES=3]   # every fault scenario TRIES times, as a table: docs/faults.md (root: mounts a tmpfs)"
	@echo "make bench-workers [BENCH_ARGS=...]  # images/s of 1, 2 and 3 workers sharing a crawl through Redis"

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
test: install-dev debs
	$(BIN)/python -m compileall -q imgscraper
	$(BIN)/python -m pytest -q

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
# items and job database in SCRAPYD_HOME.
scrapyd: scrapyd-auth
	mkdir -p "$(SCRAPYD_HOME)"
	cp deploy/scrapyd.conf "$(SCRAPYD_HOME)/scrapyd.conf"
	@$(WITH_SCRAPYD_AUTH) cd "$(SCRAPYD_HOME)" && SCRAPYD_HTTP_PORT=$(SCRAPYD_PORT) exec "$(CURDIR)/$(BIN)/scrapyd"

deploy: install
	@$(WITH_SCRAPYD_AUTH) $(BIN)/scrapyd-deploy env

schedule: install
	@test -n "$(URL)" || { echo "usage: make schedule URL=https://example.com [DEPTH=1]" >&2; exit 2; }
	@$(WITH_SCRAPYD_AUTH) $(BIN)/scrapyd-client schedule -t env -p imgscraper images \
	  --arg url="$(URL)" --arg depth=$(DEPTH) --arg setting=IMAGES_STORE="$(STORE_URI)" \
	  $(foreach s,$(SETTINGS),--arg setting=$(s))

# Submits the crawls of SCHEDULE to Scrapyd on their cron expressions (foreground).
scheduler: install
	@$(WITH_SCRAPYD_AUTH) exec $(BIN)/python -m imgscraper.scrapyd_schedule "$(SCHEDULE)"

# Many workers, one crawl: 1, 2 and 3 workers through Redis (make bench runs a part).
bench-workers: install-dev debs
	$(BIN)/python -m bench.workers $(BENCH_ARGS)

bench-render: install-dev debs
	$(BIN)/python -m bench.render $(BENCH_ARGS)

# Every fault scenario of the tests, TRIES times each, as a table (see docs/faults.md).
TRIES ?= 3
faults: install-dev
	$(BIN)/python tests/faults_report.py --tries $(TRIES)

clean:
	rm -rf $(VENV) .pytest_cache
