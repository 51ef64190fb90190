"""The dashboard's web layer in process: every page escapes what users wrote, and nothing can be changed.

Names, metrics, errors and logs come from users' files and steps; here they are hostile markup, written
to a real state database with the runner's own functions, and must come back as text, never as markup.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.testclient import TestClient

from stratus.state import Repository, open_database, state_url
from stratus.ui import Dashboard, create_app
from stratus.workspace import Workspace

XSS = '<script>alert("x")</script>'
ATTR = '"><img src=x onerror=alert(1)>'
ESCAPED_XSS = "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    platform = {
        "sites": {
            "eu": {
                "provider": "onprem",
                "region": "dc-eu",
                "jurisdiction": "EU",
                "storage": "file://sites/eu",
                "offerings": [{"name": "n", "vcpus": 2, "memory_gb": 4, "price_per_hour_usd": 0.1}],
            }
        }
    }
    platform_file = tmp_path / "stratus.yaml"
    platform_file.write_text(yaml.safe_dump(platform), encoding="utf-8")
    pipeline = tmp_path / "pipeline.yaml"
    step = f"s{ATTR}"
    pipeline.write_text(yaml.safe_dump({"name": "p", "steps": {step: {"run": "m:f"}}}), encoding="utf-8")
    repo = Repository(open_database(state_url(platform_file)))
    repo.create_run("r1", pipeline=XSS, pipeline_file=str(pipeline), platform_file=str(platform_file),
                    objective="cost", runner="h:1")  # fmt: skip
    log = tmp_path / "step.log"
    log.write_text(f"printed {XSS}\n", encoding="utf-8")
    attempt = repo.start_attempt("r1", step, attempt=1, site="eu", offering=XSS, pricing="on-demand",
                                 cache_key="k", log_path=str(log))  # fmt: skip
    repo.succeed_attempt(attempt, "r1", duration_s=1.0, peak_memory_bytes=0, metrics={"note": XSS},
                         outputs={}, refs={})  # fmt: skip
    repo.add_transfer("a" * 64, artifact=f"{step}.out{XSS}", from_site="eu", to_site="eu", size_bytes=1,
                      reason=XSS, run_id="r1", step=step)  # fmt: skip
    repo.finish_run("r1", "failed", ATTR)
    dashboard = Dashboard.open(Workspace(platform_file))
    with TestClient(create_app(dashboard), base_url="http://127.0.0.1") as test_client:
        yield test_client


PAGES = (
    "/runs",
    "/runs/r1",
    f"/runs/r1/steps/s{ATTR}",
    f"/runs/r1/steps/s{ATTR}/attempts/1/log",
    "/sites",
    "/cost",
    "/serving",
    "/models",
)


@pytest.mark.parametrize("path", PAGES)
def test_every_page_shows_hostile_text_as_text(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert XSS not in response.text
    assert ATTR not in response.text
    assert "<img" not in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"


def test_the_hostile_values_are_shown_escaped_where_they_belong(client: TestClient) -> None:
    assert ESCAPED_XSS in client.get("/runs").text  # the pipeline's name
    run = client.get("/runs/r1").text
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in run  # the step's name and the run's error
    assert f"note={ESCAPED_XSS}" in run  # a metric
    log = client.get(f"/runs/r1/steps/s{ATTR}/attempts/1/log").text
    assert f"printed {ESCAPED_XSS}" in log


def test_the_run_json_carries_the_values_for_the_script_to_set_as_text(client: TestClient) -> None:
    payload = client.get("/api/runs/r1").json()
    assert payload["run"]["pipeline"] == XSS
    assert payload["finished"] is True
    [step] = payload["steps"]
    assert step["name"] == f"s{ATTR}"
    assert step["status"] == "succeeded"


def test_nothing_can_be_changed_and_unknown_runs_are_404s(client: TestClient) -> None:
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/runs/r1").status_code == 405
    missing = client.get(f"/runs/{ATTR}")
    assert missing.status_code == 404
    assert "no run &#39;&#34;&gt;&lt;img" in missing.text
    assert ATTR not in missing.text
    assert client.get("/api/runs/nope").json() == {"error": "no run 'nope' in the state database"}
    assert client.get("/runs/r1/steps/s/attempts/9/log").status_code == 404


def test_a_foreign_host_header_is_refused_on_loopback(client: TestClient) -> None:
    """A page elsewhere cannot read the dashboard through DNS rebinding: its Host is not ours."""
    assert client.get("/runs", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/runs", headers={"host": "localhost:8501"}).status_code == 200
