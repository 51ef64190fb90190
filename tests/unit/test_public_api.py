"""The SDK's face is a promise: changing it must be a deliberate, visible edit."""

import stratus


def test_public_names_are_exactly_these() -> None:
    assert sorted(stratus.__all__) == [
        "Accelerator",
        "Catalog",
        "CatalogError",
        "ConfigError",
        "InfeasibleError",
        "Pipeline",
        "Plan",
        "PlanError",
        "Platform",
        "StepContext",
        "StratusError",
        "load_pipeline",
        "load_platform",
        "plan",
        "run",
    ]
    for name in stratus.__all__:
        assert getattr(stratus, name) is not None


def test_sdk_plans_the_bundled_example() -> None:
    platform = stratus.load_platform("examples/fraud-detection/stratus.yaml")
    pipeline = stratus.load_pipeline("examples/fraud-detection/pipeline.yaml", platform)
    result = stratus.plan(pipeline, platform)
    assert result.total_cost_usd == result.compute_cost_usd + result.egress_cost_usd
    assert {p.step for p in result.placements} == set(pipeline.steps)


def test_step_context_is_importable_from_the_package_top() -> None:
    """The docs write step functions as ``def train(ctx: stratus.StepContext)``."""
    from stratus import StepContext
    from stratus.step import StepContext as Defined

    assert StepContext is Defined
    assert "StepContext" in dir(stratus)
