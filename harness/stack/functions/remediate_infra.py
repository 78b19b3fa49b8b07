"""Remediation Lambda: put AWS Config, flow logs and GuardDuty back, and close what opens the network (boto3 only)."""

import hashlib
import json
import logging
import os

import boto3
from botocore.exceptions import ClientError

logger = logging.getLogger("gameday.remediate_infra")
logger.setLevel(logging.INFO)

REGION = os.environ.get("AWS_REGION")
# boto3 reads AWS_ENDPOINT_URL itself, so the same code runs on AWS, LocalStack and the embedded plane.
config = boto3.client("config", region_name=REGION)
ec2 = boto3.client("ec2", region_name=REGION)
guardduty = boto3.client("guardduty", region_name=REGION)

CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
PORT_PROTOCOLS = ("tcp", "6", "udp", "17")  # protocols whose FromPort/ToPort are ports (ICMP's are types and codes)
GONE = ("shutting-down", "terminated")


def handler(event, context):
    """Reconcile what the event is about; any other event (a tampering call, a manual run) reconciles everything.

    A Config remediation document hands {"source": ..., "check": <managed rule>, "resourceId": ...}.
    """
    desired = load_desired()
    done = {"actions": [], "reported": []}
    if event.get("source") == desired["config_remediation_source"]:
        _config_check(desired, event.get("check"), event.get("resourceId"), done)
    elif event.get("detail-type") == CLOUDTRAIL_DETAIL_TYPE:
        _api_call(desired, event.get("detail") or {}, done)
    else:
        _reconcile(desired, done)
    return done


def load_desired():
    """The desired state, from the file GAMEDAY_DESIRED names next to this module, checked by hash."""
    pointer = json.loads(os.environ["GAMEDAY_DESIRED"])
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), pointer["file"])
    with open(path, "rb") as bundled:
        data = bundled.read()
    # Code and configuration are updated by two calls: never enforce a desired state the deploy did not intend.
    if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
        raise RuntimeError(f"{pointer['file']} does not match GAMEDAY_DESIRED's sha256: code and configuration differ")
    return json.loads(data)


def _act(done, line):
    logger.info("%s", line)
    done["actions"].append(line)


def _report(done, line):
    logger.warning("%s", line)
    done["reported"].append(line)


def _config_check(desired, check, resource_id, done):
    if check == "INCOMING_SSH_DISABLED":
        _close_world_ingress(desired, resource_id, done)
    elif check == "VPC_FLOW_LOGS_ENABLED":
        _flow_logs(desired, done)
    elif check == "GUARDDUTY_ENABLED_CENTRALIZED":
        _detector(desired, done)
    else:  # fail the automation: a configuration handing an unknown check is a deploy defect
        raise ValueError(f"no remediation for Config check {check!r}")


def _api_call(desired, detail, done):
    name = detail.get("eventName")
    params = detail.get("requestParameters") or {}
    if name == "AuthorizeSecurityGroupIngress":
        _close_world_ingress(desired, params.get("groupId"), done, group_name=params.get("groupName"))
    elif name in ("CreateRoute", "ReplaceRoute"):
        _internet_routes(desired, params, done)
    elif name == "RunInstances":
        _unexpected_instances(desired, detail, done)
    else:
        _reconcile(desired, done)


def _reconcile(desired, done):
    _config(desired, done)
    _flow_logs(desired, done)
    _detector(desired, done)


# -- AWS Config ------------------------------------------------------------------------------------------------


def _config(desired, done):
    recorder, channel = desired["recorder"], desired["delivery_channel"]
    recorders = config.describe_configuration_recorders().get("ConfigurationRecorders", [])
    ours = [r for r in recorders if r["name"] == recorder["name"]]
    if not ours and recorders:  # one recorder per region: never replace someone else's
        _report(done, f"recorder {recorder['name']} missing and {recorders[0]['name']} holds the region's only slot")
        return
    if not ours or _recorder_drift(ours[0], recorder):
        config.put_configuration_recorder(ConfigurationRecorder=recorder)
        _act(done, f"PutConfigurationRecorder {recorder['name']} ({'recreated' if not ours else 'drifted'})")
    channels = config.describe_delivery_channels().get("DeliveryChannels", [])
    mine = [c for c in channels if c["name"] == channel["name"]]
    if not mine and channels:  # a recorder cannot start without a channel: the rest waits for a person
        _report(done, f"delivery channel {channel['name']} missing and {channels[0]['name']} holds the region's slot")
        return
    if not mine or mine[0].get("s3BucketName") != channel["s3BucketName"]:
        config.put_delivery_channel(DeliveryChannel=channel)
        _act(done, f"PutDeliveryChannel {channel['name']} ({'recreated' if not mine else 'drifted'})")
    status = config.describe_configuration_recorder_status(ConfigurationRecorderNames=[recorder["name"]])
    if not any(s.get("recording") for s in status.get("ConfigurationRecordersStatus", [])):
        config.start_configuration_recorder(ConfigurationRecorderName=recorder["name"])
        _act(done, f"StartConfigurationRecorder {recorder['name']}")
    _config_rules(desired, done)
    _remediations(desired, done)


