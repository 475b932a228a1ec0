#!/usr/bin/env bash
# The demo (README, first command): sets everything up, brings up the AWS article's
# architecture (examples/article.yaml), calls a private REST API from a corporate VPC through
# an execute-api endpoint (PrivateLink #1) whose REST VPC link reaches an NLB (PrivateLink #2),
# calls an HTTP API from the internet whose VPC link reaches an ALB and a Cloud Map service,
# shows what a VPC the policy does not admit gets, prints every hop with the address each side
# saw, the flows of both PrivateLink connections, and takes the lab down. As root.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
vpclab=.venv/bin/vpclab
py=.venv/bin/python
lab=${VPCLAB_DEMO_LAB:-article}    # the tests run it under their own run's name
trap '$vpclab down $lab >/dev/null 2>&1 || true' EXIT   # also when a step fails
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "vpclab up examples/article.yaml"
$vpclab up examples/article.yaml --name "$lab"

status=$($vpclab status $lab --json)
field() { $py -c "import json,sys; s=json.load(sys.stdin); print($1)" <<<"$status"; }
orders=$(field 's["api_gateway"]["apis"]["orders"]["invoke_urls"]["prod"]')
catalog=$(field 's["api_gateway"]["apis"]["catalog"]["invoke_urls"]["$default"]')
orders_id=$(field 's["api_gateway"]["apis"]["orders"]["id"]')
vpce=$(field '[e["id"] for k, e in s["hyperplane"]["endpoints"].items() if k == "corp/api-ep"][0]')
vpce_name=$(field '[n for n in s["hyperplane"]["endpoints"]["corp/api-ep"]["dns"] if n.endswith(".vpce.amazonaws.com") and "-us-east-1" not in n][0]')
host=${orders#https://}; host=${host%%/*}

# call WHERE URL [curl args…]: one request, then what each side saw, from the target's echo
call() {
    local where=$1 url=$2; shift 2
    local out
    out=$($vpclab exec -l $lab "$where" -- curl -sS -m 10 --retry 3 --retry-all-errors \
          -w '\n%{http_code} %{remote_ip}' "$@" "$url") || true
    printf '%s: GET %s\n' "$where" "$url"
    $py - "$out" <<'EOF'
import json, sys
body, _, last = sys.argv[1].rpartition("\n")
code, _, remote = last.partition(" ")
try:
    seen = json.loads(body)
except ValueError:
    seen = None
if not isinstance(seen, dict) or "headers" not in seen:     # API Gateway's own answer
    print(f"    HTTP {code} from {remote}: {body.strip()}")
    sys.exit()
h = {k.lower(): v for k, v in seen["headers"]}
print(f"    HTTP {code} from {remote}; answered by {seen['tag']}, which saw the request come "
      f"from {seen['peer']}")
extra = [f"{k}: {h[k]}" for k in ("x-forwarded-for", "x-amzn-vpce-id", "x-amzn-vpc-id", "host")
         if k in h]
print("    " + "; ".join(extra))
EOF
}

step "corp/client → private REST API orders: execute-api endpoint (PrivateLink #1) → API Gateway → REST VPC link (PrivateLink #2) → NLB → target"
call corp/client "${orders}orders/1"
call corp/client "https://$vpce_name/prod/orders/2" -H "x-apigw-api-id: $orders_id"
call corp/client "https://$orders_id-$vpce.execute-api.us-east-1.amazonaws.com/prod/orders/3"

step "partner/client → the same API through partner's own endpoint: the policy admits corp's endpoint only"
call partner/client "${orders}orders/1"

step "internet → HTTP API catalog → HTTP VPC link (VPC-to-VPC NAT) → ALB → target, and → a Cloud Map instance"
call internet "${catalog}web/1"
call internet "${catalog}inventory/1"

step "vpclab flows   (both PrivateLink connections, and the VPC link's NAT)"
$vpclab flows -l $lab

step "vpclab down $lab"
$vpclab down $lab
trap - EXIT
