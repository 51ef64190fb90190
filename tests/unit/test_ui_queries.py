"""The dashboard's query and view layer on a real state database written by the runner's own functions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from stratus import ledger
from stratus.redact import register_secrets
from stratus.serving.gateway.metrics import GatewayMetrics
from stratus.state import Database, Repository, open_database
from stratus.ui.queries.cost import budget_views, spend_over_time
from stratus.ui.queries.graph import Edge, read_graph
from stratus.ui.queries.logs import read_log
from stratus.ui.queries.runs import list_runs, planned_sites, step_views, transfer_views
from stratus.ui.queries.serving import RateTracker, parse_gateway_metrics
from stratus.ui.views.charts import stacked_spend
from stratus.ui.views.colours import SitePalette, status_colour
from stratus.ui.views.dag import build_dag, layers
from stratus.ui.views.format import human_bytes, usd

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
TAGS = {"team": "risk", "project": "fraud"}


def _pipeline(folder: Path) -> Path:
    spec = {
        "name": "flow",
        "datasets": {"raw": {"site": "eu", "size_gb": 1}},
        "steps": {
            "prep": {"run": "m:f", "inputs": ["dataset:raw"], "outputs": {"clean": {}}},
            "train": {"run": "m:f", "inputs": ["prep.clean"], "outputs": {"model": {}}},
            "score": {"run": "m:f", "inputs": ["prep.clean", "train.model"], "outputs": {"out": {}}},
        },
    }
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    repo = Repository(database)
    pipeline = _pipeline(tmp_path)
    repo.create_run("r1", pipeline="flow", pipeline_file=str(pipeline), platform_file="", objective="cost",
                    runner="h:1")  # fmt: skip
    log = tmp_path / "prep.log"
    log.write_text("reading raw\n", encoding="utf-8")
    made = repo.start_attempt("r1", "dataset:raw", attempt=1, site="eu", offering="make", pricing="on-demand",
                              cache_key="k0", log_path=None)  # fmt: skip
    repo.succeed_attempt(made, "r1", duration_s=1.0, peak_memory_bytes=0, metrics={}, outputs={}, refs={})
    first = repo.start_attempt("r1", "prep", attempt=1, site="eu", offering="n1", pricing="spot",
                               cache_key="k1", log_path=str(log))  # fmt: skip
    repo.fail_attempt(first, "preempted", "spot reclaimed", duration_s=3.0)
    second = repo.start_attempt("r1", "prep", attempt=2, site="us", offering="n2", pricing="on-demand",
                                cache_key="k1", log_path=str(log))  # fmt: skip
    repo.succeed_attempt(second, "r1", duration_s=5.0, peak_memory_bytes=1, metrics={"rows": 10},
                         outputs={"clean": "a" * 64}, refs={})  # fmt: skip
    repo.start_attempt("r1", "train", attempt=1, site="us", offering="n2", pricing="on-demand",
                       cache_key="k2", log_path=None)  # fmt: skip
    repo.add_transfer("b" * 64, artifact="dataset:raw", from_site="eu", to_site="us", size_bytes=1_500_000,
                      reason="input of prep", run_id="r1", step="prep")  # fmt: skip
    repo.add_transfer("a" * 64, artifact="prep.clean", from_site="us", to_site="eu", size_bytes=2_000,
                      reason="replica (dual-write)", run_id="r1", step="prep")  # fmt: skip
    for day, (site, provider, usd_) in enumerate((("eu", "gcp", "0.50"), ("us", "aws", "0.25"))):
        ledger.record_compute(
            database, ledger.Where("r1", site, provider, "x", TAGS), step="prep", offering="n",
            pricing="on-demand", price_per_hour_usd=Decimal(usd_), list_price_per_hour_usd=Decimal(usd_),
            seconds=3600.0, started=T0 + timedelta(days=day), ended=T0 + timedelta(days=day, hours=1),
        )  # fmt: skip
    return database


def test_a_running_run_lists_its_sites_costs_and_steps_in_pipeline_order(db: Database) -> None:
    [run] = list_runs(db)
    assert (run.id, run.pipeline, run.status) == ("r1", "flow", "running")
    assert run.sites == ("eu", "us")
    assert run.actual_usd == Decimal("0.750000")
    graph = read_graph(run.pipeline_file)
    steps = {s.name: s for s in step_views(db, "r1", graph.nodes)}
    assert list(steps) == ["dataset:raw", "prep", "train", "score"]
    assert (steps["prep"].status, steps["prep"].site, steps["prep"].attempts) == ("succeeded", "us", 2)
    assert steps["prep"].metrics == {"rows": 10}
    assert steps["train"].status == "running"
    assert steps["score"].status == "pending"  # no attempt while the run goes on


def test_a_finished_run_calls_steps_without_attempts_not_run(db: Database) -> None:
    Repository(db).finish_run("r1", "failed", "train failed")
    steps = {s.name: s for s in step_views(db, "r1", ["prep", "train", "score"])}
    assert steps["score"].status == "not run"
    assert list_runs(db)[0].error == "train failed"


def test_the_graph_is_read_from_the_pipeline_file_and_laid_out_in_columns(db: Database) -> None:
    graph = read_graph(list_runs(db)[0].pipeline_file)
    assert graph.datasets == ("dataset:raw",)
    assert Edge("prep", "score", "prep.clean") in graph.edges
    assert graph.dataset_sites == {"raw": "eu"}
    assert layers(graph.nodes, graph.edges) == {"dataset:raw": 0, "prep": 1, "train": 2, "score": 3}


def test_a_missing_pipeline_file_still_shows_the_manifests_steps(tmp_path: Path) -> None:
    graph = read_graph(str(tmp_path / "gone.yaml"), ["a", "b"])
    assert graph.steps == ("a", "b")
    assert not graph.edges
    assert graph.problem is not None
    assert "gone.yaml" in graph.problem


def test_copies_are_drawn_on_the_edge_they_fed_and_replicas_under_their_producer(db: Database) -> None:
    graph = read_graph(list_runs(db)[0].pipeline_file)
    steps = step_views(db, "r1", graph.nodes)
    transfers = transfer_views(db, "r1")
    assert [t.reader for t in transfers] == ["prep", None]
    dag = build_dag(graph, steps, transfers, SitePalette(["eu", "us"]))
    fed = {(e.source, e.target): e.transfer for e in dag.edges}
    assert fed[("dataset:raw", "prep")] == "eu → us (1.50 MB)"
    [drawn] = [e for e in dag.edges if e.transfer]
    assert drawn.label_lines == ("→ us", "1.50 MB")
    assert fed[("prep", "train")] is None
    nodes = {n.id: n for n in dag.nodes}
    assert nodes["prep"].copies == ("→ eu (2.00 kB)",)
    assert nodes["prep"].fill == SitePalette(["eu", "us"]).fill("us")
    assert nodes["prep"].stroke == status_colour("succeeded")
    assert nodes["train"].stroke == status_colour("running")
    assert nodes["dataset:raw"].x < nodes["prep"].x < nodes["train"].x < nodes["score"].x
    assert dict(dag.legend) == {"eu": "#aec7e8", "us": "#ffbb78"}


def test_planned_sites_come_from_the_plans_ledger_rows(tmp_path: Path) -> None:
    import stratus

    example = Path(__file__).resolve().parents[2] / "examples" / "fraud-detection"
    platform = stratus.load_platform(example / "stratus.yaml")
    plan = stratus.plan(stratus.load_pipeline(example / "pipeline.yaml", platform), platform)
    database = open_database(f"sqlite:///{tmp_path / 's.db'}")
    ledger.record_plan(database, run_id="p", plan=plan, tags=TAGS, at=T0, sites=platform.sites)
    assert planned_sites(database, "p") == {p.step: p.site for p in plan.placements}


def test_spend_is_bucketed_by_hour_over_short_spans_and_stacked_by_group(db: Database) -> None:
    series = spend_over_time(db, "provider")
    assert series.bucket == "hour"  # two days apart: still hourly
    assert series.groups == ("gcp", "aws")  # biggest first
    assert series.total("aws") == Decimal("0.250000")
    chart = stacked_spend(series, SitePalette(list(series.groups)))
    assert [b.label for b in chart.bars] == ["2026-03-01 09:00", "2026-03-02 09:00"]
    tallest = chart.bars[0].segments[0]
    assert tallest.height == 180
    assert "gcp: $0.500000" in tallest.title
    assert chart.bars[1].segments[0].height == 90


def test_spend_over_an_empty_ledger_is_an_empty_chart(tmp_path: Path) -> None:
    database = open_database(f"sqlite:///{tmp_path / 'e.db'}")
    chart = stacked_spend(spend_over_time(database, "team"), SitePalette([]))
    assert chart.empty


class _Budget(BaseModel):  # the shape a platform file's budget is likely to take: a scope and a limit
    team: str
    limit_usd: float


class _PlatformWithBudgets(BaseModel):
    budgets: dict[str, _Budget]


def test_budgets_render_only_when_the_platform_has_them_and_sum_their_scope(db: Database) -> None:
    assert budget_views(object(), db) is None
    [view] = (
        budget_views(_PlatformWithBudgets(budgets={"risk-q1": _Budget(team="risk", limit_usd=2.0)}), db) or []
    )
    assert ("name", "risk-q1") in view.fields
    assert view.limit_usd == Decimal("2.0")
    assert view.spent_usd == Decimal("0.750000")
    assert view.used_fraction == pytest.approx(0.375)


def test_gateway_metrics_give_requests_errors_latency_and_rate_per_site() -> None:
    metrics = GatewayMetrics(["eu", "us"])
    for _ in range(19):
        metrics.request("fraud", "eu", "200")
        metrics.latency("eu", 0.004)
    metrics.request("fraud", "eu", "503")
    metrics.latency("eu", 0.3)
    metrics.request("fraud", "none", "404")
    sites = parse_gateway_metrics(metrics.render().decode())
    assert set(sites) == {"eu", "us"}
    eu = sites["eu"]
    assert (eu.requests, eu.errors) == (20, 1)
    assert eu.error_rate == pytest.approx(0.05)
    assert eu.mean_ms == pytest.approx((19 * 4 + 300) / 20)
    assert eu.p95_ms == 5.0  # 19 of 20 within the 5 ms bucket
    assert sites["us"].requests == 0
    assert sites["us"].p95_ms is None
    tracker = RateTracker()
    started = datetime.now(UTC) - timedelta(seconds=10)
    assert tracker.rate(("d", "eu"), 20, started) == pytest.approx(2.0, rel=0.05)
    assert tracker.rate(("d", "eu"), 10, None) is None  # a restarted gateway counts from 0: no rate


def test_a_log_is_read_from_its_end_with_secrets_masked(tmp_path: Path) -> None:
    log = tmp_path / "step.log"
    register_secrets(["hunter2-token-value"])
    log.write_text(
        "".join(f"line {i}\n" for i in range(5000)) + "token=hunter2-token-value\n", encoding="utf-8"
    )
    got = read_log(str(log), limit=1000)
    assert got.truncated
    assert got.size_bytes == log.stat().st_size
    assert got.text.splitlines()[0].startswith("line ")  # starts on a whole line
    assert "hunter2-token-value" not in got.text
    assert got.text.endswith("\n")
    assert read_log(None).problem == "this attempt recorded no log"
    assert "cannot be read" in (read_log(str(tmp_path / "nope")).problem or "")


def test_sizes_are_decimal_and_money_has_six_places() -> None:
    assert human_bytes(1_500_000_000) == "1.50 GB"
    assert human_bytes(999) == "999 B"
    assert usd(Decimal("0.1")) == "$0.100000"
    assert usd(Decimal("-1.14397")) == "-$1.143970"
    assert json.dumps(usd(None)) == '"-"'
