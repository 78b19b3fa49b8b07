"""Disable a customer-managed KMS key; the CIS 4.7 alarm must fire and page security."""

from harness import faults
from harness.scenario import CIS_CHAIN, Scenario

SCENARIO = Scenario(
    id="cis-4-7-kms-key-disabled-or-deleted",
    title="CIS 4.7 Disabling or scheduled deletion of customer-managed KMS keys",
    feature="CIS monitoring controls",
    mitre=["T1485"],
    severity="high",
    detect_within=900,
    remediate_within=None,
    requires=CIS_CHAIN,
)


def test_cis_4_7_kms_key_disabled_or_deleted(gameday, stack):
    alarm = stack.alarm_names["4.7"]
    with gameday.inject(faults.cis.kms_key_disabled(alarm)):
        gameday.expect_alarm(alarm)
