"""Stop the AWS Config recorder, blinding its change-triggered rules; reported, restarted, and the rules see again."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Capability, Scenario

SCENARIO = Scenario(
    id="config-recorder-stopped",
    title="AWS Config recorder stopped",
    feature="AWS Config tampering",
    mitre=["T1562.008"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN | {Capability.CONFIG_RULES},
)


def test_config_recorder_stopped(gameday, stack):
    recorder = stack.config_recorder_name
    # INCOMING_SSH_DISABLED runs only on recorded changes: a stopped recorder hides a new group from it.
    watcher = stack.config_rule_names["INCOMING_SSH_DISABLED"]
    stop = faults.config.stop_recorder(recorder, unseen_group_in=stack.vpc_id)
    with gameday.inject(stop):
        gameday.expect_notification(matching={"detail.eventName": "StopConfigurationRecorder",
                                              "detail.requestParameters.configurationRecorderName": recorder})
        gameday.expect_restored(probes.config.recording(recorder))
        gameday.expect_restored(probes.config.evaluates_tagged_groups(watcher, stop.tag))
