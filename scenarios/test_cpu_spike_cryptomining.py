"""A miner pins an instance's CPU; security must be paged and the instance isolated, not merely autoscaled."""

from harness import faults, probes
from harness.scenario import WORKLOAD_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="cpu-spike-cryptomining",
    title="CPU spike from cryptomining",
    feature="Load or attack",
    mitre=["T1496"],
    severity="high",
    detect_within=900,  # on AWS the fault first awaits GuardDuty's DNS finding (minutes), then a minute of CPU
    remediate_within=960,
    requires=WORKLOAD_CHAIN | {Capability.GUARDDUTY},
)


def test_cpu_spike_cryptomining(gameday, stack):
    group, alarm = stack.workload_group_name, stack.workload_alarm_name
    mining = faults.cpu.cryptomining(group, alarm, capacity=stack.workload_capacity,
                                     quarantine_group=stack.quarantine_group_name)
    with gameday.inject(mining):
        gameday.expect_notification(
            matching={"source": "gameday.classify-cpu", "verdict": "security", "severity": "HIGH",
                      "finding.type": mining.finding_type},
            meanwhile=probes.scaling.scaled_out(group, alarm, since=gameday.injected_at))
        # Not merely autoscaled: the instance is isolated and the group keeps no capacity for it.
        gameday.expect_restored(probes.scaling.quarantined(group, stack.quarantine_group_name,
                                                           stack.workload_capacity, mining.finding_type))
