"""Classifier Lambda: a CPU alarm on the workload is load or attack; attacks page security and isolate the instance."""

import fnmatch
import json
import logging
import os
from datetime import datetime, timedelta, timezone

import boto3

logger = logging.getLogger("gameday.classify_cpu")
logger.setLevel(logging.INFO)

# boto3 reads AWS_ENDPOINT_URL itself, so the same code runs on AWS, LocalStack and the embedded plane.
_REGION = os.environ.get("AWS_REGION")
autoscaling = boto3.client("autoscaling", region_name=_REGION)
ec2 = boto3.client("ec2", region_name=_REGION)
guardduty = boto3.client("guardduty", region_name=_REGION)
inspector = boto3.client("inspector2", region_name=_REGION)
sns = boto3.client("sns", region_name=_REGION)

SUBJECT_LIMIT = 99  # SNS refuses a Subject of 100 characters or more
GUARDDUTY_PAGE = 50  # ListFindings and GetFindings take at most 50


def handler(event, context):
    """One alarm state change: look for security signals on the group's instances, then page or report load."""
    desired = json.loads(os.environ["GAMEDAY_DESIRED"])
    detail = event.get("detail") or {}
    if detail.get("state", {}).get("value") != "ALARM":
        return {"verdict": "ignored"}
    group = _group_of(detail) or desired["group"]
    instances = _instances(group)
    since = datetime.now(timezone.utc) - timedelta(minutes=desired["window_minutes"])
    signals = _guardduty_signals(instances, desired["finding_types"], since)
    signals += _inspector_signals(instances, desired["inspector_severities"])
    base = {"source": desired["source"], "alarmName": detail.get("alarmName"), "autoScalingGroupName": group,
            "stateChangeTime": detail.get("state", {}).get("timestamp")}
    if not signals:
        # Load: scaling is left to the group's policy, and nobody in security is paged.
        report = {**base, "verdict": "load", "severity": "INFORMATIONAL", "instanceIds": instances,
                  "summary": f"CPU alarm {detail.get('alarmName')} on {group}: no security signal on "
                             f"{', '.join(instances) or 'its instances'} in {desired['window_minutes']} minutes"}
        sns.publish(TopicArn=desired["ops_topic"], Subject=_subject(f"LOAD: {detail.get('alarmName')}"),
                    Message=json.dumps(report))
        logger.info("load: %s", json.dumps(report))
        return report
    pages = []
    for instance in sorted({s["instanceId"] for s in signals}):
        found = [s for s in signals if s["instanceId"] == instance]
        actions = _quarantine(group, instance, desired, found[0]["type"]) if desired["quarantine"] else []
        page = {**base, "verdict": "security", "severity": "HIGH", "instanceId": instance, "finding": found[0],
                "findings": found, "actions": actions,
                "summary": f"CPU alarm {detail.get('alarmName')} on {group} coincides with {found[0]['type']} on "
                           f"{instance}: treated as an attack, not load"}
        sns.publish(TopicArn=desired["security_topic"], Subject=_subject(f"HIGH: {found[0]['type']} on {instance}"),
                    Message=json.dumps(page))
        logger.info("security: %s", json.dumps(page))
        pages.append(page)
    return {"verdict": "security", "pages": pages}


def _group_of(detail):
    for metric in (detail.get("configuration") or {}).get("metrics") or []:
        dimensions = ((metric.get("metricStat") or {}).get("metric") or {}).get("dimensions") or {}
        if dimensions.get("AutoScalingGroupName"):
            return dimensions["AutoScalingGroupName"]
    return None


def _instances(group):
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group]).get("AutoScalingGroups", [])
    return sorted(i["InstanceId"] for g in found for i in g.get("Instances", []))


