"""`gameday cleanup` rebuilds a killed run's faults from the journal: every fault survives a JSON round trip."""

from __future__ import annotations

import json

import pytest

from harness import faults
from harness.faults import REGISTRY, rebuild
from harness.stack.desired import desired_state

STACK = desired_state(account_id="123456789012", region="us-east-1").outputs()
ALARM = STACK.alarm_names["4.5"]
ROLE = STACK.break_glass_role_arn

HELD_BY_CONFIG = faults.config.evaluated(faults.cloudtrail.stop_logging(STACK.trail_name),
                                         ["gameday-cloud-trail-enabled"], hold=[STACK.function_name, None])

EXAMPLES = [
    faults.sns.remove_key_grant("alias/gameday-security-topic", ALARM),
    faults.sns.unsubscribe(STACK.topic_arn, "sqs", STACK.sink_queue_arn),
    faults.sns.delete_topic(STACK.topic_arn, exempt=ROLE, key="alias/k", sink_queue_arn=STACK.sink_queue_arn,
                            as_role=ROLE),
    faults.sns.weaken_topic_policy(STACK.topic_arn, exempt=ROLE, as_role=ROLE),
    faults.sns.mute_subscription(STACK.topic_arn, "sqs", STACK.sink_queue_arn),
    faults.sns.alert_storm(STACK.topic_arn, "oncall@example.com"),
    faults.sns.delete_subscriber_queue(STACK.topic_arn, "gameday-tickets"),
    faults.cloudtrail.detach_log_group(STACK.trail_name),
    faults.cloudwatch.blind_metric_filter(STACK.log_group_name, STACK.metric_filter_names["4.5"]),
    faults.cloudwatch.redirect_alarm_actions(ALARM, to=f"{STACK.topic_arn}-gone"),
    faults.cloudwatch.fail_alarm_action(ALARM, key="alias/k"),
    faults.events.disable_rule(STACK.sns_rule_name),
    faults.applogs.disable_alb_access_logs(
        "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/gameday-edge/50dc6c495c0c9188"),
    faults.applogs.disable_distribution_logging("EDFDVBD6EXAMPLE"),
    faults.applogs.delete_log_group(STACK.app_log_groups[0]),
    faults.applogs.cut_log_retention(STACK.app_log_groups[-1], days=1),
    faults.config.stop_recorder("gameday-recorder"),
    faults.config.delete_rule("gameday-incoming-ssh-disabled"),
    faults.config.evaluated(faults.iam.stale_access_key(days=120), ["gameday-access-keys-rotated"],
                            compliant_before=False),
    faults.config.evaluated(faults.iam.root_mfa_off(), ["gameday-root-account-mfa-enabled"]),
    faults.flowlogs.delete_flow_logs("subnet-0123456789abcdef0"),
    faults.guardduty.disable_detector(),
    faults.guardduty.delete_detector(),
    faults.guardduty.sample_finding("CryptoCurrency:EC2/BitcoinTool.B!DNS"),
    faults.network.open_ingress("sg-0123456789abcdef0", 3389, "::/0"),
    faults.network.route_to_internet("rtb-0123456789abcdef0", "vpc-0123456789abcdef0"),
    faults.network.launch_instance("subnet-0123456789abcdef0", "c5.large", allowed_types=["t3.micro"],
                                   allowed_regions=["us-east-1"]),
    HELD_BY_CONFIG,
    faults.cpu.legitimate_load(STACK.workload_group_name, STACK.workload_alarm_name, capacity=STACK.workload_capacity,
                               quarantine_group=STACK.quarantine_group_name, load_percent=90),
    faults.cpu.cryptomining(STACK.workload_group_name, STACK.workload_alarm_name, capacity=STACK.workload_capacity,
                            quarantine_group=STACK.quarantine_group_name),
    faults.findings.vulnerable_library(STACK.workload_group_name, capacity=STACK.workload_capacity,
                                       quarantine_group=STACK.quarantine_group_name),
    faults.findings.missing_security_updates(STACK.workload_group_name, capacity=STACK.workload_capacity,
                                             quarantine_group=STACK.quarantine_group_name, missing=3),
    faults.trace.break_hop("trail.logging", faults.cloudtrail.stop_logging(STACK.trail_name), STACK,
                           also=("trail.delivery",)),
]


@pytest.mark.parametrize("fault", EXAMPLES, ids=[f.name for f in EXAMPLES])
def test_a_journaled_fault_is_rebuilt_as_it_was(fault):
    assert REGISTRY[fault.name] is type(fault)
    again = rebuild(fault.name, json.loads(json.dumps(fault.params)))
    assert type(again) is type(fault)
    assert again.describe() == fault.describe()
    assert json.loads(json.dumps(again.params)) == json.loads(json.dumps(fault.params))


def test_a_held_hop_rebuilds_its_inner_fault_and_the_functions_it_holds():
    held = rebuild("trace.break_hop", json.loads(json.dumps(EXAMPLES[-1].params)))
    assert held.fault == faults.cloudtrail.stop_logging(STACK.trail_name)
    assert list(held.functions) == [STACK.function_name, STACK.alarms_function_name, STACK.sns_function_name]
    assert list(held.also) == ["trail.delivery"]


def test_a_config_evaluated_fault_rebuilds_its_inner_fault_the_rules_and_what_it_holds():
    again = rebuild("config.evaluated", json.loads(json.dumps(HELD_BY_CONFIG.params)))
    assert again.fault == faults.cloudtrail.stop_logging(STACK.trail_name)
    assert list(again.rules) == ["gameday-cloud-trail-enabled"]
    assert list(again.hold) == [STACK.function_name]  # a function the stack lacks is not held


def test_what_a_fault_creates_keeps_its_token_so_another_process_can_remove_it():
    launch = EXAMPLES[[f.name for f in EXAMPLES].index("network.launch_instance")]
    assert rebuild(launch.name, json.loads(json.dumps(launch.params))).token == launch.token
    key = faults.iam.stale_access_key()
    assert rebuild(key.name, json.loads(json.dumps(key.params))).user == key.user
