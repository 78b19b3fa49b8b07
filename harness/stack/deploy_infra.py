"""Converge part 4 (Config, flow logs, GuardDuty, the network and launch guards) with plain boto3, and tear it down."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from harness.assume import ClientFactory
from harness.stack.deploy import (ABSENT, CREATED, DELETED, UNCHANGED, UPDATED, DeployError, DeployReport, _code,
                                  _delete, _delete_bucket, _delete_role, _ensure_bucket, _ensure_function,
                                  _ensure_log_group, _ensure_permission, _ensure_role, _ensure_rule, _exists,
                                  _not_found, _paginate, _remove_function, _while_iam_propagates)
from harness.stack.desired import DesiredState
from harness.stack.infra import STACK_TAG, Document, Infra, InfraNames, Network

# Config checks the recorder's role and the channel's bucket when they are put: fresh IAM or bucket policy changes
# can be refused for a while.
_CONFIG_NOT_READY = (("InsufficientDeliveryPolicyException", ""), ("InvalidRoleException", ""))
RULE_KEYS = ("guardduty_rule", "compliance_rule", "infra_rule", "network_rule", "launch_rule")
# RemediationConfiguration fields the stack sets -> the value DescribeRemediationConfigurations implies without them.
REMEDIATION_DEFAULTS = {
    "TargetType": None,
    "TargetId": None,
    "Parameters": {},
    "ResourceType": None,
    "Automatic": False,
    "MaximumAutomaticAttempts": None,
    "RetryAttemptSeconds": None,
}


def converge(aws: ClientFactory, desired: DesiredState, report: DeployReport) -> dict[str, Any]:
    """Create what is missing, update what drifted; returns the StackOutputs fields only the backend knows."""
    infra = desired.infra
    iam, ec2, cfg = aws("iam"), aws("ec2"), aws("config")
    config_role_changed = _ensure_role(iam, infra.config_role, report, "config_role")
    bucket_changed = _ensure_bucket(aws("s3"), infra.config_bucket, desired, report, key="config_bucket")
    _ensure_role(iam, infra.flow_logs_role, report, "flow_logs_role")
    _ensure_log_group(aws("logs"), infra.flow_log_group, report, key="flow_log_group")
    ids = _ensure_network(ec2, infra, report)
    flow_log_ids = _ensure_flow_logs(ec2, infra, ids, report)
    detector_id = _ensure_detector(aws("guardduty"), infra, report)
    fn = infra.function
    if fn is not None:
        role_changed = _ensure_role(iam, fn.role, report, "infra_function_role")
        _ensure_function(aws("lambda"), fn, report, role_changed=role_changed, key="infra_function")
        for permission in fn.permissions:
            _ensure_permission(aws("lambda"), fn, permission, report, key="infra_permission")
    else:
        _remove_function(aws, infra.names.function, infra.names.function_role, report, "infra_")
    for key, role in zip(("trail_remediation_role", "invoke_remediation_role"), infra.remediation_roles):
        _ensure_role(iam, role, report, key)
    for document in infra.documents:
        _ensure_document(aws("ssm"), document, infra.prefix, report)
    # The rules after the deploy's own flow log and detector changes: a first deploy does not report itself.
    for key, rule in zip(RULE_KEYS, infra.rules):
        _ensure_rule(aws("events"), rule, report, key=key)
    _ensure_recorder(cfg, infra, desired.region, report, role_changed=config_role_changed)
    _ensure_channel(cfg, infra, desired.region, report, changed=config_role_changed or bucket_changed)
    _ensure_recording(cfg, infra, report)
    # The Config rules last of all: the flow logs and the detector they check exist by now.
    _ensure_config_rules(cfg, infra, ids, report)
    _ensure_remediations(cfg, infra, report)
    return {
        "guardduty_detector_id": detector_id,
        "vpc_id": ids["vpc"],
        "subnet_id": ids["subnet"],
        "eni_id": ids["eni"],
        "route_table_id": ids["route_table"],
        "security_group_id": ids["security_group"],
        "flow_log_ids": flow_log_ids,
    }


def teardown(aws: ClientFactory, desired: DesiredState, report: DeployReport) -> None:
    """Remove everything part 4's names own, whatever the sabotage mode; already-missing parts are "absent"."""
    infra = desired.infra
    names = infra.names
    ev, lam, logs, iam, ec2, cfg, gd = (aws(s) for s in ("events", "lambda", "logs", "iam", "ec2", "config",
                                                         "guardduty"))
    # The rules first: they must not report (or undo) the deletions that follow.
    for key, name in zip(RULE_KEYS, names.rules):
        _delete(report, key, f"DeleteRule {name}", functools.partial(_remove_rule, ev, name),
                "ResourceNotFoundException")
    _delete(report, "infra_function", f"DeleteFunction {names.function}",
            functools.partial(lam.delete_function, FunctionName=names.function), "ResourceNotFoundException")
    _delete(report, "infra_function_logs", f"DeleteLogGroup {names.function_log_group}",
            functools.partial(logs.delete_log_group, logGroupName=names.function_log_group),
            "ResourceNotFoundException")
    _teardown_config(cfg, aws("ssm"), names, report)
    _teardown_network(ec2, infra, report)
    _teardown_detector(gd, infra, report)
    for key, role in (("config_role", names.config_role), ("flow_logs_role", names.flow_logs_role),
                      ("trail_remediation_role", names.trail_remediation_role),
                      ("invoke_remediation_role", names.invoke_remediation_role),
                      ("infra_function_role", names.function_role)):
        if _exists(lambda: iam.get_role(RoleName=role)):
            _delete_role(iam, role, report, key)
        else:
            report.note(key, ABSENT)
    _delete(report, "flow_log_group", f"DeleteLogGroup {names.flow_log_group}",
            functools.partial(logs.delete_log_group, logGroupName=names.flow_log_group), "ResourceNotFoundException")
    _delete(report, "config_bucket", f"DeleteBucket {names.config_bucket}",
            functools.partial(_delete_bucket, aws("s3"), names.config_bucket), "NoSuchBucket", "404")


