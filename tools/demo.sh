#!/usr/bin/env bash
# The demo: sets everything up, brings up the lab of examples/demo.yaml, sends real
# traffic through it (allowed and refused by security groups, names through the VPC's
# resolver), shows what was made, and takes it down again. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
vpclab=.venv/bin/vpclab
trap '$vpclab down demo >/dev/null 2>&1 || true' EXIT   # also when a step fails
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vpclab up examples/demo.yaml   (one VPC, two subnets, four instances, security groups, DNS)"
$vpclab up examples/demo.yaml

step "admin → web1:8080   (admin-sg lets 8080 out to web-a; web-sg lets 8080 in from the VPC)"
$vpclab exec -l demo shop/admin -- curl -sS -m 5 --retry 10 --retry-connrefused --retry-delay 1 \
    -o /dev/null -w 'HTTP %{http_code} from %{remote_ip}:%{remote_port}\n' http://web1:8080/

step "admin → web2:8080   (web2 is in web-b, where admin-sg lets nothing out: a silent drop)"
rc=0; $vpclab exec -l demo shop/admin -- curl -sS -m 3 -o /dev/null http://web2:8080/ 2>/dev/null || rc=$?
if [[ $rc -ne 28 ]]; then   # 28: curl timed out; a reachable closed port would be refused (7)
    echo "unexpected: curl exited $rc, not a time-out"; exit 1
fi
echo "no answer within 3 s (not even a refusal): dropped silently by the security group, as on AWS"

step "plain resolves names through the VPC resolver (base+2)"
$vpclab exec -l demo shop/plain -- getent hosts web1 web2 admin

step "vpclab status demo"
$vpclab status demo

step "vpclab down demo"
$vpclab down demo
trap - EXIT
