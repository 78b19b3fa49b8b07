"""Real load pins the workload's CPU; it must scale out and page nobody in security (the false-positive guard)."""

from harness import faults, probes
from harness.scenario import WORKLOAD_CHAIN, Scenario

SCENARIO = Scenario(
    id="cpu-spike-legitimate-load",
    title="CPU spike from legitimate load",
    feature="Load or attack",
    mitre=["T1496"],
    severity="medium",
    detect_within=600,  # a minute or two of CPU alarm, then the classifier's report
    remediate_within=None,
    requires=WORKLOAD_CHAIN,
)
QUIET_WINDOW = 60  # AWS seconds after the classifier's report that security must stay unpaged


def test_cpu_spike_legitimate_load(gameday, stack):
    group, alarm = stack.workload_group_name, stack.workload_alarm_name
    with gameday.inject(faults.cpu.legitimate_load(group, alarm, capacity=stack.workload_capacity,
                                                   quarantine_group=stack.quarantine_group_name)):
        gameday.expect_notification(matching={"source": "gameday.classify-cpu", "verdict": "load",
                                              "autoScalingGroupName": group}, inbox=stack.ops_queue_url)
        gameday.expect_observed(probes.scaling.scaled_out(group, alarm, since=gameday.injected_at))
        # Whatever the stack says about the group: the classifier's pages name it.
        gameday.expect_no_notification(matching={"autoScalingGroupName": group}, within=QUIET_WINDOW)
