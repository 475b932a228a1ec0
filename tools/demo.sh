#!/usr/bin/env bash
# The demo (README, first command): sets everything up, brings up the PrivateLink lab of
# examples/privatelink.yaml, sends requests from the consumer's client through the
# endpoint, shows which target answered and which source address it saw, the
# forwarder's flow table, and takes the lab down. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
vpclab=.venv/bin/vpclab
lab=pl
trap '$vpclab down $lab >/dev/null 2>&1 || true' EXIT   # also when a step fails
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vpclab up examples/privatelink.yaml"
$vpclab up examples/privatelink.yaml

status=$($vpclab status $lab --json)
field() { .venv/bin/python -c "import json,sys; s=json.load(sys.stdin); print($1)" <<<"$status"; }
zonal_a=$(field '[n for n in s["hyperplane"]["endpoints"]["consumer/web-ep"]["dns"] if "-us-east-1a." in n][0]')
zonal_b=$(field '[n for n in s["hyperplane"]["endpoints"]["consumer/web-ep"]["dns"] if "-us-east-1b." in n][0]')
client=$(field 's["vpcs"]["consumer"]["instances"]["client"]["ip"]')

step "requests from consumer/client ($client) through the endpoint"
logs=(/run/vpclab/$lab/provider.web1.log /run/vpclab/$lab/provider.web2.log)
request() {  # $1: what the name is, $2: the name asked for
    local before=() after who seen out
    for l in "${logs[@]}"; do before+=("$(wc -l <"$l")"); done
    out=$($vpclab exec -l $lab consumer/client -- curl -sS -m 5 --retry 5 --retry-connrefused \
          -o /dev/null -w '%{http_code} %{remote_ip}' "http://$2/")
    who=?; seen=?
    for i in 0 1; do
        after=$(wc -l <"${logs[$i]}")
        if (( after > before[i] )); then
            who=web$((i + 1)); seen=$(tail -n 1 "${logs[$i]}" | cut -d' ' -f1)
        fi
    done
    printf 'GET http://%s/   (%s)\n' "$2" "$1"
    printf '    HTTP %s from endpoint ENI %s; answered by provider/%s, which saw the request come from %s\n' \
        "${out%% *}" "${out##* }" "$who" "$seen"
}
request "the service's private DNS name" web.provider.internal
request "the service's private DNS name" web.provider.internal
request "the endpoint's zonal name in us-east-1a" "$zonal_a"
request "the endpoint's zonal name in us-east-1b" "$zonal_b"

step "vpclab flows   (each line: endpoint ENI, client → endpoint ⇒ NLB address → target)"
$vpclab flows -l $lab

step "vpclab down $lab"
$vpclab down $lab
trap - EXIT
