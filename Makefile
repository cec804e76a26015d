# The two commands of the README: `make demo` (the app on the embedded default) and `make test`.
SHELL := /bin/bash
VENV_PY := .venv/bin/python
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 GRADIO_ANALYTICS_ENABLED=False \
           YOLO_OFFLINE=1 YOLO_AUTOINSTALL=False TOKENIZERS_PARALLELISM=false

.PHONY: setup demo test test-slow bench bench-spatial clean

setup:
	./scripts/bootstrap.sh

demo: setup
	GRADIO_ANALYTICS_ENABLED=False $(VENV_PY) app.py

test:
	./scripts/bootstrap.sh --with-browser
	export YOLO_CONFIG_DIR=$$(mktemp -d); $(OFFLINE) $(VENV_PY) -m pytest -q $(PYTEST_ARGS)

test-slow:
	./scripts/bootstrap.sh --with-browser
	export YOLO_CONFIG_DIR=$$(mktemp -d); $(OFFLINE) $(VENV_PY) -m pytest -m slow -q $(PYTEST_ARGS)

bench: setup
	$(OFFLINE) $(VENV_PY) benchmarks/build_dataset.py
	$(MAKE) bench-spatial

bench-spatial: setup
	export YOLO_CONFIG_DIR=$$(mktemp -d); $(OFFLINE) $(VENV_PY) benchmarks/spatial_av_align.py $(BENCH_ARGS)

clean:
	rm -rf .pytest_cache build dist *.egg-info