# -- converge ------------------------------------------------------------------------------------------------


def _tags(resource_type: str, name: str, prefix: str) -> list[dict[str, Any]]:
    tags = [{"Key": "Name", "Value": name}, {"Key": STACK_TAG, "Value": prefix}]
    return [{"ResourceType": resource_type, "Tags": tags}]


def _tagged(ec2: Any, operation: str, key: str, name: str, *filters: dict[str, Any]) -> dict[str, Any] | None:
    """The one resource whose Name tag is `name` (ids are the backend's: the tag is how the stack knows its own)."""
    found = list(_paginate(ec2, operation, key, Filters=[{"Name": "tag:Name", "Values": [name]}, *filters]))
    if len(found) > 1:
        raise DeployError(f"{len(found)} {key} are tagged Name={name}: the stack owns one, remove the others")
    return found[0] if found else None


def _ensure_network(ec2: Any, infra: Infra, report: DeployReport) -> dict[str, str]:
    """The monitored VPC, subnet, security group, network interface and route table; returns their ids."""
    net, prefix = infra.network, infra.prefix
    vpc = _tagged(ec2, "describe_vpcs", "Vpcs", net.vpc)
    if vpc is None:
        vpc = ec2.create_vpc(CidrBlock=net.vpc_cidr, TagSpecifications=_tags("vpc", net.vpc, prefix))["Vpc"]
        report.note("vpc", CREATED, f"CreateVpc {net.vpc}")
    else:
        report.note("vpc", UNCHANGED)
        if vpc["CidrBlock"] != net.vpc_cidr:  # a VPC's primary CIDR cannot change
            raise DeployError(f"VPC {net.vpc} ({vpc['VpcId']}) has CIDR {vpc['CidrBlock']}, not {net.vpc_cidr}: "
                              "delete it or deploy with another prefix")
    vpc_id = vpc["VpcId"]
    subnet = _tagged(ec2, "describe_subnets", "Subnets", net.subnet)
    if subnet is None:
        subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock=net.subnet_cidr,
                                   TagSpecifications=_tags("subnet", net.subnet, prefix))["Subnet"]
        report.note("subnet", CREATED, f"CreateSubnet {net.subnet}")
    else:
        report.note("subnet", UNCHANGED)
        if (subnet["VpcId"], subnet["CidrBlock"]) != (vpc_id, net.subnet_cidr):
            raise DeployError(f"subnet {net.subnet} ({subnet['SubnetId']}) is {subnet['CidrBlock']} in "
                              f"{subnet['VpcId']}, not {net.subnet_cidr} in {vpc_id}: delete it")
    subnet_id = subnet["SubnetId"]
    group_id = _ensure_security_group(ec2, net, vpc_id, prefix, report)
    eni_id = _ensure_interface(ec2, net, subnet_id, group_id, prefix, report)
    table_id = _ensure_route_table(ec2, net, vpc_id, subnet_id, prefix, report)
    return {"vpc": vpc_id, "subnet": subnet_id, "eni": eni_id, "security_group": group_id, "route_table": table_id}


