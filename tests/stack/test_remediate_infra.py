"""The infra remediation handler, run in-process from its deployed zip against a deployed stack on moto."""

import fnmatch
import importlib.util
import io
import zipfile
from types import SimpleNamespace

import boto3
import pytest
import requests
from moto_gaps import MotoGaps
from test_infra import ACCOUNT, REGION, Clients, _perm

from harness.stack.deploy import code_sha256, deploy, function_zip
from harness.stack.desired import FUNCTION_ENV_VAR, desired_state
from harness.stack.infra import CONFIG_REMEDIATION_SOURCE, STACK_TAG

OTHER_REGION = "eu-west-1"


@pytest.fixture(scope="module")
def stack(moto_url, tmp_path_factory):
    """One deployed stack, and the handler loaded as Lambda would: from the deployed zip, with its environment."""
    requests.post(f"{moto_url}/moto-api/reset", timeout=10).raise_for_status()
    clients = Clients(moto_url)
    desired = desired_state(account_id=ACCOUNT, region=REGION)
    outputs = deploy(clients, desired).outputs
    fn = desired.infra.function
    config = clients("lambda").get_function_configuration(FunctionName=fn.name)
    code = function_zip(fn.source, fn.bundle)
    assert config["CodeSha256"] == code_sha256(code)
    task = tmp_path_factory.mktemp("task")
    zipfile.ZipFile(io.BytesIO(code)).extractall(task)
    with pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION"):
            env.delenv(name, raising=False)
        env.setenv("AWS_ENDPOINT_URL", moto_url)
        env.setenv("AWS_REGION", REGION)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv(FUNCTION_ENV_VAR, config["Environment"]["Variables"][FUNCTION_ENV_VAR])
        spec = importlib.util.spec_from_file_location("remediate_infra", task / "remediate_infra.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # module-level clients pick up the environment above
        calls = []
        for client in (module.config, module.ec2, module.guardduty):
            client.meta.events.register("before-call.*.*", _recording(calls))

        def regional(service, **kwargs):  # the clients the handler builds for other regions are recorded too
            client = boto3.client(service, **kwargs)
            client.meta.events.register("before-call.*.*", _recording(calls))
            return client

        env.setattr(module, "boto3", SimpleNamespace(client=regional))
        yield clients, desired, outputs, module, calls


def _recording(calls):
    gaps = MotoGaps()

    def hook(model, **kwargs):
        calls.append(f"{model.service_model.signing_name}:{model.name}")
        return gaps(model=model, **kwargs)

    return hook


@pytest.fixture
def aws(stack):
    """The shared stack's clients; whatever a test leaves drifted is deployed back before the next one."""
    clients, desired, outputs, _, calls = stack
    calls.clear()
    yield clients
    if infra_state(clients, desired, outputs) != desired_infra_state(desired, outputs):
        deploy(clients, desired)
    assert infra_state(clients, desired, outputs) == desired_infra_state(desired, outputs)


@pytest.fixture
def desired(stack):
    return stack[1]


@pytest.fixture
def outputs(stack):
    return stack[2]


@pytest.fixture
def handler(stack):
    return stack[3].handler


@pytest.fixture
def allowed(stack):
    """After the test: every call the handler made is one its role's policy allows (least privilege, but enough)."""
    _, desired, _, _, calls = stack
    yield
    (policy,) = desired.infra.function.role.inline_policies.values()
    actions = [a for s in policy["Statement"] for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    refused = sorted({c for c in calls if not any(fnmatch.fnmatch(c.lower(), a.lower()) for a in actions)})
    assert calls and refused == []


# -- what the backend holds: an oracle written apart from the handler's and the deploy's drift code -------------


def infra_state(c, desired, outputs):
    """The recorder, the stack's Config rules and remediations, flow logs, detector and network exposure."""
    cfg, ec2, gd = c("config"), c("ec2"), c("guardduty")
    names = set(outputs.config_rule_names.values())
    rules = {r["ConfigRuleName"]: (r["Source"]["SourceIdentifier"], r.get("InputParameters"), r.get("Scope"))
             for r in cfg.describe_config_rules()["ConfigRules"] if r["ConfigRuleName"] in names}
    listed = cfg.describe_remediation_configurations(ConfigRuleNames=sorted(rules))["RemediationConfigurations"] \
        if rules else []
    remediations = {r["ConfigRuleName"]: (r["TargetId"], r["Automatic"]) for r in listed}
    status = cfg.describe_configuration_recorder_status()["ConfigurationRecordersStatus"]
    flow_logs = sorted((f["ResourceId"], f["TrafficType"], f["LogGroupName"])
                       for f in ec2.describe_flow_logs()["FlowLogs"])
    detectors = [gd.get_detector(DetectorId=d) for d in gd.list_detectors()["DetectorIds"]]
    (group,) = ec2.describe_security_groups(GroupIds=[outputs.security_group_id])["SecurityGroups"]
    (table,) = ec2.describe_route_tables(RouteTableIds=[outputs.route_table_id])["RouteTables"]
    return {
        "recording": [(s["name"], s["recording"]) for s in status],
        "channels": [ch["name"] for ch in cfg.describe_delivery_channels()["DeliveryChannels"]],
        "rules": rules,
        "remediations": remediations,
        "flow_logs": flow_logs,
        "detectors": [(d["Status"], d["FindingPublishingFrequency"], d["Tags"]) for d in detectors],
        "ingress": sorted((p["IpProtocol"], p.get("FromPort"), r["CidrIp"]) for p in group["IpPermissions"]
                          for r in p["IpRanges"]),
        "routes": sorted(r["GatewayId"] for r in table["Routes"]),
    }


def desired_infra_state(desired, outputs):
    infra = desired.infra
    resource = {"vpc": outputs.vpc_id}
    rules = {}
    for rule in infra.config_rules:
        params = rule.put_params(resource)
        rules[rule.name] = (rule.identifier, params.get("InputParameters"), params.get("Scope"))
    return {
        "recording": [("gameday-recorder", True)],
        "channels": ["gameday-channel"],
        "rules": rules,
        "remediations": {r.rule_name: (r.document, True) for r in infra.remediations},
        "flow_logs": sorted((getattr(outputs, f"{key}_id"), "ALL", "/gameday/flow-logs")
                            for key in ("vpc", "subnet", "eni")),
        "detectors": [("ENABLED", "FIFTEEN_MINUTES", {STACK_TAG: "gameday"})],
        "ingress": [("tcp", 443, "10.42.0.0/16")],
        "routes": ["local"],
    }


def _call(event_name, source, params=None, response=None, region=REGION):
    return {"version": "0", "id": "e-1", "detail-type": "AWS API Call via CloudTrail", "source": source,
            "account": ACCOUNT, "region": region, "time": "2026-01-01T00:00:00Z", "resources": [],
            "detail": {"eventName": event_name, "awsRegion": region, "requestParameters": params,
                       "responseElements": response}}


def _check(check, resource_id):
    return {"source": CONFIG_REMEDIATION_SOURCE, "check": check, "resourceId": resource_id}


STOP = _call("StopConfigurationRecorder", "aws.config", {"configurationRecorderName": "gameday-recorder"})
NOTHING = {"actions": [], "reported": []}


# -- the tests ----------------------------------------------------------------------------------------------------


def test_healthy_stack_needs_no_action(aws, desired, outputs, handler, allowed):
    assert handler(STOP, None) == NOTHING
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)


def test_restarts_the_recorder_and_restores_rules_and_remediations(aws, desired, outputs, handler, allowed):
    cfg = aws("config")
    cfg.stop_configuration_recorder(ConfigurationRecorderName="gameday-recorder")
    cfg.delete_remediation_configuration(ConfigRuleName="gameday-vpc-flow-logs-enabled", ResourceType="AWS::EC2::VPC")
    cfg.delete_config_rule(ConfigRuleName="gameday-vpc-flow-logs-enabled")  # AWS refuses while it has a remediation
    cfg.delete_remediation_configuration(ConfigRuleName="gameday-cloud-trail-enabled")
    rule = next(r for r in desired.infra.config_rules if r.identifier == "ACCESS_KEYS_ROTATED")
    cfg.put_config_rule(ConfigRule={**rule.put_params(), "InputParameters": '{"maxAccessKeyAge": "3650"}'})

    result = handler(STOP, None)

    assert result["actions"] == [
        "StartConfigurationRecorder gameday-recorder",
        "PutConfigRule gameday-vpc-flow-logs-enabled (recreated)",
        "PutConfigRule gameday-access-keys-rotated (drifted)",
        "PutRemediationConfigurations gameday-cloud-trail-enabled, gameday-vpc-flow-logs-enabled",
    ]
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)
    assert handler(STOP, None) == NOTHING


