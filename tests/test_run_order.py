"""The catalog's run order: scenarios that mind an aftermath run while it is quiet, the rest fills the gaps."""

import pytest

from harness.scenario import FAILED_DELIVERIES, QUIET_AFTER, TRAIL_CHANGES, Scenario, run_order


def scenario(id: str, *, aftermath=(), minds=()) -> Scenario:
    return Scenario(id=id, title=id, mitre=["T1562"], severity="low", detect_within=60, remediate_within=None,
                    aftermath=aftermath, minds=minds)


def ids(scenarios) -> list[str]:
    return [s.id for s in scenarios]


def test_without_aftermaths_the_catalog_order_stands():
    catalog = [scenario(f"s{i}") for i in range(5)]
    assert run_order(catalog) == catalog


def test_those_that_mind_run_before_anything_leaves_what_they_mind():
    catalog = [scenario("storm", aftermath=[FAILED_DELIVERIES]), scenario("calm"),
               scenario("trace", minds=[FAILED_DELIVERIES])]
    assert ids(run_order(catalog)) == ["trace", "storm", "calm"]  # then nobody minds the storm: catalog order


def test_a_scenario_that_minds_what_it_leaves_is_spaced_from_the_next_by_the_calm_ones():
    calm = [scenario(f"calm{i}") for i in range(2 * QUIET_AFTER + 3)]
    chained = [scenario(f"chained{i}", aftermath=[FAILED_DELIVERIES], minds=[FAILED_DELIVERIES]) for i in range(3)]
    order = ids(run_order([*chained, *calm]))
    positions = [order.index(s.id) for s in chained]
    assert positions == [0, QUIET_AFTER + 1, 2 * QUIET_AFTER + 2]
    assert sorted(order) == sorted(ids([*chained, *calm]))  # only the order changes


def test_what_leaves_an_aftermath_nobody_left_minds_runs_in_catalog_order():
    catalog = [scenario("trail", aftermath=[TRAIL_CHANGES]), scenario("calm"),
               scenario("cis-4-5", minds=[TRAIL_CHANGES], aftermath=[TRAIL_CHANGES])]
    assert ids(run_order(catalog)) == ["cis-4-5", "trail", "calm"]


def test_when_every_remaining_one_must_wait_the_order_still_completes():
    chained = [scenario(f"c{i}", aftermath=[FAILED_DELIVERIES], minds=[FAILED_DELIVERIES]) for i in range(3)]
    assert ids(run_order(chained)) == ["c0", "c1", "c2"]  # each waits in its precondition instead


def test_an_aftermath_must_be_a_known_one():
    with pytest.raises(ValueError, match="AFTERMATHS"):
        scenario("x", minds=["the moon is full"])


def test_what_would_leave_again_what_another_waits_out_runs_after_it():
    chained = [scenario(f"chained{i}", aftermath=[FAILED_DELIVERIES], minds=[FAILED_DELIVERIES]) for i in range(2)]
    storm = scenario("storm", aftermath=[FAILED_DELIVERIES])
    calm = [scenario(f"calm{i}") for i in range(3)]
    # Too few calm ones to cover the wait: chained1 waits in its precondition, and the storm does not restart it.
    assert ids(run_order([storm, *chained, *calm])) == ["chained0", "calm0", "calm1", "calm2", "chained1", "storm"]
