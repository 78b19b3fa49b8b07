"""Probes of network exposure and compute: security group ingress, routes to the internet, instances launched."""

from __future__ import annotations

from typing import Any, Iterable

from harness.probes import Probe

__all__ = ["no_world_ingress", "no_internet_route", "only_allowed_instances"]

WORLD = ("0.0.0.0/0", "::/0")
RUNNING = ("pending", "running", "stopping", "stopped")  # an instance that can run again still costs and exposes


def no_world_ingress(group_id: str, port: int) -> Probe:
    """No ingress rule of the security group opens the port to the whole internet (IPv4 or IPv6)."""

    def check(aws: Any) -> tuple[bool, str]:
        group = aws.client("ec2").describe_security_groups(GroupIds=[group_id])["SecurityGroups"][0]
        open_ = world_open(group.get("IpPermissions", []), port)
        if open_:
            return False, f"{group_id} lets {', '.join(open_)} reach port {port}"
        return True, f"{group_id} does not open port {port} to the internet"

    return Probe(f"{group_id} does not open port {port} to the internet", check, ("ec2:DescribeSecurityGroups",))


def world_open(permissions: Iterable[dict], port: int) -> list[str]:
    """The world ranges the permissions let reach the port (all protocols, or TCP over a range holding it)."""
    found = []
    for perm in permissions:
        if perm.get("IpProtocol") not in ("-1", "tcp", "6"):
            continue
        if perm.get("IpProtocol") != "-1" and not perm.get("FromPort", 0) <= port <= perm.get("ToPort", 65535):
            continue
        found += [r["CidrIp"] for r in perm.get("IpRanges", []) if r.get("CidrIp") in WORLD]
        found += [r["CidrIpv6"] for r in perm.get("Ipv6Ranges", []) if r.get("CidrIpv6") in WORLD]
    return found


def no_internet_route(route_table_id: str) -> Probe:
    """The route table sends nothing to an internet gateway."""

    def check(aws: Any) -> tuple[bool, str]:
        table = aws.client("ec2").describe_route_tables(RouteTableIds=[route_table_id])["RouteTables"][0]
        out = internet_routes(table)
        if out:
            return False, f"{route_table_id} routes {', '.join(f'{d} to {g}' for d, g in out)}"
        return True, f"{route_table_id} has no route to an internet gateway"

    return Probe(f"{route_table_id} has no route to the internet", check, ("ec2:DescribeRouteTables",))


def internet_routes(table: dict) -> list[tuple[str, str]]:
    """(destination, gateway) of every route to an internet gateway."""
    return [(r.get("DestinationCidrBlock") or r.get("DestinationIpv6CidrBlock") or "?", r["GatewayId"])
            for r in table.get("Routes", []) if str(r.get("GatewayId", "")).startswith("igw-")]


def only_allowed_instances(allowed_types: Iterable[str], allowed_regions: Iterable[str]) -> Probe:
    """No instance in the region is of a type, or in a region, outside the allowed lists."""
    types, regions = tuple(allowed_types), tuple(allowed_regions)

    def check(aws: Any) -> tuple[bool, str]:
        found = instances(aws)
        if aws.region not in regions:
            bad = [f"{i['InstanceId']} ({aws.region})" for i in found]
        else:
            bad = [f"{i['InstanceId']} ({i['InstanceType']})" for i in found if i["InstanceType"] not in types]
        if bad:
            return False, f"unexpected instances: {', '.join(bad)}"
        return True, f"{len(found)} instance(s) in {aws.region}, all of allowed types"

    return Probe(f"only instances of {', '.join(types)} in {', '.join(regions)}", check, ("ec2:DescribeInstances",))


def instances(aws: Any, *filters: dict) -> list[dict]:
    """Instances of the region that are not terminated (or on their way), matching the filters."""
    ec2 = aws.client("ec2")
    out: list[dict] = []
    kwargs: dict[str, Any] = {"Filters": [{"Name": "instance-state-name", "Values": list(RUNNING)}, *filters]}
    while True:
        page = ec2.describe_instances(**kwargs)
        out += [i for r in page.get("Reservations", []) for i in r.get("Instances", [])]
        if not page.get("NextToken"):
            return out
        kwargs["NextToken"] = page["NextToken"]
