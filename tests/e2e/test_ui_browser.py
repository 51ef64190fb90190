"""`stratus ui` in a real browser: Debian's chromium, headless, driven by Playwright.

The world is the demo's, made cheap: the fraud example on 20,000 transactions, its export registered as
fraud@champion, served from two EU sites with a few requests scored through the gateway. Then `stratus ui`
runs in a subprocess as a user starts it, and every page is opened: its content is checked, the browser's
console must stay free of errors, and a screenshot of each lands in test-artifacts/ui/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from stratus.processes import free_ports
from stratus.state import Repository, open_database, state_url
from tests.run_world import REPO, cli_env, one_json, pipeline, stratus_cli, write_world

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "ui"
SERVED_SITES = ("gcp-eu-west", "onprem-eu-gpu")
EXAMPLE_FILES = (
    "stratus.yaml",
    "pipeline.yaml",
    "fraud_steps.py",
    "fraud_data.py",
    "fraud_features.py",
    "score.py",
)


@dataclass(frozen=True)
class Demo:
    """The example's folder, its run, and the dashboard's address."""

    folder: Path
    run_id: str
    url: str


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("ui-demo")
    for name in EXAMPLE_FILES:
        shutil.copy(REPO / "examples" / "fraud-detection" / name, folder / name)
    spec = yaml.safe_load((folder / "pipeline.yaml").read_text())
    spec["datasets"]["raw_transactions"]["params"]["rows"] = 20_000
    spec["steps"]["export"]["register"] = {"model": "fraud", "aliases": ["champion"]}
    (folder / "pipeline.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    ran = stratus_cli("run", "pipeline.yaml", "--json", cwd=folder, timeout=400)
    assert ran.returncode == 0, ran.stderr[-3000:]
    run_id = one_json(ran.stdout)["run_id"]
    gateway, port = free_ports(2)
    try:
        served = stratus_cli(
            "serve", "export.onnx", "--sites", ",".join(SERVED_SITES), "--port", gateway,
            "--detach", "--json", cwd=folder, timeout=180,
        )  # fmt: skip
        assert served.returncode == 0, served.stderr[-3000:]
        model = one_json(served.stdout)["model"]
        scored = subprocess.run(
            [sys.executable, "score.py", "--url", f"http://127.0.0.1:{gateway}", "--model", model],
            cwd=folder, env=cli_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert scored.returncode == 0, scored.stdout + scored.stderr
        with _dashboard(folder, port) as url:
            yield Demo(folder, run_id, url)
    finally:
        stratus_cli("serve", "stop", cwd=folder, timeout=60)


class _dashboard:  # noqa: N801 (a context manager read as a phrase: `with _dashboard(...) as url`)
    """`stratus ui` in a subprocess until the block ends; stopped by its PID and checked gone."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder, self.port = folder, port
        self.log = folder / "ui.log"

    def __enter__(self) -> str:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "stratus", "ui", "--port", str(self.port)],
                cwd=self.folder, env=cli_env(), stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log.read_text()
            try:
                with urllib.request.urlopen(f"{url}/runs", timeout=2) as response:
                    if response.status == 200:
                        return url
            except OSError:
                time.sleep(0.3)
        raise AssertionError(f"stratus ui did not answer within 90 s:\n{self.log.read_text()}")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        assert self.process.poll() is not None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.is_file():
        pytest.skip("Debian's chromium is not installed: `make test` installs it (apt-get install chromium)")
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose console errors (and uncaught exceptions) are collected in ``page.errors``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    tab.errors = errors
    yield tab
    context.close()


def _open(page: Any, url: str, shot: str) -> str:
    """Load ``url``, save a screenshot, and return the visible text; the console must be clean."""
    response = page.goto(url, wait_until="networkidle")
    assert response is not None, url
    assert response.status == 200, url
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{shot}.png"), full_page=True)
    assert page.errors == [], f"console errors on {url}: {page.errors}"
    return str(page.inner_text("main"))


def test_the_runs_page_lists_the_demo_run(demo: Demo, page: Any) -> None:
    text = _open(page, f"{demo.url}/runs", "runs")
    row = page.locator(f'#runs tr[data-run="{demo.run_id}"]')
    assert row.count() == 1
    cells = row.inner_text()
    assert "fraud-detection" in cells
    assert "succeeded" in cells
    assert "gcp-eu-west" in cells
    assert "No runs yet" not in text


def test_the_run_page_draws_every_step_coloured_by_site_with_the_copies(demo: Demo, page: Any) -> None:
    _open(page, f"{demo.url}/runs/{demo.run_id}", "run")
    nodes = page.locator("#dag g.node")
    names = {nodes.nth(i).get_attribute("data-node") for i in range(nodes.count())}
    assert names == {
        "dataset:raw_transactions",
        "ingest",
        "preprocess",
        "train",
        "evaluate",
        "export",
        "report",
    }
    fills = {page.locator(f'#dag g.node[data-node="{n}"] rect').get_attribute("fill") for n in names}
    assert len(fills) >= 2, "steps at different sites must be told apart"
    strokes = {
        page.locator(f'#dag g.step[data-node="{n}"] rect').get_attribute("stroke")
        for n in names - {"dataset:raw_transactions"}
    }
    assert strokes == {"#2ca02c"}, "every step succeeded: green outlines"
    assert page.locator("#dag g.edge.moved").count() >= 1, "copies between sites are drawn on the graph"
    assert "→" in (page.locator("#dag text.transfer").first.text_content() or "")
    assert page.locator("#transfers tbody tr").count() >= 1
    legend = page.inner_text("#legend")
    assert "gcp-eu-west" in legend


