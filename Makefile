# The README's two commands: `make demo` and `make test`. Both set everything up from scratch
# (system packages, a .venv, pip installs) and are idempotent: a second run reuses the .venv.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat setup.py | sha1sum | cut -c1-10)
DEMO_ARGS ?=
TEST_ARGS ?=

.PHONY: setup demo test pytest colcon-test lint bench clean

$(STAMP): setup.py
	bash scripts/setup-system.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU build on local disk, never a multi-GB CUDA download.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[robot,train,ros,dev]'
	rm -f $(VENV)/.installed-*
	touch $@

setup: $(STAMP)

demo: setup
	bash scripts/loopback.sh $(BIN)/rldt-train demo $(DEMO_ARGS)

# Tests run inside a loopback-only network namespace: no DDS packet can leave the machine.
# `make test` (CI) = the whole suite here, then colcon build + colcon test of the robot side in
# a second venv without torch, as on a robot computer. With TEST_ARGS (a part of the suite),
# only pytest runs.
test: pytest
	$(if $(TEST_ARGS),@echo 'make test: TEST_ARGS given; colcon test skipped (make colcon-test)',PY=$(PY) bash scripts/colcon-test.sh)

pytest: setup
	bash scripts/loopback.sh $(BIN)/python -m pytest $(TEST_ARGS)

colcon-test:
	PY=$(PY) bash scripts/colcon-test.sh

lint: setup
	$(BIN)/ruff check rldt_ros rldt_train tests bench launch

bench: setup
	bash scripts/loopback.sh $(BIN)/python bench/sampler_latency.py

clean:
	rm -rf $(VENV) .venv-colcon .colcon runs reports build install log *.egg-info