def _ensure_security_group(ec2: Any, net: Network, vpc_id: str, prefix: str, report: DeployReport) -> str:
    group = _tagged(ec2, "describe_security_groups", "SecurityGroups", net.security_group,
                    {"Name": "vpc-id", "Values": [vpc_id]})
    if group is None:
        group_id = ec2.create_security_group(
            GroupName=net.security_group, Description=net.security_group_description, VpcId=vpc_id,
            TagSpecifications=_tags("security-group", net.security_group, prefix))["GroupId"]
        report.note("security_group", CREATED, f"CreateSecurityGroup {net.security_group}")
        stored: list[dict[str, Any]] = []
    else:
        group_id = group["GroupId"]
        report.note("security_group", UNCHANGED)
        stored = group.get("IpPermissions", [])
    have, want = _ingress_rules(stored), _ingress_rules(net.ingress)
    extra, missing = sorted(have - want), sorted(want - have)
    if extra:
        ec2.revoke_security_group_ingress(GroupId=group_id, IpPermissions=[_permission(r) for r in extra])
        report.note("security_group", UPDATED, f"RevokeSecurityGroupIngress {net.security_group} ({len(extra)})")
    if missing:
        ec2.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[_permission(r) for r in missing])
        report.note("security_group", UPDATED, f"AuthorizeSecurityGroupIngress {net.security_group} ({len(missing)})")
    return group_id


_RANGES = (("IpRanges", "CidrIp"), ("Ipv6Ranges", "CidrIpv6"), ("UserIdGroupPairs", "GroupId"),
           ("PrefixListIds", "PrefixListId"))


def _ingress_rules(permissions: Any) -> set[tuple[Any, ...]]:
    """Each (protocol, from, to, kind, source) an IpPermissions list allows: one tuple per source."""
    rules = set()
    for perm in permissions:
        protocol = str(perm["IpProtocol"])
        ports = (-1, -1) if protocol == "-1" else (perm.get("FromPort", -1), perm.get("ToPort", -1))
        for kind, field in _RANGES:
            rules.update((protocol, *ports, kind, field, entry[field])
                         for entry in perm.get(kind, []) if field in entry)
    return rules


def _permission(rule: tuple[Any, ...]) -> dict[str, Any]:
    protocol, from_port, to_port, kind, field, source = rule
    ports = {} if protocol == "-1" else {"FromPort": from_port, "ToPort": to_port}
    return {"IpProtocol": protocol, **ports, kind: [{field: source}]}


def _ensure_interface(ec2: Any, net: Network, subnet_id: str, group_id: str, prefix: str,
                      report: DeployReport) -> str:
    eni = _tagged(ec2, "describe_network_interfaces", "NetworkInterfaces", net.eni)
    if eni is None:
        eni_id = ec2.create_network_interface(
            SubnetId=subnet_id, Groups=[group_id], Description=f"Gameday: the monitored app's interface ({net.eni})",
            TagSpecifications=_tags("network-interface", net.eni, prefix))["NetworkInterface"]["NetworkInterfaceId"]
        report.note("eni", CREATED, f"CreateNetworkInterface {net.eni}")
        return eni_id
    eni_id = eni["NetworkInterfaceId"]
    report.note("eni", UNCHANGED)
    if eni["SubnetId"] != subnet_id:  # an interface cannot move: it is recreated by hand
        raise DeployError(f"network interface {net.eni} ({eni_id}) is in {eni['SubnetId']}, not {subnet_id}: delete it")
    if sorted(g["GroupId"] for g in eni.get("Groups", [])) != [group_id]:
        ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=[group_id])
        report.note("eni", UPDATED, f"ModifyNetworkInterfaceAttribute {net.eni} Groups")
    return eni_id


