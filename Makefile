# jianfu — the two commands: `make demo` and `make test`. Both install everything they need.
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PADDLE_STAMP := $(VENV)/.installed-paddle
DEMO_STORE ?= var/demo
DEMO_PORT ?= 8801
DEMO_WEB_PORT ?= 8000
DEMO_USER ?= demo
DEMO_PASSWORD ?= jianfu-demo-2026

.PHONY: demo test bench lint system install clean wording

system:
	scripts/install-system.sh

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

# The optional paddleocr engine (~1.5 GB); the tests exercise it, so `make test` installs it.
$(PADDLE_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,paddle]'
	touch $(PADDLE_STAMP)

# int8 copies of the OCR models, made from the installed ones (detectors/ocr/int8.py, docs/ocr.md):
# a no-op when they exist; the OCR engine runs the fp32 models without them.
install: system $(STAMP)
	$(BIN)/python -m detectors.ocr.int8

demo: install
	@mkdir -p var
	@$(BIN)/python -m demo_site.server --port-base $(DEMO_PORT) > var/demo-site.log 2>&1 & echo $$! > var/demo-site.pid; \
	trap 'kill $$(cat var/demo-site.pid) 2>/dev/null; rm -f var/demo-site.pid' EXIT; \
	for i in $$(seq 50); do curl -sf -o /dev/null http://127.0.0.1:$(DEMO_PORT)/ && break; sleep 0.2; done; \
	$(BIN)/python -m demo_site.ledger --port-base $(DEMO_PORT) --out var/demo-ledger.csv && \
	$(BIN)/jianfu institutions import var/demo-ledger.csv --store $(DEMO_STORE) && \
	$(BIN)/jianfu scan \
	  启明星学堂=http://127.0.0.1:$(DEMO_PORT)/ 学霸通在线=http://127.0.0.1:$$(($(DEMO_PORT)+1))/ \
	  彩虹艺术中心=http://127.0.0.1:$$(($(DEMO_PORT)+2))/ 飞跃体育编程俱乐部=http://127.0.0.1:$$(($(DEMO_PORT)+3))/ \
	  --store $(DEMO_STORE) --district 示范区 && \
	$(BIN)/jianfu findings --store $(DEMO_STORE) --format table && \
	printf '%s\n' '$(DEMO_PASSWORD)' | $(BIN)/jianfu users add $(DEMO_USER) --role supervisor --district 示范区 \
	  --store $(DEMO_STORE) --update > /dev/null && \
	echo && echo "网页端（调查人员使用）：" && \
	echo "  1. 启动：$(BIN)/jianfu serve --store $(DEMO_STORE) --port $(DEMO_WEB_PORT)" && \
	echo "  2. 在浏览器打开 http://127.0.0.1:$(DEMO_WEB_PORT)/" && \
	echo "  3. 用户名 $(DEMO_USER)，密码 $(DEMO_PASSWORD)（督导，负责 示范区；可审批、导出证据包）" && \
	echo "  添加账号：$(BIN)/jianfu users add 姓名 --role investigator --district 示范区 --store $(DEMO_STORE)"

test: install $(PADDLE_STAMP)
	$(BIN)/ruff check .
	scripts/elasticsearch.sh install
	scripts/elasticsearch.sh start
	set -o pipefail; $(BIN)/pytest -q -p no:cacheprovider; rc=$$?; scripts/elasticsearch.sh stop; exit $$rc

bench: install $(PADDLE_STAMP)
	scripts/elasticsearch.sh install
	scripts/elasticsearch.sh start
	$(BIN)/python -m bench; rc=$$?; scripts/elasticsearch.sh stop; exit $$rc

# retrain the wording model (detectors/wording.py) after changing the rules' examples, the pitch lists
# of tests/test_detectors_pitches.py or the corpora: a test fails while the shipped model is stale
wording: install
	$(BIN)/pip install -q -e '.[dev,train]'
	$(BIN)/python -m bench.train_wording

lint: install
	$(BIN)/ruff check .

clean:
	rm -rf var .pytest_cache .ruff_cache
