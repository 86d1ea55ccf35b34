"""The shipped example scenario is valid and drives a gateway: it is the README's example."""

from pathlib import Path

from ibsim.scenario import Scenario, build_gateway
from spreadpilot.platform.clock import SimClock

EXAMPLE = Path(__file__).resolve().parents[2] / "ibsim" / "scenarios" / "example.yaml"


def test_example_scenario_loads_and_builds_a_gateway() -> None:
    scenario = Scenario.load(EXAMPLE)
    assert scenario.accounts == ["DU000001", "DU000002"]
    assert scenario.pacing.max_per_second == 50
    assert [f.action for f in scenario.faults] == [
        "lose_connectivity",
        "restore_data_lost",
        "restart",
    ]
    assert scenario.clock.start is not None
    gateway = build_gateway(scenario, SimClock(scenario.clock.start))
    assert gateway.engine is not None and gateway.market is not None
    assert gateway.engine.config.rejections == {"DU000002": "account restricted"}