def _guardduty_signals(instances, patterns, since):
    if not instances:
        return []
    detectors = guardduty.list_detectors().get("DetectorIds", [])
    if not detectors:
        logger.warning("no GuardDuty detector: no GuardDuty signal can be seen")
        return []
    criteria = {"Criterion": {
        "resource.instanceDetails.instanceId": {"Eq": instances},
        "service.archived": {"Eq": ["false"]},
        "updatedAt": {"GreaterThanOrEqual": int(since.timestamp() * 1000)},
    }}
    ids, token = [], ""
    while True:
        page = guardduty.list_findings(DetectorId=detectors[0], FindingCriteria=criteria, MaxResults=GUARDDUTY_PAGE,
                                       **({"NextToken": token} if token else {}))
        ids += page.get("FindingIds", [])
        token = page.get("NextToken", "")
        if not token:
            break
    signals = []
    for start in range(0, len(ids), GUARDDUTY_PAGE):
        for finding in guardduty.get_findings(DetectorId=detectors[0],
                                              FindingIds=ids[start:start + GUARDDUTY_PAGE]).get("Findings", []):
            if not any(fnmatch.fnmatchcase(finding["Type"], p) for p in patterns):
                continue
            instance = ((finding.get("Resource") or {}).get("InstanceDetails") or {}).get("InstanceId")
            signals.append({"source": "guardduty", "type": finding["Type"], "id": finding["Id"],
                            "severity": finding.get("Severity"), "title": finding.get("Title"),
                            "instanceId": instance})
    return [s for s in signals if s["instanceId"] in instances]


def _inspector_signals(instances, severities):
    if not instances:
        return []
    criteria = {"resourceId": [{"comparison": "EQUALS", "value": i} for i in instances],
                "severity": [{"comparison": "EQUALS", "value": s} for s in severities],
                "findingStatus": [{"comparison": "EQUALS", "value": "ACTIVE"}]}
    signals, token = [], None
    while True:
        page = inspector.list_findings(filterCriteria=criteria, maxResults=100, **({"nextToken": token} if token
                                                                                  else {}))
        for finding in page.get("findings", []):
            vulnerability = (finding.get("packageVulnerabilityDetails") or {}).get("vulnerabilityId")
            for resource in finding.get("resources", []):
                if resource.get("id") in instances:
                    signals.append({"source": "inspector", "type": f"Inspector:{finding.get('type')}",
                                    "id": finding.get("findingArn"), "severity": finding.get("severity"),
                                    "title": finding.get("title"), "vulnerabilityId": vulnerability,
                                    "instanceId": resource["id"]})
        token = page.get("nextToken")
        if not token:
            return signals


def _quarantine(group, instance, desired, reason):
    """Isolate the instance and take it out of the group's capacity, so nothing scales out or in for it."""
    actions = []
    reservation = ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]
    groups = ec2.describe_security_groups(Filters=[
        {"Name": "group-name", "Values": [desired["quarantine_group"]]},
        {"Name": "vpc-id", "Values": [reservation["VpcId"]]}]).get("SecurityGroups", [])
    if not groups:
        logger.error("no security group %s in %s: %s is not isolated", desired["quarantine_group"],
                     reservation["VpcId"], instance)
    elif [g["GroupId"] for g in reservation.get("SecurityGroups", [])] != [groups[0]["GroupId"]]:
        ec2.modify_instance_attribute(InstanceId=instance, Groups=[groups[0]["GroupId"]])
        actions.append(f"isolated in {groups[0]['GroupId']} ({desired['quarantine_group']})")
    ec2.create_tags(Resources=[instance], Tags=[{"Key": desired["quarantine_tag"], "Value": reason[:256]}])
    found = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group]).get("AutoScalingGroups", [])
    member = next((i for g in found for i in g.get("Instances", []) if i["InstanceId"] == instance), None)
    if member is not None:
        if member.get("ProtectedFromScaleIn"):
            # Protection would keep it counted in the group's capacity; out of the group it no longer matters.
            autoscaling.set_instance_protection(AutoScalingGroupName=group, InstanceIds=[instance],
                                                ProtectedFromScaleIn=False)
            actions.append("scale-in protection off")
        # Its capacity goes with it (no replacement, no scale-out kept for it), within the group's minimum.
        shrink = found[0]["DesiredCapacity"] - 1 >= found[0]["MinSize"]
        autoscaling.detach_instances(AutoScalingGroupName=group, InstanceIds=[instance],
                                     ShouldDecrementDesiredCapacity=shrink)
        actions.append(f"detached from {group}" + (f" (desired {found[0]['DesiredCapacity']} -> "
                                                   f"{found[0]['DesiredCapacity'] - 1})" if shrink else ""))
    return actions


def _subject(text):
    return text[:SUBJECT_LIMIT]
