# Two entry points for a newcomer: `make demo` and `make test`. Both build .venv from scratch when it is
# missing or when pyproject.toml changed, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stratus-installed
# Playwright (the dashboard's browser tests) drives Debian's chromium and must never fetch a browser.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD := 1

.PHONY: demo demo-federated demo-dr demo-k8s-render demo-governance demo-scale test lint typecheck unit bench bench-replication bench-serving bench-training bench-dr bench-policy bench-engines bench-planner clean demo-export demo-promote

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev,demo,serve,cloud,testservers,registry,train,federated,kubernetes,secrets,policy,ray,kfp,argo,ui]'
	$(AZURITE_INSTALL)
	touch $(STAMP)

# Azurite (the Azure Blob server the storage tests and `stratus sandbox` run) lives in ./node_modules.
AZURITE := node_modules/.bin/azurite-blob
AZURITE_INSTALL := npm install --no-save --no-audit --no-fund --loglevel=error azurite@3.37.0
$(AZURITE):
	$(AZURITE_INSTALL)

# Debian's chromium, which the dashboard's browser tests (tests/e2e/test_ui_browser.py) drive through
# Playwright in headless mode; installed from the Debian mirror when missing (sudo only when not root).
CHROMIUM := /usr/bin/chromium
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium

# Runs the example end to end (plan, execute across the local "sites", dual-write, evaluate), re-hashes
# every replica, shows planned against actual cost, then serves the exported model from two EU sites
# behind the gateway and scores a few new transactions through it. A second `make demo` reuses the cache.
DEMO := examples/fraud-detection
DEMO_PORT ?= 18080
UI_PORT ?= 8501
demo: $(STAMP)
	$(BIN)/stratus run $(DEMO)/pipeline.yaml
	$(BIN)/stratus plan $(DEMO)/pipeline.yaml --compare
	$(BIN)/stratus storage verify --platform $(DEMO)/stratus.yaml
	$(BIN)/stratus cost report --platform $(DEMO)/stratus.yaml
	trap '$(BIN)/stratus serve stop --platform $(DEMO)/stratus.yaml' EXIT; \
	$(BIN)/stratus serve export.onnx --platform $(DEMO)/stratus.yaml --sites gcp-eu-west,onprem-eu-gpu \
		--port $(DEMO_PORT) --detach && \
	$(BIN)/python $(DEMO)/score.py --url http://127.0.0.1:$(DEMO_PORT) && \
	$(BIN)/stratus serve status --platform $(DEMO)/stratus.yaml
	$(MAKE) --no-print-directory demo-federated
	$(MAKE) --no-print-directory demo-export
	$(MAKE) --no-print-directory demo-governance
	$(MAKE) --no-print-directory demo-promote
	@echo "Dashboard: run \`$(BIN)/stratus ui --platform $(DEMO)/stratus.yaml --port $(UI_PORT)\` then open http://127.0.0.1:$(UI_PORT)"

# Train here, deploy there: the federated model registered as fraud-promote v1 (production) and v2
# (staging), production served from gcp-eu-west and aws-us-east, then `stratus models promote --from-alias
# staging --to-alias production --deploy gcp-eu-west,aws-us-east` under steady load: the endpoint rolls to
# v2 site by site behind the health gate; prints failures=0 and which version answers.
demo-promote: $(STAMP)
	DEMO_PORT=$(DEMO_PORT) $(BIN)/python $(DEMO)/demo_promote.py

# The federated variant: EU and US transactions stay in their jurisdictions, Flower trains one global model
# (only model updates cross), which is exported, registered as fraud-federated@champion in the model
# registry, then served by alias from both continents.
demo-federated: $(STAMP)
	$(BIN)/stratus run $(DEMO)/federated.yaml
	$(BIN)/stratus models show fraud-federated --alias champion --platform $(DEMO)/stratus.yaml
	trap '$(BIN)/stratus serve stop --platform $(DEMO)/stratus.yaml' EXIT; \
	$(BIN)/stratus serve models:/fraud-federated@champion --platform $(DEMO)/stratus.yaml \
		--sites gcp-eu-west,aws-us-east --port $(DEMO_PORT) --detach && \
	$(BIN)/python $(DEMO)/score.py --url http://127.0.0.1:$(DEMO_PORT) --model fraud-federated

# The fraud pipeline, as planned, for another workflow engine: Kubeflow Pipelines IR compiled by the kfp SDK
# and an Argo Workflow built with hera (docs/export.md). What they cannot express (dual-write, EU residency,
# failover, ...) is listed on stderr. The sites here are local ones, so the tasks take --image.
EXPORT_OUT ?= .stratus/export
EXPORT_IMAGE ?= registry.example.com/stratus/fraud:0.1.0
demo-export: $(STAMP)
	$(BIN)/stratus export kfp $(DEMO)/pipeline.yaml -o $(EXPORT_OUT)/fraud-kfp.yaml --image $(EXPORT_IMAGE)
	$(BIN)/stratus export argo $(DEMO)/pipeline.yaml -o $(EXPORT_OUT)/fraud-argo.yaml --image $(EXPORT_IMAGE)
	@wc -c $(EXPORT_OUT)/fraud-kfp.yaml $(EXPORT_OUT)/fraud-argo.yaml

