"""Shared by the CIS tests: a client factory on the moto server and what the backend holds for the CIS controls."""

import boto3
from moto_gaps import MotoGaps

ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
# Settings every CIS alarm must carry besides PutMetricAlarm's own arguments: nothing extra may be attached.
EMPTY_ALARM_FIELDS = ("OKActions", "InsufficientDataActions", "Dimensions")


class Clients:
    """deploy()'s client factory: one boto3 client per service, cached, on the given endpoint."""

    def __init__(self, url, region=REGION):
        self.session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=region)
        self.url = url
        self._clients = {}

    def __call__(self, service):
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.url)
            self._clients[service].meta.events.register("before-call.*.*", MotoGaps())  # what plain moto lacks
        return self._clients[service]


def cis_state(client, desired):
    """The stored CIS alarms and filters, keyed by name, in PutMetricAlarm/PutMetricFilter terms (absent ones left out).

    An oracle written apart from deploy's and the handler's drift code: it compares stored values field by field.
    """
    wanted = desired_cis_state(desired)
    names = list(wanted["alarms"])
    stored_alarms = {a["AlarmName"]: a for a in client("cloudwatch").describe_alarms(AlarmNames=names)["MetricAlarms"]}
    alarms = {}
    for name, alarm in stored_alarms.items():
        alarms[name] = {key: alarm.get(key) for key in wanted["alarms"][name]}
        alarms[name]["Threshold"] = float(alarms[name]["Threshold"])
        alarms[name].update({key: alarm.get(key) or [] for key in EMPTY_ALARM_FIELDS})
    filters = {}  # name -> every filter stored under it: one on AWS, more where an emulator appends (moto)
    for f in client("logs").describe_metric_filters(logGroupName=desired.log_group.name)["metricFilters"]:
        if f["filterName"] in wanted["metric_filters"]:
            filters.setdefault(f["filterName"], []).append(
                {key: f.get(key) for key in ("logGroupName", "filterName", "filterPattern", "metricTransformations")}
            )
    return {"alarms": alarms, "metric_filters": filters}


def desired_cis_state(desired):
    """cis_state() of a backend that holds exactly the desired CIS controls."""
    return {
        "alarms": {
            c.alarm.name: {**c.alarm.put_params(), **{key: [] for key in EMPTY_ALARM_FIELDS}}
            for c in desired.controls
        },
        "metric_filters": {c.metric_filter.name: [c.metric_filter.put_params()] for c in desired.controls},
    }
