"""Faults that pin the workload's CPU: SSM Run Command's AWSFIS-Run-CPU-Stress, as load or as an attack would."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.faults import findings
from harness.probes import Probe, all_of
from harness.probes import cloudwatch as alarms
from harness.probes import scaling as probes

__all__ = ["legitimate_load", "cryptomining"]

STRESS_DOCUMENT = "AWSFIS-Run-CPU-Stress"  # AWS-owned: stress-ng on the instance for DurationSeconds
DURATION_S = 900  # long enough for any SLA; revert cancels it sooner
_STRESS_IAM = ("ssm:SendCommand", "ssm:ListCommands", "ssm:CancelCommand", "autoscaling:DescribeAutoScalingGroups",
               "autoscaling:SetDesiredCapacity", "ec2:DescribeInstances", "ec2:ModifyInstanceAttribute",
               "ec2:TerminateInstances", "ec2:DescribeSecurityGroups")


@dataclass(frozen=True)
class CpuSpike(Fault):
    """AWSFIS-Run-CPU-Stress on every instance of the group: CPU pinned as real load would pin it."""

    group: str
    alarm: str
    capacity: int
    quarantine_group: str
    load_percent: int = 100
    duration_s: int = DURATION_S
    name = "cpu.spike"
    iam_actions = _STRESS_IAM
    idempotent = True
    # AWS seconds for the alarm to leave ALARM and the group to finish a cooldown after an earlier spike.
    settle_within: ClassVar[float] = 600.0

    def describe(self) -> str:
        return f"{STRESS_DOCUMENT} at {self.load_percent}% on the instances of {self.group}"

    def steady(self) -> Probe:
        return probes.at_rest(self.group, self.capacity, self.quarantine_group)

    def precondition(self) -> Probe:
        return all_of(f"group {self.group} at rest and {self.alarm} quiet", self.steady(),
                      probes.not_stressed(self.group), alarms.alarm_armed(self.alarm), alarms.not_in_alarm(self.alarm))

    def targets(self, serving: list[str]) -> list[str]:
        """The instances the stress runs on."""
        return serving

    def snapshot(self, aws: Any) -> dict | None:
        serving = probes.group_instances(aws, self.group)
        if not serving:
            raise LookupError(f"group {self.group} has no instance in service: nothing to stress")
        groups = aws.client("ec2").describe_instances(InstanceIds=serving)["Reservations"]
        return {"marker": f"gameday-{uuid.uuid4().hex[:12]}", "instances": serving,
                "targets": self.targets(serving),
                "security_groups": {i["InstanceId"]: [g["GroupId"] for g in i.get("SecurityGroups", [])]
                                    for r in groups for i in r["Instances"]}}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        stress(aws, snapshot["targets"], marker=snapshot["marker"], percent=self.load_percent,
               duration_s=self.duration_s)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        """Stop the stress, drop what the drill left (isolated instances), give the group back its capacity."""
        assert snapshot is not None
        cancel(aws, snapshot["instances"], snapshot["marker"])
        restore_group(aws, self.group, self.capacity, self.quarantine_group, snapshot)


@dataclass(frozen=True)
class CryptoMining(CpuSpike):
    """A miner on one instance: GuardDuty reports it, then AWSFIS-Run-CPU-Stress pins that instance's CPU."""

    finding_type: str = "CryptoCurrency:EC2/BitcoinTool.B!DNS"
    name = "cpu.cryptomining"
    iam_actions = _STRESS_IAM + findings.GUARDDUTY_IAM

    def describe(self) -> str:
        return f"{self.finding_type} and {STRESS_DOCUMENT} on one instance of {self.group}"

    def targets(self, serving: list[str]) -> list[str]:
        return serving[:1]

    def snapshot(self, aws: Any) -> dict | None:
        state = super().snapshot(aws)
        assert state is not None
        return {**state, **findings.guardduty_snapshot(aws, self.finding_type)}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        # The finding first: the classifier looks for signals when the CPU alarm fires.
        findings.raise_guardduty(aws, self.finding_type, snapshot["targets"][0], snapshot)
        super().apply(aws, snapshot)

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        super().revert(aws, snapshot)
        findings.archive_guardduty(aws, self.finding_type, snapshot)


def stress(aws: Any, instances: list[str], *, marker: str, percent: int, duration_s: int) -> str:
    """SendCommand of the stress document; its Comment marks it as this fault's."""
    return aws.client("ssm").send_command(
        DocumentName=STRESS_DOCUMENT, InstanceIds=instances, Comment=marker,
        Parameters={"DurationSeconds": [str(duration_s)], "LoadPercent": [str(percent)], "CPU": ["0"],
                    "InstallDependencies": ["True"]})["Command"]["CommandId"]


def cancel(aws: Any, instances: list[str], marker: str) -> None:
    """CancelCommand on every command of this fault's still running (found by their Comment)."""
    ssm = aws.client("ssm")
    seen = set()
    for instance in instances:
        for command in ssm.list_commands(InstanceId=instance).get("Commands", []):
            if command.get("Comment") != marker or command["CommandId"] in seen:
                continue
            seen.add(command["CommandId"])
            if command.get("Status") in ("Pending", "InProgress", "Delayed"):
                ssm.cancel_command(CommandId=command["CommandId"])


def restore_group(aws: Any, group: str, capacity: int, quarantine_group: str, snapshot: dict) -> None:
    """Terminate the instances the stack isolated out of the group; undo a half isolation; desired back to capacity."""
    ec2, asg = aws.client("ec2"), aws.client("autoscaling")
    found = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    members = {i["InstanceId"] for i in (found[0]["Instances"] if found else [])}
    described = ec2.describe_instances(InstanceIds=snapshot["instances"])["Reservations"]
    leftovers = []
    for instance in (i for r in described for i in r["Instances"]):
        if instance["State"]["Name"] in ("shutting-down", "terminated"):
            continue
        names = [g["GroupName"] for g in instance.get("SecurityGroups", [])]
        if instance["InstanceId"] not in members and quarantine_group in names:
            leftovers.append(instance["InstanceId"])  # the stack took it out: the drill's evidence, not a workload
        elif quarantine_group in names:
            ec2.modify_instance_attribute(InstanceId=instance["InstanceId"],
                                          Groups=snapshot["security_groups"][instance["InstanceId"]])
    if leftovers:
        ec2.terminate_instances(InstanceIds=leftovers)
    if found and found[0]["DesiredCapacity"] != capacity:
        try:
            asg.set_desired_capacity(AutoScalingGroupName=group, DesiredCapacity=capacity, HonorCooldown=False)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ScalingActivityInProgress":
                raise


def legitimate_load(group: str, alarm: str, *, capacity: int, quarantine_group: str,
                    load_percent: int = 100) -> CpuSpike:
    return CpuSpike(group, alarm, capacity, quarantine_group, load_percent)


def cryptomining(group: str, alarm: str, *, capacity: int, quarantine_group: str,
                 finding_type: str = "CryptoCurrency:EC2/BitcoinTool.B!DNS") -> CryptoMining:
    return CryptoMining(group, alarm, capacity, quarantine_group, finding_type=finding_type)