def _recorder_drift(current, wanted):
    group = current.get("recordingGroup") or {}
    return current.get("roleARN") != wanted["roleARN"] or group.get("resourceTypes") or any(
        group.get(k, False) != v for k, v in wanted["recordingGroup"].items())


def _config_rules(desired, done):
    stored = {}
    for page in config.get_paginator("describe_config_rules").paginate():
        stored.update({r["ConfigRuleName"]: r for r in page.get("ConfigRules", [])})
    ids = None
    for entry in desired["config_rules"]:
        rule = dict(entry["rule"])
        if entry["scope_resource"]:
            ids = ids if ids is not None else _network_ids(desired)
            resource = ids.get(entry["scope_resource"])
            if resource is None:
                _report(done, f"{rule['ConfigRuleName']} not restored: its {entry['scope_resource']} is gone")
                continue
            rule["Scope"] = {**rule.get("Scope", {}), "ComplianceResourceId": resource}
        current = stored.get(rule["ConfigRuleName"])
        if current is None or _rule_drift(current, rule):
            config.put_config_rule(ConfigRule=rule)
            _act(done, f"PutConfigRule {rule['ConfigRuleName']} ({'recreated' if current is None else 'drifted'})")


def _rule_drift(current, wanted):
    def scope(rule):
        found = {k: v for k, v in (rule.get("Scope") or {}).items() if v}
        if "ComplianceResourceTypes" in found:
            found["ComplianceResourceTypes"] = sorted(found["ComplianceResourceTypes"])
        return found

    source = current.get("Source") or {}
    return ((source.get("Owner"), source.get("SourceIdentifier")) !=
            (wanted["Source"]["Owner"], wanted["Source"]["SourceIdentifier"])
            or json.loads(current.get("InputParameters") or "{}") != json.loads(wanted.get("InputParameters", "{}"))
            or current.get("MaximumExecutionFrequency") != wanted.get("MaximumExecutionFrequency")
            or scope(current) != scope(wanted))


def _remediations(desired, done):
    wanted = desired["remediations"]
    if not wanted:
        return
    names = [r["ConfigRuleName"] for r in wanted]
    try:
        listed = config.describe_remediation_configurations(ConfigRuleNames=names).get("RemediationConfigurations", [])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchConfigRuleException":
            raise
        listed = []  # a rule that could not be restored above: its remediation waits for the next run
    stored = {r["ConfigRuleName"]: r for r in listed}
    fields = ("TargetType", "TargetId", "Parameters", "ResourceType", "Automatic", "MaximumAutomaticAttempts",
              "RetryAttemptSeconds")
    put = [r for r in wanted if r["ConfigRuleName"] not in stored
           or any(stored[r["ConfigRuleName"]].get(f) != r.get(f) for f in fields)]
    if put:
        answer = config.put_remediation_configurations(RemediationConfigurations=put)
        if answer.get("FailedBatches"):
            raise RuntimeError(f"PutRemediationConfigurations refused entries: {answer['FailedBatches']}")
        _act(done, f"PutRemediationConfigurations {', '.join(r['ConfigRuleName'] for r in put)}")


# -- flow logs and GuardDuty -----------------------------------------------------------------------------------


def _network_ids(desired):
    """The monitored network's ids, found by their Name tags (the backend generated them)."""
    kinds = {"vpc": ("describe_vpcs", "Vpcs", "VpcId"), "subnet": ("describe_subnets", "Subnets", "SubnetId"),
             "eni": ("describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId"),
             "route_table": ("describe_route_tables", "RouteTables", "RouteTableId")}
    ids = {}
    for key, (operation, listed, field) in kinds.items():
        found = getattr(ec2, operation)(Filters=[{"Name": "tag:Name", "Values": [desired["network"][key]]}])[listed]
        if found:
            ids[key] = found[0][field]
    return ids


def _flow_logs(desired, done):
    ids = _network_ids(desired)
    for flow_log in desired["flow_logs"]:
        params = {k: v for k, v in flow_log.items() if k != "key"}
        resource = ids.get(flow_log["key"])
        if resource is None:
            _report(done, f"flow log not restored: the {flow_log['key']} {desired['network'][flow_log['key']]} is gone")
            continue
        stored = ec2.describe_flow_logs(Filter=[{"Name": "resource-id", "Values": [resource]}]).get("FlowLogs", [])
        if any(s.get("LogGroupName") == params["LogGroupName"] and s.get("TrafficType") == params["TrafficType"]
               for s in stored):
            continue
        answer = ec2.create_flow_logs(ResourceIds=[resource], **params)
        if answer.get("Unsuccessful"):
            raise RuntimeError(f"CreateFlowLogs {resource} refused: {answer['Unsuccessful']}")
        _act(done, f"CreateFlowLogs {params['ResourceType']} {resource} (recreated)")


