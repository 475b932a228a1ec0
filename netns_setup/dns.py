"""The VPC resolver (AmazonProvidedDNS at base+2): one dnsmasq per VPC namespace.

dnsmasq (Debian package dnsmasq-base) runs in the foreground inside the VPC namespace,
bound only to base+2 (an address on the namespace's `lo`), with no upstream servers and
no host files but the lab's own (`/run/vpclab/<lab>/<vpc>.hosts`). It therefore answers
for the instances of its own VPC and nothing else: names it does not hold in
`<region>.compute.internal` get NXDOMAIN, anything else is refused. Its configuration
is entirely on the command line (`--conf-file=/dev/null`), so /etc/dnsmasq.conf and
/etc/hosts are never read.

Each instance's name is held twice, like on AWS plus a friendly name:

    10.0.1.4  web1  ip-10-0-1-4.us-east-1.compute.internal  ip-10-0-1-4

and instances use it through a resolv.conf (`/run/vpclab/<lab>/<vpc>.resolv.conf`)
with `search <region>.compute.internal`, bind-mounted over /etc/resolv.conf in their
private mount namespace.

AWS uses `ec2.internal` rather than `us-east-1.compute.internal` for us-east-1; vpclab
uses `<region>.compute.internal` everywhere (one rule, as the issue specifies).
"""
from __future__ import annotations

import shutil


def aws_hostname(ip: str) -> str:
    return "ip-" + ip.replace(".", "-")


def domain(region: str) -> str:
    return f"{region}.compute.internal"


def hosts_file(region: str, instances: list[tuple[str, str]]) -> str:
    """/etc/hosts-format lines for [(name, ip)]."""
    lines = [f"{ip} {name} {aws_hostname(ip)}.{domain(region)} {aws_hostname(ip)}"
             for name, ip in instances]
    return "\n".join(lines) + ("\n" if lines else "")


def resolv_conf(dns_ip: str, region: str) -> str:
    return (f"# vpclab: this VPC's resolver (AmazonProvidedDNS, base+2)\n"
            f"nameserver {dns_ip}\nsearch {domain(region)}\n"
            f"options timeout:1 attempts:2\n")


def dnsmasq_binary() -> str:
    path = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
    return path


def dnsmasq_argv(listen: str, region: str, hosts: str, log: str, pid_file: str) -> list[str]:
    return [dnsmasq_binary(), "--keep-in-foreground", "--conf-file=/dev/null",
            "--no-resolv", "--no-hosts", "--no-poll", f"--addn-hosts={hosts}",
            f"--listen-address={listen}", "--bind-interfaces", "--port=53",
            f"--local=/{domain(region)}/", "--domain-needed", "--bogus-priv",
            f"--log-facility={log}", f"--pid-file={pid_file}", "--user=root",
            "--group=root", "--cache-size=0"]
