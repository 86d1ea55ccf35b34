# The two set-up commands (`make demo`, `make test`) build everything they
# need from nothing: a pinned uv in .tools/, then .venv from uv.lock.
PYTHON ?= python3.11
UV_VERSION := 0.13.9
UV := .tools/bin/uv
VENV := .venv
STAMP := $(VENV)/.synced

.PHONY: demo test lint fmt bench clean package checkov system-deps

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(STAMP): $(UV) pyproject.toml uv.lock
	$(UV) sync --frozen --quiet --python $(PYTHON)
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/spreadpilot demo

# poppler-utils (pdftotext, pdftoppm): the statement tests read and render the PDFs.
# chromium (/usr/bin/chromium): the console's browser tests (tests/browser, Playwright).
system-deps:
	@command -v pdftotext >/dev/null || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq poppler-utils >/dev/null; }
	@[ -x /usr/bin/chromium ] || { \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) system-deps
	$(VENV)/bin/pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check shared functions tests bench ibsim gateway
	$(VENV)/bin/ruff format --check shared functions tests bench ibsim gateway
	$(VENV)/bin/mypy

fmt: $(STAMP)
	$(VENV)/bin/ruff format shared functions tests bench ibsim gateway
	$(VENV)/bin/ruff check --fix shared functions tests bench ibsim gateway

requirements.txt: uv.lock
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --quiet -o requirements.txt

clean:
	rm -rf .tools $(VENV) .spreadpilot .pytest_cache .mypy_cache .ruff_cache

bench: $(STAMP)
	$(VENV)/bin/python bench/signal_path.py
	$(VENV)/bin/python bench/ibsim_latency.py
	$(VENV)/bin/python bench/agent_execution.py
	$(VENV)/bin/python bench/alert_routing.py
	$(VENV)/bin/python bench/pnl_rollup.py
	$(VENV)/bin/python bench/statements.py
	$(VENV)/bin/python bench/admin_api.py

# Issue 7: the functions' deployable zips (dist/functions/<name>.zip) and the
# offline Terraform checks' checkov, in its own environment so its many pins
# never touch .venv.
CHECKOV := .tools/checkov/bin/checkov

package: $(STAMP) requirements.txt
	$(VENV)/bin/python deploy/package.py

$(CHECKOV): $(UV) deploy/checkov-requirements.txt
	rm -rf .tools/checkov
	$(UV) venv --quiet --python $(PYTHON) .tools/checkov
	$(UV) pip install --quiet --python .tools/checkov/bin/python --require-hashes -r deploy/checkov-requirements.txt
	touch $(CHECKOV)

checkov: $(CHECKOV)
	$(CHECKOV) --skip-download --quiet --compact --framework terraform -d terraform