def _ensure_route_table(ec2: Any, net: Network, vpc_id: str, subnet_id: str, prefix: str,
                        report: DeployReport) -> str:
    table = _tagged(ec2, "describe_route_tables", "RouteTables", net.route_table,
                    {"Name": "vpc-id", "Values": [vpc_id]})
    if table is None:
        table = ec2.create_route_table(VpcId=vpc_id,
                                       TagSpecifications=_tags("route-table", net.route_table, prefix))["RouteTable"]
        report.note("route_table", CREATED, f"CreateRouteTable {net.route_table}")
    else:
        report.note("route_table", UNCHANGED)
    table_id = table["RouteTableId"]
    if not any(a.get("SubnetId") == subnet_id for a in table.get("Associations", [])):
        current = [a for t in _paginate(ec2, "describe_route_tables", "RouteTables",
                                        Filters=[{"Name": "association.subnet-id", "Values": [subnet_id]}])
                   for a in t.get("Associations", []) if a.get("SubnetId") == subnet_id]
        if current:
            ec2.replace_route_table_association(AssociationId=current[0]["RouteTableAssociationId"],
                                                RouteTableId=table_id)
        else:
            ec2.associate_route_table(RouteTableId=table_id, SubnetId=subnet_id)
        report.note("route_table", UPDATED, f"AssociateRouteTable {net.route_table} {net.subnet}")
    # Only the VPC's local route belongs here: nothing from the monitored subnet leaves the VPC.
    for route in table.get("Routes", []):
        if route.get("Origin") == "CreateRoute":
            destination = {k: route[k] for k in ("DestinationCidrBlock", "DestinationIpv6CidrBlock",
                                                 "DestinationPrefixListId") if route.get(k)}
            ec2.delete_route(RouteTableId=table_id, **destination)
            report.note("route_table", UPDATED, f"DeleteRoute {net.route_table} {next(iter(destination.values()))}")
    return table_id


def _ensure_flow_logs(ec2: Any, infra: Infra, ids: dict[str, str], report: DeployReport) -> dict[str, str]:
    """One flow log per monitored part to the stack's group; a drifted one is replaced (flow logs cannot change)."""
    group, role = infra.flow_log_group.name, infra.flow_logs_role.arn
    found_ids: dict[str, str] = {}
    report.note("flow_logs", UNCHANGED)
    for flow_log in infra.flow_logs:
        resource = ids[flow_log.key]
        stored = [f for f in _paginate(ec2, "describe_flow_logs", "FlowLogs",
                                       Filter=[{"Name": "resource-id", "Values": [resource]}])
                  if f.get("LogGroupName") == group]
        good = [f for f in stored if f.get("TrafficType") == flow_log.traffic_type
                and f.get("DeliverLogsPermissionArn") == role
                and f.get("LogDestinationType", "cloud-watch-logs") == "cloud-watch-logs"]
        stale = [f["FlowLogId"] for f in stored if f not in good[:1]]
        if stale:
            ec2.delete_flow_logs(FlowLogIds=stale)
            report.note("flow_logs", UPDATED, f"DeleteFlowLogs {', '.join(stale)} ({flow_log.key})")
        if good:
            found_ids[flow_log.key] = good[0]["FlowLogId"]
            continue
        answer = ec2.create_flow_logs(ResourceIds=[resource], ResourceType=flow_log.resource_type,
                                      TrafficType=flow_log.traffic_type, LogDestinationType="cloud-watch-logs",
                                      LogGroupName=group, DeliverLogsPermissionArn=role)
        if answer.get("Unsuccessful") or not answer.get("FlowLogIds"):
            raise DeployError(f"CreateFlowLogs {flow_log.resource_type} {resource} refused: "
                              f"{answer.get('Unsuccessful')}")
        found_ids[flow_log.key] = answer["FlowLogIds"][0]
        report.note("flow_logs", CREATED, f"CreateFlowLogs {flow_log.resource_type} {resource}")
    return found_ids


