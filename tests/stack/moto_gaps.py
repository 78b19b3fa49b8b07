"""What a plain moto server (in this process) lacks and the stack uses: a before-call hook for its clients."""

import functools
import json
import uuid

from botocore.awsrequest import AWSResponse

ACCOUNT = "123456789012"  # moto's default account


class MotoGaps:
    """A before-call hook giving a plain moto server (in this process) what part 4 uses and moto 5.2 lacks.

    Config remediation configurations: moto has no such API; they are kept on moto's Config backend, so a reset
    clears them. AWS managed policies: moto loads all 1,500 only on request, seconds per reset; the one attached
    is loaded when it is.
    """

    def __call__(self, model, params, **_):
        service, operation = model.service_model.service_name, model.name
        if service == "iam" and operation == "AttachRolePolicy":
            _load_managed_policy(params["body"]["PolicyArn"])
            return None
        if service != "config" or ("RemediationConfiguration" not in operation and operation != "DeleteConfigRule"):
            return None
        region = params["context"]["client_region"]
        body = json.loads(params["body"] or b"{}")
        if operation == "DeleteConfigRule":  # AWS refuses while the rule has a remediation configuration
            if body.get("ConfigRuleName") in _remediations(_config_backend(region)):
                return _error("ResourceInUseException", "the rule has a RemediationConfiguration")
            return None
        return getattr(self, operation.lower())(_config_backend(region), region, body)

    @staticmethod
    def putremediationconfigurations(backend, region, body):
        store = _remediations(backend)
        for entry in body["RemediationConfigurations"]:
            name = entry["ConfigRuleName"]
            if name not in backend.config_rules:
                return _error("NoSuchConfigRuleException", f"rule {name} does not exist")
            arn = f"arn:aws:config:{region}:{ACCOUNT}:remediation-configuration/{name}/{uuid.uuid4()}"
            store[name] = {**entry, "Arn": arn}
        return _answer({"FailedBatches": []})

    @staticmethod
    def describeremediationconfigurations(backend, region, body):
        store = _remediations(backend)
        names = [n for n in body.get("ConfigRuleNames", []) if n in store and n in backend.config_rules]
        return _answer({"RemediationConfigurations": [store[n] for n in names]})

    @staticmethod
    def deleteremediationconfiguration(backend, region, body):
        if _remediations(backend).pop(body["ConfigRuleName"], None) is None:
            return _error("NoSuchRemediationConfigurationException", "no remediation configuration")
        return _answer({})


def _config_backend(region):
    from moto.config.models import config_backends

    return config_backends[ACCOUNT][region]


def _remediations(backend):
    return backend.__dict__.setdefault("gameday_remediations", {})


@functools.cache
def _aws_managed_policies():
    from moto.iam.aws_managed_policies import aws_managed_policies_data

    return json.loads(aws_managed_policies_data)


def _load_managed_policy(arn):
    from moto.iam.models import AWSManagedPolicy, iam_backends

    backend = iam_backends[ACCOUNT]["aws"]
    name = arn.rsplit("/", 1)[1]
    if arn not in backend.managed_policies and name in _aws_managed_policies():
        policy = AWSManagedPolicy.from_data(name, ACCOUNT, "aws", _aws_managed_policies()[name])
        backend.managed_policies[policy.arn] = policy


def _answer(parsed):
    return AWSResponse("http://moto-gaps", 200, {}, None), {**parsed, "ResponseMetadata": {"HTTPStatusCode": 200}}


def _error(code, message):
    return AWSResponse("http://moto-gaps", 400, {}, None), {
        "Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}