def _detector(desired, done):
    wanted = desired["detector"]
    detectors = guardduty.list_detectors().get("DetectorIds", [])
    if not detectors:
        created = guardduty.create_detector(Enable=True, **wanted)["DetectorId"]
        _act(done, f"CreateDetector {created} (recreated)")
        return
    current = guardduty.get_detector(DetectorId=detectors[0])
    if current.get("Status") != "ENABLED" or \
            current.get("FindingPublishingFrequency") != wanted["FindingPublishingFrequency"]:
        # The findings rule matches on the event, not the detector: nothing else needs pointing at it.
        guardduty.update_detector(DetectorId=detectors[0], Enable=True,
                                  FindingPublishingFrequency=wanted["FindingPublishingFrequency"])
        _act(done, f"UpdateDetector {detectors[0]} (enabled, {wanted['FindingPublishingFrequency']})")


# -- network exposure and launches -----------------------------------------------------------------------------


def exposes_admin_port(permission, ports):
    """True if the permission reaches one of the ports (all traffic, or a port range holding it)."""
    protocol = str(permission.get("IpProtocol"))
    if protocol == "-1":
        return True
    if protocol not in PORT_PROTOCOLS:
        return False
    return any(permission.get("FromPort", 0) <= port <= permission.get("ToPort", 65535) for port in ports)


def _close_world_ingress(desired, group_id, done, group_name=None):
    """Revoke exactly the world ranges of the permissions that reach an admin port; every other rule stays."""
    world = set(desired["world"])
    try:
        if group_id:
            groups = ec2.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
        else:
            groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": [group_name or ""]}])[
                "SecurityGroups"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidGroup.NotFound":
            raise
        groups = []
    if not groups:
        _report(done, f"security group {group_id or group_name} not found: nothing to close")
        return
    group = groups[0]
    for permission in group.get("IpPermissions", []):
        if not exposes_admin_port(permission, desired["admin_ports"]):
            continue
        v4 = [r["CidrIp"] for r in permission.get("IpRanges", []) if r.get("CidrIp") in world]
        v6 = [r["CidrIpv6"] for r in permission.get("Ipv6Ranges", []) if r.get("CidrIpv6") in world]
        if not v4 and not v6:
            continue
        revoke = {"IpProtocol": permission["IpProtocol"]}
        if str(permission["IpProtocol"]) != "-1":
            revoke.update(FromPort=permission["FromPort"], ToPort=permission["ToPort"])
        if v4:
            revoke["IpRanges"] = [{"CidrIp": c} for c in v4]
        if v6:
            revoke["Ipv6Ranges"] = [{"CidrIpv6": c} for c in v6]
        ec2.revoke_security_group_ingress(GroupId=group["GroupId"], IpPermissions=[revoke])
        ports = "all" if str(permission["IpProtocol"]) == "-1" else f"{permission['FromPort']}-{permission['ToPort']}"
        _act(done, f"RevokeSecurityGroupIngress {group['GroupId']} {permission['IpProtocol']} {ports} from "
                   f"{', '.join(v4 + v6)}")


def _internet_routes(desired, params, done):
    """Remove internet-gateway routes from the monitored route table; a route elsewhere is only reported."""
    gateway, table_id = str(params.get("gatewayId") or ""), params.get("routeTableId")
    if not gateway.startswith("igw-"):
        return
    monitored = _network_ids(desired).get("route_table")
    if table_id != monitored:
        destination = params.get("destinationCidrBlock") or params.get("destinationIpv6CidrBlock") or "?"
        _report(done, f"route {destination} to {gateway} in {table_id} left in place: not the monitored route table")
        return
    table = ec2.describe_route_tables(RouteTableIds=[monitored])["RouteTables"][0]
    for route in table.get("Routes", []):
        if not str(route.get("GatewayId", "")).startswith("igw-"):
            continue
        destination = {k: route[k] for k in ("DestinationCidrBlock", "DestinationIpv6CidrBlock",
                                             "DestinationPrefixListId") if route.get(k)}
        ec2.delete_route(RouteTableId=monitored, **destination)
        _act(done, f"DeleteRoute {monitored} {next(iter(destination.values()))} to {route['GatewayId']}")


def _unexpected_instances(desired, detail, done):
    """Terminate the instances the RunInstances response names, if their region or type is not allowed."""
    region = detail.get("awsRegion") or REGION
    items = (((detail.get("responseElements") or {}).get("instancesSet") or {}).get("items")) or []
    requested = (detail.get("requestParameters") or {}).get("instanceType")
    allowed_region = region in desired["allowed_regions"]
    unexpected = [i["instanceId"] for i in items if i.get("instanceId") and (
        not allowed_region or (i.get("instanceType") or requested) not in desired["allowed_instance_types"])]
    if not unexpected:
        return
    regional = ec2 if region == REGION else boto3.client("ec2", region_name=region)
    reservations = regional.describe_instances(InstanceIds=unexpected)["Reservations"]
    # Terminating twice is harmless, but only what this run stopped is reported as done.
    alive = [i["InstanceId"] for r in reservations for i in r["Instances"] if i["State"]["Name"] not in GONE]
    if alive:
        regional.terminate_instances(InstanceIds=alive)
        why = f"region {region} not allowed" if not allowed_region else "instance type not allowed"
        _act(done, f"TerminateInstances {', '.join(alive)} ({why})")
