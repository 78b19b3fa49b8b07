"""Faults on VPC flow logs: delete the flow logs of a VPC, a subnet or a network interface."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from harness.faults import Fault
from harness.probes import Probe
from harness.probes import flowlogs as probes

__all__ = ["delete_flow_logs"]

# CreateFlowLogs' ResourceType for each kind of resource id.
RESOURCE_TYPES = {"vpc-": "VPC", "subnet-": "Subnet", "eni-": "NetworkInterface"}
ALREADY_EXISTS = "FlowLogAlreadyExists"


@dataclass(frozen=True)
class DeleteFlowLogs(Fault):
    """DeleteFlowLogs on every flow log of the resource: its traffic goes unrecorded."""

    resource_id: str
    name = "flowlogs.delete_flow_logs"
    iam_actions = ("ec2:DescribeFlowLogs", "ec2:DeleteFlowLogs", "ec2:CreateFlowLogs", "ec2:CreateTags",
                   "logs:CreateLogDelivery", "iam:PassRole")

    def describe(self) -> str:
        return f"DeleteFlowLogs on the flow logs of {self.resource_id}"

    def steady(self) -> Probe:
        return probes.enabled(self.resource_id)

    def snapshot(self, aws: Any) -> dict | None:
        return {"flow_logs": [f for f in probes.flow_logs_of(aws, self.resource_id)
                              if f.get("FlowLogStatus") == "ACTIVE"]}

    def apply(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None
        aws.client("ec2").delete_flow_logs(FlowLogIds=[f["FlowLogId"] for f in snapshot["flow_logs"]])

    def revert(self, aws: Any, snapshot: dict | None) -> None:
        assert snapshot is not None, "delete_flow_logs needs its snapshot to revert"
        if self.steady()(aws)[0]:
            return  # remediation already recreated it
        ec2 = aws.client("ec2")
        for flow_log in snapshot["flow_logs"]:
            # The stack's remediation may recreate it between the check above and this call: that is reverted too.
            try:
                answer = ec2.create_flow_logs(**create_params(flow_log))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != ALREADY_EXISTS:
                    raise
                continue
            failed = [u for u in answer.get("Unsuccessful", []) if u.get("Error", {}).get("Code") != ALREADY_EXISTS]
            if failed:
                raise RuntimeError(f"CreateFlowLogs refused to restore {flow_log['ResourceId']}: {failed[0]['Error']}")


delete_flow_logs = DeleteFlowLogs


def create_params(flow_log: dict) -> dict:
    """CreateFlowLogs arguments that recreate a flow log as DescribeFlowLogs showed it."""
    resource = flow_log["ResourceId"]
    params: dict[str, Any] = {
        "ResourceIds": [resource],
        "ResourceType": next(t for p, t in RESOURCE_TYPES.items() if resource.startswith(p)),
        "LogDestinationType": flow_log.get("LogDestinationType", "cloud-watch-logs"),
    }
    if flow_log.get("TrafficType"):
        params["TrafficType"] = flow_log["TrafficType"]
    if params["LogDestinationType"] == "cloud-watch-logs" and flow_log.get("LogGroupName"):
        params["LogGroupName"] = flow_log["LogGroupName"]  # CloudWatch Logs wants a group name or ARN, not both
    elif flow_log.get("LogDestination"):
        params["LogDestination"] = flow_log["LogDestination"]
    for key in ("DeliverLogsPermissionArn", "LogFormat", "MaxAggregationInterval", "DestinationOptions"):
        if flow_log.get(key):
            params[key] = flow_log[key]
    if flow_log.get("Tags"):
        params["TagSpecifications"] = [{"ResourceType": "vpc-flow-log", "Tags": flow_log["Tags"]}]
    return params