def test_run_then_step_then_logs_by_clicking(demo: Demo, page: Any) -> None:
    _open(page, f"{demo.url}/runs", "click-1-runs")
    page.click(f'#runs a[href="/runs/{demo.run_id}"]')
    page.wait_for_url(f"**/runs/{demo.run_id}")
    page.click('#dag g.node[data-node="train"] a')
    page.wait_for_url(f"**/runs/{demo.run_id}/steps/train")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "click-2-step.png"), full_page=True)
    assert page.inner_text("#step-name") == "train"
    assert page.locator("#attempts tbody tr[data-attempt]").count() >= 1
    page.locator("#attempts a.log-link").last.click()
    page.wait_for_url("**/log")
    page.screenshot(path=str(ARTIFACTS / "click-3-log.png"), full_page=True)
    assert "trained on" in page.inner_text("#log")  # what fraud_steps.train wrote with ctx.log
    page.click("#back-to-step")
    page.wait_for_url(f"**/runs/{demo.run_id}/steps/train")
    assert page.errors == [], f"console errors while clicking through: {page.errors}"


def test_the_sites_page_shows_every_site_healthy_with_its_endpoints(demo: Demo, page: Any) -> None:
    _open(page, f"{demo.url}/sites", "sites")
    platform = yaml.safe_load((demo.folder / "stratus.yaml").read_text())
    for site in platform["sites"]:
        row = page.locator(f'#sites tr[data-site="{site}"]')
        assert row.count() == 1, site
        assert row.locator("td.health").get_attribute("data-health") == "up"
    assert "EU" in page.locator('#sites tr[data-site="gcp-eu-west"]').inner_text()
    for site in SERVED_SITES:
        assert "127.0.0.1:" in page.locator(f'#sites tr[data-site="{site}"]').inner_text()


def test_the_cost_page_charts_spend_and_planned_against_actual(demo: Demo, page: Any) -> None:
    text = _open(page, f"{demo.url}/cost", "cost")
    for by in ("team", "project", "provider", "site"):
        assert page.locator(f"#chart-{by} rect").count() >= 1, by
    assert "risk-ml" in page.inner_text("#spend-team")
    assert "fraud" in page.inner_text("#spend-project")
    assert page.locator("#chart-runs rect").count() == 2  # one run: planned and actual
    assert demo.run_id in page.inner_text("#run-costs")
    assert "Budgets" not in text  # this platform file has none


def test_the_serving_page_shows_the_deployment_and_its_traffic_per_site(demo: Demo, page: Any) -> None:
    _open(page, f"{demo.url}/serving", "serving")
    section = page.locator("section.deployment")
    assert section.count() == 1
    assert "running" in section.locator("h2").inner_text()
    requests = 0
    rates: list[float] = []
    for site in SERVED_SITES:
        cells = page.locator(f'table.traffic tr[data-site="{site}"] td')
        requests += int(cells.nth(1).inner_text())
        rates.append(float(cells.nth(2).inner_text()))
    assert requests >= 6, "score.py sent six requests through the gateway"
    assert max(rates) > 0, "a first look gives the average rate since the deployment started"


def test_the_models_page_shows_the_registered_version_with_its_lineage(demo: Demo, page: Any) -> None:
    _open(page, f"{demo.url}/models", "models")
    model = page.locator('section.model[data-model="fraud"]')
    assert model.count() == 1
    version = model.locator('tr[data-version="1"]')
    text = version.inner_text()
    assert "champion" in text
    assert demo.run_id in text
    assert "export" in text
    assert version.locator(f'a[href="/runs/{demo.run_id}"]').count() == 1


def test_the_run_json_is_what_the_page_polls(demo: Demo) -> None:
    with urllib.request.urlopen(f"{demo.url}/api/runs/{demo.run_id}", timeout=10) as response:
        payload = json.load(response)
    assert payload["finished"] is True
    assert {s["name"] for s in payload["steps"]} >= {"ingest", "train", "export"}


def test_the_run_page_follows_a_run_while_it_goes_on(browser: Any, tmp_path: Path) -> None:
    """Opened while the run goes on, the page polls and ends showing the finished run, unprompted."""
    world = write_world(tmp_path / "live", pipeline_spec=pipeline(sleep=3.0))
    (port,) = free_ports(1)
    with _dashboard(world.parent, port) as url:
        log = (tmp_path / "run.log").open("wb")
        runner = subprocess.Popen(
            [sys.executable, "-m", "stratus", "run", "pipeline.yaml"],
            cwd=world.parent, env=cli_env(), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            repo = Repository(open_database(state_url(world.parent / "stratus.yaml")))
            deadline = time.monotonic() + 120
            while not repo.runs() and time.monotonic() < deadline and runner.poll() is None:
                time.sleep(0.2)
            [run] = repo.runs()
            context = browser.new_context()
            page = context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{url}/runs/{run.id}")
            assert page.get_attribute("#run", "data-status") == "running"
            assert page.is_visible("#live")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "live-running.png"), full_page=True)
            # Only the page's own polling can bring this about: nothing here reloads it.
            page.locator('#run:not([data-status="running"])').wait_for(timeout=180_000)
            page.wait_for_load_state("load")
            page.screenshot(path=str(ARTIFACTS / "live-finished.png"), full_page=True)
            assert page.get_attribute("#run", "data-status") == "succeeded"
            stroke = page.get_attribute('#dag g.node[data-node="combine"] rect', "stroke")
            assert stroke == "#2ca02c", "the last step's outline turned green"
            assert errors == [], f"console errors while following the run: {errors}"
            context.close()
        finally:
            runner.wait(timeout=180)
            log.close()
        assert runner.returncode == 0, (tmp_path / "run.log").read_text()[-3000:]