def test_recreates_a_deleted_recorder_and_channel(aws, desired, outputs, handler, allowed):
    cfg = aws("config")
    cfg.stop_configuration_recorder(ConfigurationRecorderName="gameday-recorder")
    cfg.delete_delivery_channel(DeliveryChannelName="gameday-channel")
    cfg.delete_configuration_recorder(ConfigurationRecorderName="gameday-recorder")

    result = handler(_call("DeleteConfigurationRecorder", "aws.config",
                           {"configurationRecorderName": "gameday-recorder"}), None)

    assert result["actions"][:3] == ["PutConfigurationRecorder gameday-recorder (recreated)",
                                     "PutDeliveryChannel gameday-channel (recreated)",
                                     "StartConfigurationRecorder gameday-recorder"]
    (recorder,) = cfg.describe_configuration_recorders()["ConfigurationRecorders"]
    assert recorder["roleARN"] == desired.infra.config_role.arn
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)


def test_leaves_someone_elses_recorder_alone(aws, desired, outputs, handler, allowed):
    cfg = aws("config")
    cfg.stop_configuration_recorder(ConfigurationRecorderName="gameday-recorder")
    cfg.delete_delivery_channel(DeliveryChannelName="gameday-channel")
    cfg.delete_configuration_recorder(ConfigurationRecorderName="gameday-recorder")
    cfg.put_configuration_recorder(ConfigurationRecorder={"name": "default", "roleARN": desired.infra.config_role.arn})

    result = handler(STOP, None)

    assert result["actions"] == []
    assert result["reported"] == ["recorder gameday-recorder missing and default holds the region's only slot"]
    assert [r["name"] for r in cfg.describe_configuration_recorders()["ConfigurationRecorders"]] == ["default"]
    cfg.delete_configuration_recorder(ConfigurationRecorderName="default")


