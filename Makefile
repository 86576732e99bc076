# Two commands on a fresh machine:
#   make demo   - virtual environment, install, reconstruct a real clip with the shipped tokenizer
#   make test   - the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
OUT ?= out

.PHONY: install demo test test-fast bench data clean

$(BIN)/onevae: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned (a local CPU build here); an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,data]"
	@touch $(BIN)/onevae

install: $(BIN)/onevae

demo: install
	@mkdir -p $(OUT)
	$(BIN)/onevae reconstruct -o $(OUT)/carphone_side_by_side.mp4 --side-by-side --report $(OUT)/report
	@echo "side-by-side video (input | tokens | latents): $(OUT)/carphone_side_by_side.mp4"
	@echo "per-frame metrics and PSNR plot: $(OUT)/report/"

test: install
	$(BIN)/python -m pytest -q

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

bench: install
	$(BIN)/python benchmarks/bench_model.py

data: install
	bash scripts/fetch_opencv_clips.sh data/opencv
	bash scripts/fetch_wallpapers.sh data/wallpapers
	$(BIN)/python scripts/prepare_training_data.py --out data/train_default

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
