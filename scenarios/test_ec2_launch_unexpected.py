"""Launch an instance of a type the account does not allow; reported and terminated."""

from harness import faults, probes
from harness.scenario import INFRA_CHAIN, Scenario

SCENARIO = Scenario(
    id="ec2-launch-unexpected",
    title="Unexpected EC2 instance launched",
    feature="Compute launches",
    mitre=["T1578", "T1496"],
    severity="high",
    detect_within=60,
    remediate_within=120,
    requires=INFRA_CHAIN,
)


def test_ec2_launch_unexpected(gameday, stack):
    # A small compute type: not on the allowed list, yet cheap for the minute it lives on a sandbox account.
    unexpected = next(t for t in ("c5.large", "c5.xlarge") if t not in stack.allowed_instance_types)
    launch = faults.network.launch_instance(stack.subnet_id, unexpected, allowed_types=stack.allowed_instance_types,
                                            allowed_regions=stack.allowed_regions)
    with gameday.inject(launch):
        gameday.expect_notification(matching={"detail.eventName": "RunInstances",
                                              "detail.requestParameters.instanceType": unexpected})
        gameday.expect_restored(probes.network.only_allowed_instances(stack.allowed_instance_types,
                                                                      stack.allowed_regions))