def test_recreates_deleted_flow_logs(aws, desired, outputs, handler, allowed):
    ec2 = aws("ec2")
    ec2.delete_flow_logs(FlowLogIds=[outputs.flow_log_ids["vpc"], outputs.flow_log_ids["eni"]])

    result = handler(_call("DeleteFlowLogs", "aws.ec2", {"DeleteFlowLogsRequest": {
        "FlowLogId": [{"content": outputs.flow_log_ids["vpc"], "tag": 1}]}}), None)

    assert result["actions"] == [f"CreateFlowLogs VPC {outputs.vpc_id} (recreated)",
                                 f"CreateFlowLogs NetworkInterface {outputs.eni_id} (recreated)"]
    for flow_log in ec2.describe_flow_logs(Filter=[{"Name": "resource-id", "Values": [outputs.vpc_id]}])["FlowLogs"]:
        assert flow_log["DeliverLogsPermissionArn"] == desired.infra.flow_logs_role.arn
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)


def test_config_remediation_of_flow_logs(aws, desired, outputs, handler, allowed):
    aws("ec2").delete_flow_logs(FlowLogIds=[outputs.flow_log_ids["subnet"]])
    result = handler(_check("VPC_FLOW_LOGS_ENABLED", outputs.vpc_id), None)
    assert result["actions"] == [f"CreateFlowLogs Subnet {outputs.subnet_id} (recreated)"]


def test_re_enables_and_recreates_the_detector(aws, desired, outputs, handler, allowed):
    gd = aws("guardduty")
    (detector,) = gd.list_detectors()["DetectorIds"]
    gd.update_detector(DetectorId=detector, Enable=False, FindingPublishingFrequency="SIX_HOURS")

    result = handler(_call("UpdateDetector", "aws.guardduty", {"detectorId": detector, "enable": False}), None)

    assert result["actions"] == [f"UpdateDetector {detector} (enabled, FIFTEEN_MINUTES)"]
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)
    gd.delete_detector(DetectorId=detector)

    result = handler(_check("GUARDDUTY_ENABLED_CENTRALIZED", ACCOUNT), None)

    (created,) = gd.list_detectors()["DetectorIds"]
    assert result["actions"] == [f"CreateDetector {created} (recreated)"]
    assert infra_state(aws, desired, outputs) == desired_infra_state(desired, outputs)


def test_revokes_exactly_the_world_open_admin_ingress(aws, desired, outputs, handler, allowed):
    ec2 = aws("ec2")
    group = outputs.security_group_id
    ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[
        _perm("tcp", 22, 22, v4=["0.0.0.0/0", "203.0.113.0/24"], v6=["::/0"]),
        _perm("tcp", 8443, 8443, v4=["0.0.0.0/0"]),
        _perm("tcp", 3389, 3389, v4=["198.51.100.7/32"]),
    ])

    result = handler(_call("AuthorizeSecurityGroupIngress", "aws.ec2", {"groupId": group, "ipPermissions": {}}), None)

    assert result["actions"] == [f"RevokeSecurityGroupIngress {group} tcp 22-22 from 0.0.0.0/0, ::/0"]
    (stored,) = ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"]
    kept = sorted((p["FromPort"], r["CidrIp"]) for p in stored["IpPermissions"] for r in p["IpRanges"])
    assert kept == [(22, "203.0.113.0/24"), (443, "10.42.0.0/16"), (3389, "198.51.100.7/32"), (8443, "0.0.0.0/0")]
    assert not any(p["Ipv6Ranges"] for p in stored["IpPermissions"])
    assert handler(_call("AuthorizeSecurityGroupIngress", "aws.ec2", {"groupId": group}), None) == NOTHING