def _ensure_detector(gd: Any, infra: Infra, report: DeployReport) -> str:
    """GuardDuty's detector, enabled; one per region, so an existing one is adopted rather than duplicated."""
    wanted = infra.detector
    detectors = list(_paginate(gd, "list_detectors", "DetectorIds"))
    if not detectors:
        detector_id = gd.create_detector(Enable=True, FindingPublishingFrequency=wanted.frequency,
                                         Tags=wanted.tags)["DetectorId"]
        report.note("detector", CREATED, f"CreateDetector {detector_id}")
        return detector_id
    detector_id = detectors[0]
    current = gd.get_detector(DetectorId=detector_id)
    report.note("detector", UNCHANGED)
    if (current.get("Tags") or {}).get(STACK_TAG) != infra.prefix:
        report.notes.append(f"GuardDuty detector {detector_id} already existed (one per region): adopted, "
                            "and teardown leaves it")
    drifted = [name for name, value in (("Status", "ENABLED"), ("FindingPublishingFrequency", wanted.frequency))
               if current.get(name) != value]
    if drifted:
        gd.update_detector(DetectorId=detector_id, Enable=True, FindingPublishingFrequency=wanted.frequency)
        report.note("detector", UPDATED, f"UpdateDetector {detector_id} ({', '.join(drifted)})")
    return detector_id


def _ensure_document(ssm: Any, document: Document, prefix: str, report: DeployReport, key: str = "documents") -> None:
    content = json.dumps(document.content, indent=1, sort_keys=True)
    try:
        stored = ssm.get_document(Name=document.name, DocumentFormat="JSON")
    except ClientError as exc:
        if _code(exc) != "InvalidDocument":
            raise
        ssm.create_document(Name=document.name, Content=content, DocumentType="Automation", DocumentFormat="JSON",
                            Tags=[{"Key": STACK_TAG, "Value": prefix}])
        report.note(key, CREATED, f"CreateDocument {document.name}")
        return
    report.note(key, UNCHANGED)
    if stored.get("DocumentType") != "Automation":
        raise DeployError(f"SSM document {document.name} exists as a {stored.get('DocumentType')} document, "
                          "not an Automation one: delete it")
    if json.loads(stored["Content"]) == document.content:
        return
    # SSM refuses a new version whose content an older one has: that version becomes the default again.
    latest = int(ssm.describe_document(Name=document.name)["Document"]["LatestVersion"])
    versions = [str(v) for v in range(latest, 0, -1)]  # SSM numbers versions 1, 2, ...
    version = next((v for v in versions if json.loads(ssm.get_document(
        Name=document.name, DocumentVersion=v, DocumentFormat="JSON")["Content"]) == document.content), None)
    if version is None:
        version = ssm.update_document(Name=document.name, Content=content, DocumentVersion="$LATEST",
                                      DocumentFormat="JSON")["DocumentDescription"]["DocumentVersion"]
    ssm.update_document_default_version(Name=document.name, DocumentVersion=version)
    report.note(key, UPDATED, f"UpdateDocumentDefaultVersion {document.name} {version}")


def _ensure_recorder(cfg: Any, infra: Infra, region: str, report: DeployReport, *, role_changed: bool) -> None:
    wanted = infra.recorder.put_params()
    recorders = cfg.describe_configuration_recorders().get("ConfigurationRecorders", [])
    ours = [r for r in recorders if r["name"] == wanted["name"]]
    put = functools.partial(cfg.put_configuration_recorder, ConfigurationRecorder=wanted)
    if not ours:
        if recorders:
            raise DeployError(f"AWS Config allows one configuration recorder per region and {region} already has "
                              f"{recorders[0]['name']!r}: delete it, or deploy the stack where there is none")
        _while_iam_propagates(put, role_changed, _CONFIG_NOT_READY)
        report.note("config_recorder", CREATED, f"PutConfigurationRecorder {wanted['name']}")
        return
    report.note("config_recorder", UNCHANGED)
    drifted = _recorder_drift(ours[0], wanted)
    if drifted:
        _while_iam_propagates(put, role_changed, _CONFIG_NOT_READY)
        report.note("config_recorder", UPDATED, f"PutConfigurationRecorder {wanted['name']} ({', '.join(drifted)})")


