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
    faults.trace.break_hop("trail.logging", faults.cloudtrail.stop_logging(STACK.trail_name), STACK),
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
