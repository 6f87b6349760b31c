# The two commands a fresh machine needs: `make run` and `make test`.
# Both build the virtual environment first (once; again when the pins change).

PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_STAMP := $(VENV)/.torch-installed
SNAKEMAKE := $(BIN)/snakemake
CORES ?= 1

.PHONY: run test env slurm-deps lint fmt report gpu-bundle gpu-check bench-fidelity bench-repeat bench-overhead bench-max-batch bench-accuracy-pipeline bench-slurm bench-interference bench-serving clean

# uv installs the pins in a quarter of pip's time (19 s against 74 s for
# requirements.txt here); the venv keeps pip for the optional builds below,
# which take their wheels from wherever pip is configured to look.
UV_VERSION := 0.13.9
$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

# The optional torch runtime: the test suite measures it, the default run does not.
$(TORCH_STAMP): $(STAMP) requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements-torch.txt
	touch $@

# A runtime's GPU build in place of its CPU build, with the CUDA libraries it
# needs, put on the jobs' library path (see README, "GPUs and clusters"):
#   GPU=cu117     MXNet 1.9's CUDA 11.7 build (GPUs before Hopper)
#   GPU=ort-cu12  onnxruntime-gpu for CUDA 12 and cuDNN 9 (Hopper included)
# Each replaces one package of requirements.txt (mxnet, onnxruntime): both
# builds own its package folder, so the CPU one goes first.
GPU ?=
GPU_STAMP := $(VENV)/.gpu-$(GPU)-installed
GPU_REPLACES_cu117 := mxnet
GPU_REPLACES_ort-cu12 := onnxruntime
ifeq ($(GPU),)
RUN_DEPS := $(STAMP)
LIBRARY_PATH_SETTING :=
else ifneq ($(GPU_REPLACES_$(GPU)),)
RUN_DEPS := $(GPU_STAMP)
LIBRARY_PATH_SETTING = LD_LIBRARY_PATH="$$(ls -d $(abspath $(VENV))/lib/python*/site-packages/nvidia/*/lib | paste -sd:)$${LD_LIBRARY_PATH:+:$$LD_LIBRARY_PATH}"
else
$(error GPU=$(GPU) is not a build dlmark installs; use GPU=cu117 (MXNet 1.9's CUDA 11.7 build) or GPU=ort-cu12 (onnxruntime-gpu for CUDA 12), or leave GPU unset)
endif

$(VENV)/.gpu-%-installed: $(STAMP) requirements-gpu-%.txt
	$(BIN)/python -m pip uninstall --quiet --yes $(GPU_REPLACES_$*)
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps -r requirements-gpu-$*.txt
	touch $@

env: $(STAMP)

run: $(RUN_DEPS)
	$(LIBRARY_PATH_SETTING) $(SNAKEMAKE) --cores $(CORES) --resources gpu=1

# The SLURM packages install (apt) while the venv builds (uv, pip): two
# downloads at once instead of one after the other on a fresh machine.
# Then the suite in two workers, one per core of the 2-core VMs it is sized
# for (tests/conftest.py says how the tests are grouped), and last the tests
# that judge the machine's load, with nothing beside them.
test:
	$(MAKE) --no-print-directory -j2 $(TORCH_STAMP) slurm-deps
	$(BIN)/pytest -n 2 -m "not quiet"
	$(BIN)/pytest -m quiet

# tests/test_slurm.py starts a one-node SLURM cluster on 127.0.0.1 from
# Debian's packages; install them once (apt-get needs root, else sudo).
SLURM_PACKAGES := slurm-wlm slurmdbd munge mariadb-server
SLURM_PROGRAMS := munged mariadb-install-db mariadbd slurmdbd slurmctld slurmd sbatch sacct sacctmgr sinfo
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

slurm-deps:
	@missing=""; for p in $(SLURM_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "Installing $(SLURM_PACKAGES) for the SLURM test (missing:$$missing)"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(SLURM_PACKAGES) >/dev/null; \
	fi

lint: $(STAMP)
	$(SNAKEMAKE) --lint
	$(BIN)/snakefmt --check Snakefile rules/

fmt: $(STAMP)
	$(BIN)/snakefmt Snakefile rules/

report: run
	$(SNAKEMAKE) --report results/report.html

clean:
	rm -rf results logs .snakemake

# An offline GPU node: make the bundle here (package index and MXNet needed),
# copy the folder over, run `make gpu-check` there (see README, "GPUs and clusters").
gpu-bundle: $(STAMP) $(TORCH_STAMP)
	$(BIN)/python gpu/bundle.py gpu-bundle

gpu-check:
	python3 gpu/check.py

# Benchmarks of dlmark itself (what each gave: docs/validation.md).
bench-fidelity: $(STAMP)
	$(BIN)/python benchmarks/fidelity.py

bench-serving: $(STAMP)
	$(BIN)/python benchmarks/serving_overhead.py

bench-overhead: $(STAMP)
	bash benchmarks/overhead.sh bench/overhead

# Two default runs back to back, the second on a cold page cache (as root):
# memory must not depend on what the cache holds.
bench-repeat: $(STAMP)
	rm -rf bench/repeat-a bench/repeat-b
	bash benchmarks/overhead.sh bench/repeat-a
	sync; if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo "page cache dropped"; else echo "page cache kept (drop_caches needs root)"; fi
	bash benchmarks/overhead.sh bench/repeat-b
	$(BIN)/python benchmarks/repeatability.py bench/repeat-a/results/throughput.csv bench/repeat-b/results/throughput.csv
	@# compare exits 1 when it flags a slower row: here that is a finding to read, not a failed benchmark.
	$(BIN)/dlmark compare bench/repeat-a/results bench/repeat-b/results || [ $$? -eq 1 ]

# The default run with one CPU-bound process through its first half, against
# a quiet run made right before it: one an hour old carries the VM's own
# drift, which is not what this benchmark asks about (docs/validation.md).
bench-interference: $(STAMP)
	rm -rf bench/interference-quiet
	$(BIN)/python benchmarks/interference.py

bench-max-batch: $(STAMP)
	$(BIN)/python benchmarks/max_batch_compare.py

bench-slurm: $(STAMP) slurm-deps
	$(BIN)/python benchmarks/slurm_overhead.py

bench-accuracy-pipeline: $(STAMP)
	$(BIN)/python benchmarks/accuracy_pipeline.py
