"""Private REST APIs end to end in a lab (issue 12): both PrivateLink hops at once (the
execute-api endpoint, then the REST VPC link), every name form, every 403 for real, an
endpoint whose security group does not admit 443 (a timeout, no reset), a VPC the policy
does not admit, and the headers the target sees. The lab is `lab_name("t12priv")`, removed whatever
happens.
"""
from __future__ import annotations

import sys

import pytest


from dataplane.pytest_plugin import lab_fixture, lab_name

from .conftest import vpclab
from .test_api_gateway import Reply

LAB = lab_name("t12priv")
ALLOW = {"Effect": "Allow", "Principal": "*", "Action": "execute-api:Invoke",
         "Resource": "execute-api:/*"}


def topology() -> dict:
    ep = lambda subnets, sg: {"service": "execute-api", "subnets": subnets,   # noqa: E731
                              "security_groups": [sg], "private_dns": True}
    vpc = lambda cidr, groups, endpoints: {                                    # noqa: E731
        "cidr": cidr, "subnets": {"a": {"cidr": cidr.replace("0.0/16", "1.0/24"),
                                        "az": "us-east-1a"}},
        "security_groups": groups, "instances": {"client": {"subnet": "a"}},
        "endpoints": endpoints}
    https_in = {"ingress": [{"protocol": "tcp", "ports": 443, "source": "172.16.0.0/12"}]}
    route = {"ANY /{proxy+}": {"vpc_link": "rest-link", "uri": "http://orders.shop.internal/{proxy}"}}
    return {
        "lab": LAB, "region": "us-east-1",
        "vpcs": {
            "corp": vpc("172.31.0.0/16", {"ep-443": https_in}, {"api-ep": ep(["a"], "ep-443")}),
            "other": vpc("172.30.0.0/16", {"ep-443": https_in}, {"api-ep": ep(["a"], "ep-443")}),
            "closed": vpc("172.29.0.0/16", {"shut": {"ingress": []}}, {"api-ep": ep(["a"], "shut")}),
            "shop": {
                "cidr": "10.1.0.0/16",
                "subnets": {"a": {"cidr": "10.1.1.0/24", "az": "us-east-1a"}},
                "security_groups": {"web-sg": {"ingress": [{"protocol": "tcp", "ports": 8080,
                                                            "source": "10.1.0.0/16"}]}},
                "instances": {"web1": {"subnet": "a", "security_groups": ["web-sg"],
                                       "run": f"{sys.executable} -m dataplane.services.echo web1 8080"}},
                "load_balancers": {"web-nlb": {"type": "network", "subnets": ["a"], "listeners": [
                    {"port": 80, "target_group": "web-tg"}]}},
                "target_groups": {"web-tg": {"protocol": "TCP", "port": 8080, "targets": ["web1"]}}}},
        "api_gateway": {
            "vpc_links": {"rest-link": {"type": "REST", "target": "shop/web-nlb"}},
            "apis": {
                "orders": {"type": "REST", "endpoint": "PRIVATE", "stages": ["prod"],
                           "vpc_endpoints": ["corp/api-ep"], "routes": route,
                           "policy": {"Statement": [ALLOW, {
                               **ALLOW, "Effect": "Deny",
                               "Condition": {"StringNotEquals": {"aws:SourceVpc": "corp"}}}]}},
                "nopolicy": {"type": "REST", "endpoint": "PRIVATE", "stages": ["prod"],
                             "routes": route},
                "public": {"type": "REST", "stages": ["prod"], "routes": route}}}}


running = lab_fixture(topology, scope="module")     # vpclab's pytest plugin


@pytest.fixture(scope="module")
def lab(running):
    return running.status()


def curl(where: str, url: str, *args: str, timeout: float = 30) -> Reply:
    proc = vpclab("exec", "-l", LAB, where, "--", "curl", "-sS", "-i", "--max-time",
                  str(int(timeout - 5)), *args, url, timeout=timeout)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    return Reply(proc.stdout)


def api(st: dict, name: str) -> tuple[str, str]:
    a = st["api_gateway"]["apis"][name]
    return a["id"], a["invoke_urls"]["prod"]


def endpoint(st: dict, vpc: str) -> dict:
    return st["hyperplane"]["endpoints"][f"{vpc}/api-ep"]


def test_a_private_api_through_both_privatelink_hops(lab) -> None:
    _, url = api(lab, "orders")
    r = curl("corp/client", url + "items/7?x=1")           # private DNS, TLS with the lab's CA
    assert r.status == 200, r.body
    seen = r.json()
    assert seen["path"] == "/items/7?x=1"
    nlb = {e["ip"] for e in lab["hyperplane"]["load_balancers"]["shop/web-nlb"]["enis"]}
    assert seen["peer"] in nlb                             # PrivateLink #2: the NLB's node
    sent = r.sent()
    client = lab["vpcs"]["corp"]["instances"]["client"]["ip"]
    assert sent["x-forwarded-for"].split(", ")[-1] == client
    assert sent["x-amzn-vpce-id"] == endpoint(lab, "corp")["id"]
    assert sent["x-amzn-vpc-id"].startswith("vpc-")
    assert sent["x-amzn-tls-version"] == "TLSv1.2" and sent["x-amzn-cipher-suite"]


def test_every_name_form(lab) -> None:
    api_id, _ = api(lab, "orders")
    ep = endpoint(lab, "corp")
    own = next(n for n in ep["dns"] if n.endswith(".vpce.amazonaws.com") and "-us-east-1a" not in n)
    r = curl("corp/client", f"https://{own}/prod/a", "-H", f"x-apigw-api-id: {api_id}")
    assert r.status == 200 and r.json()["path"] == "/a"
    r = curl("corp/client", f"https://{own}/prod/a")         # no API named: Forbidden
    assert r.status == 403 and r.json() == {"message": "Forbidden"}
    alias = f"https://{api_id}-{ep['id']}.execute-api.us-east-1.amazonaws.com/prod/b"
    r = curl("corp/client", alias)
    assert r.status == 200 and r.json()["path"] == "/b"


def test_every_refusal(lab) -> None:
    orders_id, orders = api(lab, "orders")
    # another VPC's endpoint: the Deny on aws:SourceVpc
    r = curl("other/client", orders + "c")
    assert r.status == 403 and r.headers["x-amzn-errortype"] == "AccessDeniedException"
    assert r.json()["Message"].endswith(f":{orders_id}/prod/GET/c with an explicit deny")
    assert r.json()["Message"].startswith("User: anonymous is not authorized to perform: "
                                          "execute-api:Invoke on resource: arn:aws:execute-api:")
    # no policy: an implicit deny
    nopolicy_id, nopolicy = api(lab, "nopolicy")
    r = curl("corp/client", nopolicy + "d")
    assert r.status == 403 and "explicit" not in r.json()["Message"]
    assert r.json()["Message"].endswith(f":{nopolicy_id}/prod/GET/d")
    # a public API called through an endpoint, and a private one from the internet
    r = curl("corp/client", api(lab, "public")[1] + "e")
    assert r.status == 403 and r.json() == {"message": "Forbidden"}
    r = curl("internet", orders + "f")
    assert r.status == 403 and r.json() == {"message": "Forbidden"}


def test_an_endpoint_that_does_not_admit_443_times_out(lab) -> None:
    _, url = api(lab, "orders")
    proc = vpclab("exec", "-l", LAB, "closed/client", "--", "curl", "-sS", "--max-time", "3",
                  url + "g", timeout=30)
    assert proc.returncode == 28, (proc.returncode, proc.stderr)      # dropped: no RST