def _recorder_drift(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    group, want = current.get("recordingGroup") or {}, wanted["recordingGroup"]
    drifted = ["roleARN"] if current.get("roleARN") != wanted["roleARN"] else []
    if any(group.get(k, False) != v for k, v in want.items()) or group.get("resourceTypes"):
        drifted.append("recordingGroup")
    return drifted


def _ensure_channel(cfg: Any, infra: Infra, region: str, report: DeployReport, *, changed: bool) -> None:
    wanted = infra.delivery_channel.put_params()
    channels = cfg.describe_delivery_channels().get("DeliveryChannels", [])
    ours = [c for c in channels if c["name"] == wanted["name"]]
    put = functools.partial(cfg.put_delivery_channel, DeliveryChannel=wanted)
    if not ours:
        if channels:
            raise DeployError(f"AWS Config allows one delivery channel per region and {region} already has "
                              f"{channels[0]['name']!r}: delete it, or deploy the stack where there is none")
        _while_iam_propagates(put, changed, _CONFIG_NOT_READY)
        report.note("config_channel", CREATED, f"PutDeliveryChannel {wanted['name']}")
        return
    report.note("config_channel", UNCHANGED)
    current = ours[0]
    frequency = (current.get("configSnapshotDeliveryProperties") or {}).get("deliveryFrequency")
    drifted = [k for k, same in (("s3BucketName", current.get("s3BucketName") == wanted["s3BucketName"]),
                                 ("s3KeyPrefix", not current.get("s3KeyPrefix")),
                                 ("deliveryFrequency",
                                  frequency == wanted["configSnapshotDeliveryProperties"]["deliveryFrequency"]))
               if not same]
    if drifted:
        _while_iam_propagates(put, changed, _CONFIG_NOT_READY)
        report.note("config_channel", UPDATED, f"PutDeliveryChannel {wanted['name']} ({', '.join(drifted)})")


def _ensure_recording(cfg: Any, infra: Infra, report: DeployReport) -> None:
    name = infra.recorder.name
    status = cfg.describe_configuration_recorder_status(ConfigurationRecorderNames=[name])
    if not any(s.get("recording") for s in status.get("ConfigurationRecordersStatus", [])):
        cfg.start_configuration_recorder(ConfigurationRecorderName=name)
        report.note("config_recorder", UPDATED, f"StartConfigurationRecorder {name}")


def _ensure_config_rules(cfg: Any, infra: Infra, ids: dict[str, str], report: DeployReport) -> None:
    stored = {r["ConfigRuleName"]: r for r in _paginate(cfg, "describe_config_rules", "ConfigRules")}
    report.note("config_rules", UNCHANGED)
    for rule in infra.config_rules:
        wanted = rule.put_params(ids)
        current = stored.get(rule.name)
        if current is None:
            cfg.put_config_rule(ConfigRule=wanted)
            report.note("config_rules", CREATED, f"PutConfigRule {rule.name}")
            continue
        drifted = _config_rule_drift(current, wanted)
        if drifted:
            cfg.put_config_rule(ConfigRule=wanted)
            report.note("config_rules", UPDATED, f"PutConfigRule {rule.name} ({', '.join(drifted)})")


def _config_rule_drift(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    def scope(rule: dict[str, Any]) -> dict[str, Any]:
        found = {k: v for k, v in (rule.get("Scope") or {}).items() if v}
        if "ComplianceResourceTypes" in found:
            found["ComplianceResourceTypes"] = sorted(found["ComplianceResourceTypes"])
        return found

    checks = {
        "Source": {k: (current.get("Source") or {}).get(k) for k in ("Owner", "SourceIdentifier")} ==
        wanted["Source"],
        "InputParameters": json.loads(current.get("InputParameters") or "{}") ==
        json.loads(wanted.get("InputParameters", "{}")),
        "MaximumExecutionFrequency": current.get("MaximumExecutionFrequency") ==
        wanted.get("MaximumExecutionFrequency"),
        "Scope": scope(current) == scope(wanted),
        "Description": current.get("Description", "") == wanted["Description"],
    }
    return [name for name, same in checks.items() if not same]


def _ensure_remediations(cfg: Any, infra: Infra, report: DeployReport) -> None:
    """The automatic remediations exactly (none when remediation is sabotaged)."""
    names = [r.name for r in infra.config_rules]
    stored = {r["ConfigRuleName"]: r for r in
              cfg.describe_remediation_configurations(ConfigRuleNames=names).get("RemediationConfigurations", [])}
    wanted = {r.rule_name: r.put_params() for r in infra.remediations}
    if wanted:
        report.note("remediation_configs", UNCHANGED)
    put = [entry for name, entry in wanted.items() if name not in stored or _remediation_drift(stored[name], entry)]
    if put:
        answer = cfg.put_remediation_configurations(RemediationConfigurations=put)
        if answer.get("FailedBatches"):
            raise DeployError(f"PutRemediationConfigurations refused entries: {answer['FailedBatches']}")
        for entry in put:
            name = entry["ConfigRuleName"]
            report.note("remediation_configs", UPDATED if name in stored else CREATED,
                        f"PutRemediationConfigurations {name}")
    for name in sorted(set(stored) - set(wanted)):
        _delete_remediation(cfg, stored[name])
        report.note("remediation_configs", DELETED, f"DeleteRemediationConfiguration {name}")


def _remediation_drift(current: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    return [k for k, default in REMEDIATION_DEFAULTS.items() if current.get(k, default) != wanted.get(k, default)]


def _delete_remediation(cfg: Any, stored: dict[str, Any]) -> None:
    extra = {"ResourceType": stored["ResourceType"]} if stored.get("ResourceType") else {}
    cfg.delete_remediation_configuration(ConfigRuleName=stored["ConfigRuleName"], **extra)


# -- teardown ------------------------------------------------------------------------------------------------


def _remove_rule(ev: Any, name: str) -> None:
    ids = [t["Id"] for t in _paginate(ev, "list_targets_by_rule", "Targets", Rule=name)]
    if ids:
        ev.remove_targets(Rule=name, Ids=ids)
    ev.delete_rule(Name=name)


def _teardown_config(cfg: Any, ssm: Any, names: InfraNames, report: DeployReport) -> None:
    wanted = {name for _, name in names.config_rules}
    existing = sorted(r["ConfigRuleName"] for r in _paginate(cfg, "describe_config_rules", "ConfigRules")
                      if r["ConfigRuleName"] in wanted)

    def remediations() -> None:
        found = cfg.describe_remediation_configurations(ConfigRuleNames=existing).get(
            "RemediationConfigurations", []) if existing else []
        if not found:
            raise _not_found("NoSuchRemediationConfigurationException")
        for stored in found:
            _delete_remediation(cfg, stored)

    def rules() -> None:
        if not existing:
            raise _not_found("NoSuchConfigRuleException")
        for name in existing:
            cfg.delete_config_rule(ConfigRuleName=name)

    def channel() -> None:
        channels = [c["name"] for c in cfg.describe_delivery_channels().get("DeliveryChannels", [])]
        if names.delivery_channel not in channels:
            raise _not_found("NoSuchDeliveryChannelException")
        _stop_recording(cfg, names.recorder)  # Config refuses to delete the channel of a running recorder
        cfg.delete_delivery_channel(DeliveryChannelName=names.delivery_channel)

    def recorder() -> None:
        recorders = [r["name"] for r in cfg.describe_configuration_recorders().get("ConfigurationRecorders", [])]
        if names.recorder not in recorders:
            raise _not_found("NoSuchConfigurationRecorderException")
        _stop_recording(cfg, names.recorder)
        cfg.delete_configuration_recorder(ConfigurationRecorderName=names.recorder)

    _delete(report, "remediation_configs", f"DeleteRemediationConfiguration {', '.join(existing)}", remediations,
            "NoSuchRemediationConfigurationException")
    _delete(report, "config_rules", f"DeleteConfigRule {', '.join(existing)}", rules, "NoSuchConfigRuleException")
    _delete(report, "config_channel", f"DeleteDeliveryChannel {names.delivery_channel}", channel,
            "NoSuchDeliveryChannelException")
    _delete(report, "config_recorder", f"DeleteConfigurationRecorder {names.recorder}", recorder,
            "NoSuchConfigurationRecorderException")
    for document in (names.trail_logging_document, names.infra_document):
        _delete(report, "documents", f"DeleteDocument {document}", functools.partial(ssm.delete_document,
                                                                                      Name=document), "InvalidDocument")


def _stop_recording(cfg: Any, recorder: str) -> None:
    status = cfg.describe_configuration_recorder_status(ConfigurationRecorderNames=[recorder])
    if any(s.get("recording") for s in status.get("ConfigurationRecordersStatus", [])):
        cfg.stop_configuration_recorder(ConfigurationRecorderName=recorder)


def _teardown_network(ec2: Any, infra: Infra, report: DeployReport) -> None:
    net = infra.network
    vpc = _tagged(ec2, "describe_vpcs", "Vpcs", net.vpc)
    subnet = _tagged(ec2, "describe_subnets", "Subnets", net.subnet)
    eni = _tagged(ec2, "describe_network_interfaces", "NetworkInterfaces", net.eni)
    group = _tagged(ec2, "describe_security_groups", "SecurityGroups", net.security_group)
    table = _tagged(ec2, "describe_route_tables", "RouteTables", net.route_table)
    watched = [r for r in (vpc and vpc["VpcId"], subnet and subnet["SubnetId"],
                           eni and eni["NetworkInterfaceId"]) if r]
    flow_logs = [f["FlowLogId"] for f in _paginate(ec2, "describe_flow_logs", "FlowLogs",
                                                   Filter=[{"Name": "resource-id", "Values": watched}])
                 if f.get("LogGroupName") == infra.flow_log_group.name] if watched else []

    def remove(key: str, change: str, found: Any, delete: Callable[[], Any]) -> None:
        if not found:
            report.note(key, ABSENT)
            return
        delete()
        report.note(key, DELETED, change)

    remove("flow_logs", f"DeleteFlowLogs {', '.join(flow_logs)}", flow_logs,
           lambda: ec2.delete_flow_logs(FlowLogIds=flow_logs))
    remove("eni", f"DeleteNetworkInterface {net.eni}", eni,
           lambda: ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"]))
    remove("route_table", f"DeleteRouteTable {net.route_table}", table, lambda: _delete_route_table(ec2, table))
    remove("subnet", f"DeleteSubnet {net.subnet}", subnet, lambda: ec2.delete_subnet(SubnetId=subnet["SubnetId"]))
    remove("security_group", f"DeleteSecurityGroup {net.security_group}", group,
           lambda: ec2.delete_security_group(GroupId=group["GroupId"]))
    remove("vpc", f"DeleteVpc {net.vpc}", vpc, lambda: _delete_vpc(ec2, vpc["VpcId"]))


def _delete_route_table(ec2: Any, table: dict[str, Any]) -> None:
    for association in table.get("Associations", []):
        if not association.get("Main"):
            ec2.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
    ec2.delete_route_table(RouteTableId=table["RouteTableId"])


def _delete_vpc(ec2: Any, vpc_id: str) -> None:
    # A gateway a scenario attached would keep the VPC alive: detached, not deleted (the stack did not create it).
    for gateway in _paginate(ec2, "describe_internet_gateways", "InternetGateways",
                             Filters=[{"Name": "attachment.vpc-id", "Values": [vpc_id]}]):
        ec2.detach_internet_gateway(InternetGatewayId=gateway["InternetGatewayId"], VpcId=vpc_id)
    ec2.delete_vpc(VpcId=vpc_id)


def _teardown_detector(gd: Any, infra: Infra, report: DeployReport) -> None:
    detectors = list(_paginate(gd, "list_detectors", "DetectorIds"))
    ours = [d for d in detectors if (gd.get_detector(DetectorId=d).get("Tags") or {}).get(STACK_TAG) == infra.prefix]
    for detector_id in ours:
        gd.delete_detector(DetectorId=detector_id)
        report.note("detector", DELETED, f"DeleteDetector {detector_id}")
    if ours:
        return
    if detectors:
        report.note("detector", UNCHANGED)
        report.notes.append(f"GuardDuty detector {detectors[0]} was not created by the stack: left in place")
    else:
        report.note("detector", ABSENT)
