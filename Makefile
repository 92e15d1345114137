# imgscraper: `make crawl URL=...` and `make test` set everything up themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
URL ?=
DEPTH ?= 0
STORE ?= images
OUT ?= images.jsonl
SCRAPY_ARGS ?=

.PHONY: help install crawl test bench clean

help:
	@echo "make crawl URL=https://example.com [DEPTH=1] [STORE=images] [OUT=images.jsonl]"
	@echo "make test"
	@echo "make bench [BENCH_ARGS=...]   # a few minutes; see README, Speed"

$(BIN)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

install: $(BIN)/.installed

crawl: install
	@test -n "$(URL)" || { echo "usage: make crawl URL=https://example.com [DEPTH=1]" >&2; exit 2; }
	$(BIN)/scrapy crawl images -a url="$(URL)" -a depth=$(DEPTH) -s IMAGES_STORE="$(STORE)" -O "$(OUT)" $(SCRAPY_ARGS)

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache
