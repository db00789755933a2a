# The commands a person types. `make demo` and `make test` set everything up first.
PY := .venv/bin/python
SETUP := .venv/.gmsep-setup
DEMO_DATA := data/demo
export HF_HUB_OFFLINE := 1

.PHONY: setup demo test lint bench ablation clean-demo report-screenshot

setup: $(SETUP)

$(SETUP): requirements.txt setup.cfg tools/setup.sh tools/fix_torchaudio.py
	bash tools/setup.sh

# Generate (once) and prepare the demo corpus, then train, test and export the demo model.
demo: $(SETUP)
	$(PY) -m recipes.demo_corpus --out $(DEMO_DATA)
	$(PY) train.py hparams/demo.yaml --data_folder $(DEMO_DATA)/Libri2Mix
	$(PY) -m gmsep export results/demo/1234 --out pretrained/demo --overwrite
	@echo "Demo model exported to pretrained/demo (see its README.md)"

# What each part of the method buys (README "Ablations"): 6 variants x 3
# seeds, then the recipe's switches x 2 seeds, on a 500-mixture demo corpus;
# about 1 h 45 min on 2 CPU cores. Stopped, the same command resumes.
ABLATION_DATA := data/demo-ablation
ABLATION_RUNS := results/ablation/runs
ablation: $(SETUP)
	$(PY) -m recipes.demo_corpus --out $(ABLATION_DATA) --n-train 500 --n-test 100
	$(PY) -m gmsep.ablation hparams/ablations/demo.yaml --data_folder $(ABLATION_DATA)/Libri2Mix --runs $(ABLATION_RUNS) --jobs 2
	$(PY) -m gmsep.ablation hparams/ablations/demo-switches.yaml --data_folder $(ABLATION_DATA)/Libri2Mix --runs $(ABLATION_RUNS) --jobs 2

test: $(SETUP)
	$(PY) -m pytest -q

lint: $(SETUP)
	.venv/bin/ruff check modules recipes tests train.py benchmarks tools
	.venv/bin/ruff format --check modules recipes tests train.py benchmarks tools

# glibc keeps freed memory for reuse instead of giving it back to the system
# and faulting it in again every step (what a caching allocator does on a GPU).
BENCH_ALLOCATOR := glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736

# About 8 minutes on 2 CPU cores (README "Performance").
# BENCH_ARGS: options of benchmarks/run.py, e.g. --long-inputs (60 s separations)
BENCH_ARGS :=

bench: $(SETUP)
	GLIBC_TUNABLES=$(BENCH_ALLOCATOR) $(PY) benchmarks/run.py $(BENCH_ARGS)

# The listening report of the demo model on the demo test set, and the
# screenshot of it that the README shows (after `make demo`).
REPORT_MODEL := pretrained/demo
REPORT_CSV := results/demo/1234/save/libri2mix_test.csv
REPORT_OUT := results/demo/evaluation
report-screenshot: $(SETUP)
	$(PY) -m gmsep evaluate --model $(REPORT_MODEL) --csv $(REPORT_CSV) --out $(REPORT_OUT) --plots 3 --overwrite
	$(PY) tools/screenshot.py $(REPORT_OUT)/report/report.html docs/report.png

clean-demo:
	rm -rf $(DEMO_DATA) results/demo
