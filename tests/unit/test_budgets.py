"""Budgets and quotas without a CLI: the platform file's fields, the arithmetic, a seeded ledger, quotas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from stratus import ledger
from stratus.budget import BudgetLine, Demand, QuotaUsage, budget_lines, over_budget_error, usd_text
from stratus.config import load_platform
from stratus.config.budgets import Budgets, BudgetSpec, SiteQuota
from stratus.errors import ConfigError, OverBudgetError, PolicyError
from stratus.ledger import Month, month_spend
from stratus.ledger.record import Charge, Where, build_row, write_rows
from stratus.state import default_url, open_database

SITE = {"provider": "onprem", "region": "dc", "jurisdiction": "EU", "storage": "file://sites/a"}


def write_platform(folder: Path, **extra: object) -> Path:
    path = folder / "stratus.yaml"
    path.write_text(yaml.safe_dump({"sites": {"a": SITE}, **extra}, sort_keys=False), encoding="utf-8")
    return path


# --- the platform file -------------------------------------------------------------------------------------


def test_budgets_and_quotas_load_with_default_alerts(tmp_path: Path) -> None:
    platform = load_platform(
        write_platform(
            tmp_path,
            budgets={"teams": {"risk-ml": {"monthly_usd": 500}}, "projects": {"fraud": {"monthly_usd": 0.1}}},
            quotas={"risk-ml": {"a": {"gpus": 2, "vcpus": 16}}},
        )
    )
    assert platform.budgets is not None
    assert platform.budgets.teams["risk-ml"].monthly_usd == Decimal(500)
    assert platform.budgets.teams["risk-ml"].alerts == [0.5, 0.8, 1.0]
    assert platform.budgets.projects["fraud"].monthly_usd == Decimal("0.1")  # exact, not a float
    assert platform.quotas["risk-ml"]["a"] == SiteQuota(gpus=2, vcpus=16)


@pytest.mark.parametrize(
    ("budgets", "where", "expected"),
    [
        ({"teams": {"t": {"monthly_usd": -5}}}, "budgets.teams.t.monthly_usd", "greater than 0"),
        ({"teams": {"t": {"monthly_usd": ".inf"}}}, "budgets.teams.t.monthly_usd", ""),
        ({"teams": {"t": {"monthly_usd": True}}}, "budgets.teams.t.monthly_usd", "number of US dollars"),
        ({"teams": {"t": {}}}, "budgets.teams.t.monthly_usd", "required"),
        (
            {"projects": {"p": {"monthly_usd": 5, "alerts": [80]}}},
            "budgets.projects.p.alerts[0]",
            "alert 80 is not a fraction of the budget; expected a number in (0, 1], e.g. 0.8 for 80%",
        ),
        (
            {"teams": {"t": {"monthly_usd": 5, "alerts": [0.8, 0.5]}}},
            "budgets.teams.t.alerts",
            "must be increasing fractions of the budget, each once",
        ),
        ({"team": {"t": {"monthly_usd": 5}}}, "budgets.team", "unknown key 'team'"),
    ],
)
def test_a_bad_budget_names_the_file_the_field_and_what_is_expected(
    tmp_path: Path, budgets: dict[str, object], where: str, expected: str
) -> None:
    path = write_platform(tmp_path, budgets=budgets)
    if budgets.get("teams", {}).get("t", {}).get("monthly_usd") == ".inf":  # type: ignore[union-attr]
        path.write_text(path.read_text().replace("'.inf'", ".inf"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_platform(path)
    message = str(caught.value)
    assert str(path) in message
    assert f"{where}:" in message
    assert expected in message


def test_a_quota_for_an_unknown_site_or_with_no_limit_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quotas\.t names nowhere, which is not a site of this platform; "):
        load_platform(write_platform(tmp_path, quotas={"t": {"nowhere": {"gpus": 1}}}))
    with pytest.raises(ConfigError, match=r"quotas\.t\.a: a quota needs vcpus, gpus or both"):
        load_platform(write_platform(tmp_path, quotas={"t": {"a": {}}}))
    with pytest.raises(ConfigError, match=r"quotas\.t\.a\.gpus: Input should be greater than or equal to 0"):
        load_platform(write_platform(tmp_path, quotas={"t": {"a": {"gpus": -1}}}))


# --- the arithmetic ----------------------------------------------------------------------------------------

MARCH = Month(2025, 3)
BUDGETS = Budgets(
    teams={"risk-ml": BudgetSpec(monthly_usd=Decimal(100))},
    projects={"fraud": BudgetSpec(monthly_usd=Decimal(10), alerts=[0.9])},
)
TAGS = {"team": "risk-ml", "project": "fraud"}


def lines_for(spent_team: int, spent_project: int, planned: str) -> dict[str, BudgetLine]:
    found = budget_lines(
        BUDGETS,
        month=MARCH,
        spent={"team": {"risk-ml": spent_team, "other": 10**12}, "project": {"fraud": spent_project}},
        tags=TAGS,
        planned_usd=Decimal(planned),
    )
    return {line.label: line for line in found}


def test_under_budget_nothing_is_reached_and_nothing_is_refused() -> None:
    lines = lines_for(10_000_000, 1_000_000, "1")
    team = lines["team risk-ml"]
    assert (team.spent_micro_usd, team.planned_micro_usd, team.after_micro_usd) == (10**7, 10**6, 11 * 10**6)
    assert team.remaining_micro_usd == 90_000_000
    assert team.reached == ()
    assert over_budget_error(list(lines.values())) is None


def test_an_alert_is_reached_by_the_plan_itself_and_reaching_the_limit_exactly_is_allowed() -> None:
    lines = lines_for(79_000_000, 9_000_000, "1")
    team, project = lines["team risk-ml"], lines["project fraud"]
    assert team.reached == (0.5, 0.8)
    assert team.newly_reached == (0.8,)  # 0.5 was passed before this plan
    assert project.after_micro_usd == project.limit_micro_usd
    assert project.reached == (0.9,)
    assert not project.over
    assert over_budget_error(list(lines.values())) is None


def test_one_micro_dollar_over_is_refused_with_budget_spent_planned_and_limit_named() -> None:
    lines = lines_for(0, 9_000_000, "1.000001")
    error = over_budget_error(list(lines.values()))
    assert isinstance(error, OverBudgetError)
    assert error.exit_code == 7
    assert error.exit_code not in (1, 2, 3, 4, 6)  # distinct from every other refusal
    assert not isinstance(error, PolicyError)
    assert str(error).startswith(
        "over budget: project fraud's monthly budget (2025-03): spent $9.000000 + planned $1.000001 = "
        "$10.000001, over the limit of $10.000000 by $0.000001"
    )
    assert "team risk-ml" not in str(error)  # only the budgets exceeded are named
    assert "--allow-over-budget" in str(error)


def test_every_budget_is_listed_without_tags_and_none_without_budgets() -> None:
    found = budget_lines(BUDGETS, month=MARCH, spent={})
    assert [(line.label, line.spent_micro_usd) for line in found] == [
        ("team risk-ml", 0),
        ("project fraud", 0),
    ]
    assert budget_lines(None, month=MARCH, spent={}, tags=TAGS) == []
    assert budget_lines(BUDGETS, month=MARCH, spent={}, tags={"team": "else"}) == []


def test_dollars_are_shown_for_people() -> None:
    assert [usd_text(m) for m in (0, 1_234_500_000, 53_400, -149_400, 12)] == [
        "$0.000000",
        "$1,234.500000",
        "$0.053400",
        "-$0.149400",
        "$0.000012",
    ]


def test_a_month_is_parsed_strictly_and_spans_exactly_its_days() -> None:
    assert Month.parse("2025-12").end == datetime(2026, 1, 1, tzinfo=UTC)
    assert Month.parse("2024-02").start == datetime(2024, 2, 1, tzinfo=UTC)
    for bad in ("2025-13", "2025-3", "March", "2025-03-01"):
        with pytest.raises(ValueError, match=r"is not a month; expected YYYY-MM, e\.g\. 2025-03"):
            Month.parse(bad)


# --- a seeded ledger ---------------------------------------------------------------------------------------


def seed(folder: Path) -> None:
    db = open_database(default_url(folder))

    def compute(run: str, at: datetime, usd_per_hour: str, tags: dict[str, str]) -> None:
        ledger.record_compute(
            db,
            ledger.Where(run, "a", "onprem", "dc", tags),
            step="train",
            offering="node",
            pricing="on-demand",
            price_per_hour_usd=Decimal(usd_per_hour),
            list_price_per_hour_usd=Decimal(usd_per_hour),
            seconds=3600.0,
            started=at,
            ended=at + timedelta(hours=1),
        )

    compute("r1", datetime(2025, 3, 1, 0, 0, tzinfo=UTC), "4", TAGS)  # first instant of March
    compute("r2", datetime(2025, 3, 31, 23, 30, tzinfo=UTC), "2", {"team": "risk-ml"})  # ends in April
    compute("r0", datetime(2025, 2, 28, 23, 59, tzinfo=UTC), "100", TAGS)  # February
    compute("r3", datetime(2025, 4, 1, 0, 0, tzinfo=UTC), "100", TAGS)  # April
    compute("r4", datetime(2025, 3, 10, tzinfo=UTC), "7", {"team": "other", "project": "fraud"})
    compute("r5", datetime(2025, 3, 10, tzinfo=UTC), "9", {})  # untagged
    forecast = Charge(  # a plan row is a forecast, never spend
        step="train",
        kind="planned",
        pricing="on-demand",
        effective_usd=Decimal(1000),
        list_usd=Decimal(1000),
        quantity=Decimal(1),
        unit="hours",
        service_category="Compute",
        service_name="Virtual Machines",
        sku="node",
        resource_id="a/r1/train",
        resource_name="train",
        description="plan",
        start=datetime(2025, 3, 2, tzinfo=UTC),
        end=datetime(2025, 3, 2, 1, tzinfo=UTC),
    )
    write_rows(db, [build_row(Where("r1", "a", "onprem", "dc", TAGS), forecast)])
    db.engine.dispose()


def test_month_spend_counts_actual_charges_that_start_in_the_month_per_tag(tmp_path: Path) -> None:
    seed(tmp_path)
    db = open_database(default_url(tmp_path))
    assert month_spend(db, MARCH, "team") == {"risk-ml": 6_000_000, "other": 7_000_000}
    assert month_spend(db, MARCH, "project") == {"fraud": 11_000_000}
    assert month_spend(db, Month(2025, 1), "team") == {}


# --- quotas ------------------------------------------------------------------------------------------------


def test_quota_usage_admits_up_to_the_quota_and_gives_back_on_release() -> None:
    usage = QuotaUsage("t", {"a": SiteQuota(vcpus=4, gpus=1)})
    two_cpus, one_gpu = Demand(2, 0), Demand(1, 1)
    assert usage.fits(["a"], two_cpus)
    usage.take("s1", ["a"], two_cpus)
    usage.take("s2", ["a"], two_cpus)
    assert not usage.fits(["a"], Demand(0.5, 0))  # 4 of 4 vCPUs held
    assert usage.fits(["b"], Demand(100, 8))  # no quota at b
    usage.release("s1")
    assert usage.fits(["a"], one_gpu)
    usage.take("g1", ["a"], one_gpu)
    assert not usage.fits(["a"], one_gpu)  # the one GPU is held
    usage.release("g1")
    usage.release("never-taken")
    assert usage.fits(["a"], Demand(2, 1))


def test_a_step_bigger_than_the_quota_alone_says_so_with_the_fix() -> None:
    usage = QuotaUsage("risk-ml", {"a": SiteQuota(gpus=1)})
    problem = usage.too_big("train", ["a"], Demand(4, 2))
    assert problem == (
        "step 'train' needs 2 GPU(s) at site a, more than team risk-ml's quota there (gpus: 1), so it "
        "could never start; raise quotas.risk-ml.a in the platform file or keep the step off a "
        "(constraints.sites)"
    )
    assert usage.too_big("train", ["a"], Demand(64, 1)) is None  # no vCPU quota set
