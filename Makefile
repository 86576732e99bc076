# Two commands on a fresh machine:
#   make demo   - virtual environment, install, reconstruct a real clip with the shipped tokenizer
#   make test   - the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_VERSION ?= 2.13.0
OUT ?= out

.PHONY: install demo lint test test-fast bench data science science-report science-gpu clean

$(BIN)/onevae: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned (a local CPU build here); an unpinned torch would pull a multi-GB CUDA build
	$(BIN)/pip install --quiet torch==$(TORCH_VERSION)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[test,data,corpus,experiments]"
	@touch $(BIN)/onevae

install: $(BIN)/onevae

demo: install
	@mkdir -p $(OUT)
	$(BIN)/onevae reconstruct -o $(OUT)/carphone_side_by_side.mp4 --side-by-side --report $(OUT)/report
	@echo "side-by-side video (input | tokens | latents): $(OUT)/carphone_side_by_side.mp4"
	@echo "per-frame metrics and PSNR plot: $(OUT)/report/"

lint: install
	$(BIN)/ruff check src tests benchmarks scripts

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

# The paper's claims measured with our training code (docs/results.md): runs or continues every experiment
# (resumable; a finished run is never redone), one torch thread, then rewrites the report.
EXPERIMENTS ?= configs/experiments/e1_prior_vs_scratch.yaml configs/experiments/e6_transition_schedules.yaml \
	configs/experiments/e2_quantizers.yaml configs/experiments/e5_joint.yaml configs/experiments/e3_multi_token.yaml \
	configs/experiments/e4_first_frame.yaml
RUNS ?= runs/science
science: install data
	OMP_NUM_THREADS=1 $(BIN)/onevae experiment run $(EXPERIMENTS) --runs $(RUNS) --opencv data/opencv --threads 1
	$(BIN)/onevae experiment report --runs $(RUNS)

science-report: install
	$(BIN)/onevae experiment report --runs $(RUNS)

# The larger-scale versions (configs/experiments/gpu/), for a machine with a GPU: JOBS runs share it at once.
JOBS ?= 9
science-gpu: install data
	$(BIN)/onevae experiment run configs/experiments/gpu/*.yaml --runs runs/science-gpu --opencv data/opencv --jobs $(JOBS) --threads 2
	$(BIN)/onevae experiment report --runs runs/science-gpu --experiments configs/experiments/gpu --out docs/results_gpu.md

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