# The Kubernetes half of `make demo-scale`: the fraud pipeline and its serving rendered for two contexts
# (aws: EKS with KubeRay and JobSet; gcp: GKE with KServe), every object validated against the official
# schemas of each site's Kubernetes version, written to .stratus/k8s/ for `kubectl --context C apply -f`.
K8S_OUT ?= .stratus/k8s
demo-k8s-render: $(STAMP)
	$(BIN)/stratus k8s render $(DEMO)/pipeline.yaml --platform $(DEMO)/kubernetes.yaml -o $(K8S_OUT)/pipeline
	$(BIN)/stratus k8s render --serve fraud.onnx --platform $(DEMO)/kubernetes.yaml -o $(K8S_OUT)/serving

# The governance act (the end of `make demo`): the shipped policy library's own Rego tests, then the fraud
# pipeline planned under it and this organisation's team rules (governed.yaml). `report`, which the plain
# plan puts on Azure, is denied there by team risk-ml's allowed providers and moves to GCP; --explain shows
# that denial, in the policy's words, next to the built-in residency reasons, and the plan against the
# team's and project's budgets this month. Then governance.py (seconds): the sandbox's S3 keys read from an
# OpenBao server on loopback by vault: reference, a plan refused over budget (exit code 7, expected), and
# the --allow-over-budget override in the audit trail; OpenBao is stopped by PID.
demo-governance: $(STAMP)
	$(BIN)/stratus policy test stratus:library
	$(BIN)/stratus plan $(DEMO)/pipeline.yaml --platform $(DEMO)/governed.yaml --explain
	$(BIN)/python $(DEMO)/governance.py

# The DR drill on the sandbox's real S3, GCS and Azure Blob servers (about 3 minutes): the S3 server is
# killed by PID before the fraud pipeline's ingest writes, the run finishes on the other cloud with the S3
# replicas pending, the server comes back, `storage repair` completes them, `storage verify` is clean and a
# plain fsspec client re-hashes every replica; then the same pipeline file again with GCS down instead.
# `python -m bench.dr_drill --record` also writes the figures to bench/RESULTS.md.
demo-dr: $(STAMP) $(AZURITE)
	$(BIN)/python -m bench.dr_drill

# Growing past one machine. Ray: the fraud pipeline with gcp-eu-west's compute on a local two-node Ray
# cluster (started and stopped by PID), printing where each step ran (site, executor, Ray node); then the
# Kubernetes half: the same pipeline and its serving rendered for the contexts aws and gcp, validated.
demo-scale: $(STAMP)
	$(BIN)/python $(DEMO)/demo_scale.py
	$(MAKE) --no-print-directory demo-k8s-render

# lint-imports checks the package layering (the contracts in pyproject.toml, docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest tests/unit

# Files run in collection order (--no-loadscope-reorder): xdist otherwise sorts them by test count, which
# put the slowest files (one to three long tests each: promote, the DR drill, Ray, federated) last, where
# one worker ran them one after another while the other sat idle; in collection order they come first
# and the many short unit files even out the end.
test: lint typecheck $(AZURITE) $(CHROMIUM)
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=30

bench: $(STAMP) bench-replication bench-serving bench-training bench-dr bench-policy bench-engines bench-planner

# The planner against SkyPilot 0.14.1's optimizer, live, in the same run (about 15 minutes). SkyPilot is
# installed into its own venv under .stratus/bench-peers/ (never ours: its pins clash with our extras).
SKY_VENV := .stratus/bench-peers/skypilot-0.14.1
$(SKY_VENV)/bin/python:
	$(PYTHON) -m venv $(SKY_VENV)
	$(SKY_VENV)/bin/python -m pip install --quiet 'skypilot==0.14.1'
bench-planner: $(STAMP) $(SKY_VENV)/bin/python
	STRATUS_BENCH_SKY_PYTHON=$(SKY_VENV)/bin/python $(BIN)/python -m bench.planner

# Stratus's copies against rclone's between two SeaweedFS servers on loopback (about 5 minutes).
bench-replication: $(STAMP)
	$(BIN)/python -m bench.replication

# Our model server against MLServer 1.7.1, our gateway against HAProxy, and failover under load (about
# 4 minutes; installs wrk and haproxy from Debian and MLServer into .stratus/bench-peers/ when missing).
bench-serving: $(STAMP)
	$(BIN)/python -m bench.serving

# 1 rank, sync DDP and low-communication training at 0/20/40 ms RTT between network namespaces, and Flower
# rounds against local training (about 7 minutes on 2 cores; needs root, else the delayed cases are skipped).
bench-training: $(STAMP)
	$(BIN)/python -m bench.training

# Serving through the DNS responder while a model server, a gateway, then a whole site (server, gateway and
# its S3/GCS sandbox store) is SIGKILLed: failures seen by a re-resolving and a naive client, time to eject
# and to recover (about 2 minutes).
bench-dr: $(STAMP)
	$(BIN)/python -m bench.dr

# µs per Rego decision for regorus and regopy on the shipped library, and the fraud plan with and without
# policies (about a minute; regopy is measured only when installed: pip install regopy==1.5.2).
bench-policy: $(STAMP)
	$(BIN)/python -m bench.policy

# The Ray executor against the local executor and a bare Ray Jobs submit/poll loop on one local two-node
# cluster: wall time per step, and a 50-step fan-out through the runner (about 10-20 minutes on 2 cores).
bench-engines: $(STAMP)
	$(BIN)/python -m bench.engines

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