def test_config_remediation_closes_any_group(aws, desired, outputs, handler, allowed):
    ec2 = aws("ec2")
    other = ec2.create_security_group(GroupName="someone-elses", Description="x", VpcId=outputs.vpc_id)["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=other, IpPermissions=[_perm("-1", v4=["0.0.0.0/0"])])

    result = handler(_check("INCOMING_SSH_DISABLED", other), None)

    assert result["actions"] == [f"RevokeSecurityGroupIngress {other} -1 all from 0.0.0.0/0"]
    assert ec2.describe_security_groups(GroupIds=[other])["SecurityGroups"][0]["IpPermissions"] == []
    ec2.delete_security_group(GroupId=other)


def test_removes_internet_routes_from_the_monitored_table_only(aws, desired, outputs, handler, allowed):
    ec2 = aws("ec2")
    gateway = ec2.create_internet_gateway()["InternetGateway"]["InternetGatewayId"]
    ec2.attach_internet_gateway(InternetGatewayId=gateway, VpcId=outputs.vpc_id)
    other = ec2.create_route_table(VpcId=outputs.vpc_id)["RouteTable"]["RouteTableId"]
    for table in (outputs.route_table_id, other):
        ec2.create_route(RouteTableId=table, DestinationCidrBlock="0.0.0.0/0", GatewayId=gateway)

    def created(table):
        return _call("CreateRoute", "aws.ec2", {"routeTableId": table, "destinationCidrBlock": "0.0.0.0/0",
                                                "gatewayId": gateway})

    assert handler(created(outputs.route_table_id), None) == {
        "actions": [f"DeleteRoute {outputs.route_table_id} 0.0.0.0/0 to {gateway}"], "reported": []}
    assert handler(created(other), None) == {"actions": [], "reported": [
        f"route 0.0.0.0/0 to {gateway} in {other} left in place: not the monitored route table"]}
    routes = ec2.describe_route_tables(RouteTableIds=[other])["RouteTables"][0]["Routes"]
    assert gateway in [r.get("GatewayId") for r in routes]
    ec2.delete_route_table(RouteTableId=other)
    ec2.detach_internet_gateway(InternetGatewayId=gateway, VpcId=outputs.vpc_id)
    ec2.delete_internet_gateway(InternetGatewayId=gateway)


def _run(c, instance_type, region=REGION):
    ec2 = c.session.client("ec2", endpoint_url=c.url, region_name=region)
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    answer = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType=instance_type)
    items = [{"instanceId": i["InstanceId"], "instanceType": i["InstanceType"]} for i in answer["Instances"]]
    event = _call("RunInstances", "aws.ec2", {"instanceType": instance_type, "instancesSet": {"items": [{}]}},
                  {"instancesSet": {"items": items}}, region)
    return ec2, items[0]["instanceId"], event


def _state(ec2, instance):
    return ec2.describe_instances(InstanceIds=[instance])["Reservations"][0]["Instances"][0]["State"]["Name"]


def test_terminates_unexpected_instances_only(aws, desired, outputs, handler, allowed):
    ec2, gpu, event = _run(aws, "p2.xlarge")
    _, small, allowed_event = _run(aws, "t3.micro")

    assert handler(event, None) == {"actions": [f"TerminateInstances {gpu} (instance type not allowed)"],
                                    "reported": []}
    assert handler(allowed_event, None) == NOTHING
    assert _state(ec2, gpu) in ("shutting-down", "terminated") and _state(ec2, small) == "running"
    assert handler(event, None) == NOTHING  # already on its way out
    ec2.terminate_instances(InstanceIds=[small])


def test_terminates_instances_in_a_region_not_allowed(aws, desired, outputs, handler, allowed):
    ec2, instance, event = _run(aws, "t3.micro", region=OTHER_REGION)
    assert handler(event, None)["actions"] == [f"TerminateInstances {instance} (region {OTHER_REGION} not allowed)"]
    assert _state(ec2, instance) in ("shutting-down", "terminated")


def test_an_unknown_check_fails_the_automation(handler):
    with pytest.raises(ValueError, match="no remediation for Config check 'ROOT_ACCOUNT_MFA_ENABLED'"):
        handler(_check("ROOT_ACCOUNT_MFA_ENABLED", ACCOUNT), None)
