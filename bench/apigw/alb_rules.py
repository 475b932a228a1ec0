"""The ALB scenario's two configurations of one rule set: the ALB node's JSON
(notes/alb-config.md, the contract `up` writes) and haproxy's translation of it.

The rule set is issue 11's listener, on an HTTP listener and an HTTPS one alike:

    priority 10  path-pattern /api/*                         forward api-tg ×3, canary-tg ×1
    priority 20  host-header admin.*                         fixed-response 403 text/plain "no"
    priority 30  http-header x-debug: 1  AND  method POST    redirect #{protocol}://#{host}:#{port}/debug?#{query} 301
    default                                                  forward web-tg (two targets)

`node_config` writes it in the contract's form, every field present, the defaults filled
in as the model fills them. `haproxy_config` translates *any* such node configuration
(not this rule set by hand), so the two hold the same rules by construction:

* Each listener is a frontend. The rules are evaluated in priority order into one
  variable — `http-request set-var(txn.rule) int(P) if !{ var(txn.rule) -m found } <the
  rule's conditions>` — so the first match wins as on the ALB (a hand-written haproxy
  would put the 403 before any `use_backend`, and thereby break the priorities whenever
  two rules match); then each rule's action is taken `if { var(txn.rule) -m int eq P }`,
  the default's when no rule set the variable.
* Conditions: one ACL per condition, declared once per value (haproxy ORs the
  declarations of one name), the rule's ACLs ANDed. A wildcard pattern is an exact
  string, a prefix (`/api/*` → `-m beg /api/`) or an anchored regex. path-pattern on
  `path`, case-sensitive; host-header on `req.hdr(host)` with the port cut off, `-i`;
  http-header on `req.hdr(NAME)`, `-i`; http-request-method on `method`, case-sensitive;
  source-ip on `src`; query-string on the URL-decoded `urlp(KEY)` (haproxy's key match is
  case-sensitive, the ALB's is not) or, without a key, on the decoded query string.
* forward: a weighted choice among the target groups with one `rand(total weight)` per
  request into `txn.pick` and `use_backend` by cumulative weight (weight 0 never chosen);
  each target group one backend, `balance roundrobin` (`least_outstanding_requests` →
  `leastconn`, which counts connections, not outstanding requests), `http-reuse always`.
* fixed-response → `http-request return status S content-type T string BODY`; redirect →
  `http-request redirect code S location …` with `#{protocol}` `#{host}` `#{port}`
  `#{path}` `#{query}` as haproxy expressions (`#{port}` is haproxy's own listener port,
  so the Location leads back to haproxy) and the `?` left out when the query is empty.
* Headers to targets: X-Forwarded-For per `xff_mode` (`option forwardfor` adds its own
  header line rather than appending to the client's: the same list to a reader),
  X-Forwarded-Proto/-Port, X-Amzn-Trace-Id (a fresh `Root=1-<time hex>-<24 hex>`, or
  `Self=…;` put in front of the client's; a client's `Self` is not replaced).
* Health checks as the node's: `GET path` with `User-Agent: ELB-HealthChecker/2.0`,
  connection closed, interval, timeout, rise = healthy threshold, fall = unhealthy
  threshold, the matcher's codes.
* An access-log line per request in the ALB's field order as far as haproxy's log
  variables go (to stdout: the bench sends it to a file, as the node writes its own).

What haproxy does not do alike is DIFFERENCES (the report lists it).
"""
from __future__ import annotations

import ipaddress
import os
import re

from .tools import BenchError, haproxy_head, haproxy_tls_bind

REGION, ACCOUNT = "us-east-1", "123456789012"
ALB_NAME = "bench-alb"
DNS_NAME = f"internal-{ALB_NAME}-1234567890.{REGION}.elb.amazonaws.com"
TARGET_PORT = 8080
# the target groups: their targets' addresses in the backend namespace
TARGETS = {"api-tg": ["10.0.2.20", "10.0.2.21"], "canary-tg": ["10.0.2.22"],
           "web-tg": ["10.0.2.23", "10.0.2.24"]}
HEALTH_INTERVAL_S = 5        # the shortest AWS allows: the bench waits for one check
IDLE_TIMEOUT_S = 60
CONNECT_TIMEOUT_S = 10       # the ALB's connect limit (504 after it)
TRACE_HEX = "%[date,bytes(4,4),hex,lower]"      # the epoch's 8 hex digits
RAND_HEX = "%[rand,bytes(4,4),hex,lower]"       # 8 random hex digits

DIFFERENCES = (
    "Priorities: haproxy runs `http-request` rules before `use_backend`, so the translation "
    "evaluates the rules in priority order into `txn.rule` first (a set-var per rule) and acts on it; "
    "a hand-written haproxy would do less per request and break the priorities when two rules match.",
    "Weighted forward: one `rand(4)` per request, `use_backend` by cumulative weight, as the ALB "
    "(no `AWSALBTG` stickiness on either side).",
    "host-header drops the port with `field(1,:)` (an IPv6 literal Host would be cut wrongly); "
    "query-string keys match case-sensitively in haproxy (`urlp`), case-insensitively on the ALB.",
    "X-Forwarded-For: `option forwardfor` adds a header line of its own instead of appending to the "
    "client's (the same list to a reader); X-Amzn-Trace-Id: a fresh Root, or Self put in front of "
    "the client's, but a client's Self is not replaced.",
    "#{port} in the redirect is haproxy's own listener port (8080/8443), the ALB listener's "
    "elsewhere (80/443), so each Location leads back to the same load balancer.",
    "Health: haproxy puts a target in service before its first check (the ALB holds a new target "
    "back), has no `initial` state, and answers 503 when every target of a group is down where the "
    "ALB fails open; `least_outstanding_requests` becomes `leastconn`.",
    "Errors: haproxy's own pages and codes (503 on a refused connect where the ALB says 502, no "
    "`Server: awselb/2.0`); no 460/463/464, no 30-address X-Forwarded-For limit.",
    "Access log: haproxy's variables in the ALB's field order (no trace id, target group ARN, "
    "actions_executed …), to stdout, which the bench sends to a file.",
)


def arn(kind: str, name: str, suffix: str) -> str:
    return f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:{kind}/{name}/{suffix}"


def rules() -> list[dict]:
    """Issue 11's rules, in the contract's form."""
    return [
        {"priority": 10,
         "conditions": [{"field": "path-pattern", "values": ["/api/*"]}],
         "action": {"type": "forward", "target_groups": [{"name": "api-tg", "weight": 3},
                                                         {"name": "canary-tg", "weight": 1}]}},
        {"priority": 20,
         "conditions": [{"field": "host-header", "values": ["admin.*"]}],
         "action": {"type": "fixed-response", "status": 403, "content_type": "text/plain",
                    "body": "no"}},
        {"priority": 30,
         "conditions": [{"field": "http-header", "name": "x-debug", "values": ["1"]},
                        {"field": "http-request-method", "values": ["POST"]}],
         "action": {"type": "redirect", "protocol": "#{protocol}", "host": "#{host}",
                    "port": "#{port}", "path": "/debug", "query": "#{query}", "status": 301}}]


def node_config(workdir: str, node_address: str, ports: dict[str, int], cert: str, key: str) -> dict:
    """The node's configuration (notes/alb-config.md): listeners on `ports` ("plain",
    "tls") with the same rules, the three target groups, files in `workdir`."""
    default = {"type": "forward", "target_groups": [{"name": "web-tg", "weight": 1}]}
    health = {"enabled": True, "protocol": "HTTP", "port": TARGET_PORT, "path": "/",
              "interval": HEALTH_INTERVAL_S, "timeout": 5, "healthy_threshold": 5,
              "unhealthy_threshold": 2, "matcher": "200"}
    return {
        "version": 1, "lab": "bench", "region": REGION, "account_id": ACCOUNT, "vpc": "bench",
        "name": ALB_NAME, "arn": arn("loadbalancer", f"app/{ALB_NAME}", "50dc6c495c0c9188"),
        "dns_name": DNS_NAME,
        "node": {"az": f"{REGION}a", "subnet": "a", "address": node_address},
        "idle_timeout": IDLE_TIMEOUT_S, "xff_mode": "append", "xff_client_port": False,
        "socket": os.path.join(workdir, "alb.sock"),
        "access_log": os.path.join(workdir, "alb-access.log"),
        "listeners": [
            {"port": ports["plain"], "protocol": "HTTP", "tls": None, "rules": rules(),
             "default": default},
            {"port": ports["tls"], "protocol": "HTTPS", "tls": {"cert": cert, "key": key},
             "rules": rules(), "default": default}],
        "target_groups": {
            name: {"arn": arn("targetgroup", name, f"{i:016x}"), "protocol": "HTTP",
                   "port": TARGET_PORT, "algorithm": "round_robin",
                   "targets": [{"id": f"{name}-{j}", "ip": ip, "port": TARGET_PORT}
                               for j, ip in enumerate(ips)],
                   "health_check": dict(health)}
            for i, (name, ips) in enumerate(TARGETS.items(), start=1)}}


# -- haproxy ---------------------------------------------------------------------------

def quoted(text: str) -> str:
    """`text` as one haproxy word in double quotes (escapes for \\ " $ and line ends)."""
    for a, b in (("\\", "\\\\"), ('"', '\\"'), ("$", "\\$"), ("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
        text = text.replace(a, b)
    return f'"{text}"'


def literal(text: str) -> str:
    """`text` inside a log-format string: `%` doubled."""
    return text.replace("%", "%%")


def pattern(glob: str) -> str:
    """An ALB wildcard value (`*` any run, `?` one character) as an ACL match: exact,
    prefix, or anchored regex."""
    if not any(c in glob for c in "*?"):
        return f"-m str {quoted(glob)}"
    if glob.endswith("*") and not any(c in glob[:-1] for c in "*?"):
        return f"-m beg {quoted(glob[:-1])}" if glob[:-1] else "-m found"
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in glob)
    return f"-m reg {quoted('^' + regex + '$')}"


def condition_acls(name: str, condition: dict, where: str) -> list[str]:
    """The ACL lines of one condition (all named `name`: haproxy ORs them)."""
    field, values = condition.get("field"), condition.get("values") or []
    if not values:
        raise BenchError(f"{where}: condition {field!r} has no values")
    if field == "path-pattern":
        return [f"acl {name} path {pattern(v)}" for v in values]
    if field == "host-header":
        return [f"acl {name} req.hdr(host),field(1,:) -i {pattern(v)}" for v in values]
    if field == "http-header":
        header = condition.get("name") or ""
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", header):
            raise BenchError(f"{where}: http-header condition has no valid header name: {header!r}")
        return [f"acl {name} req.hdr({header.lower()}) -i {pattern(v)}" for v in values]
    if field == "http-request-method":
        return [f"acl {name} method {pattern(v)}" for v in values]
    if field == "source-ip":
        try:
            cidrs = [str(ipaddress.ip_network(v, strict=False)) for v in values]
        except ValueError as exc:
            raise BenchError(f"{where}: source-ip value: {exc}") from None
        return [f"acl {name} src {' '.join(cidrs)}"]
    if field == "query-string":
        out = []
        for v in values:
            key, value = (v.get("key"), v.get("value")) if isinstance(v, dict) else (None, None)
            if not isinstance(value, str):
                raise BenchError(f"{where}: query-string value {v!r} is not {{key, value}}")
            if key is None:          # any key: the value of any pair, decoded
                glob = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in value)
                out.append(f"acl {name} query,url_dec -i -m reg "
                           f"{quoted('(^|&)([^&=]*=)?' + glob + '(&|$)')}")
            else:
                if not re.fullmatch(r"[A-Za-z0-9._~-]+", key):
                    raise BenchError(f"{where}: query-string key {key!r}: haproxy_config "
                                     "translates keys of URL-safe characters only")
                out.append(f"acl {name} urlp({key}),url_dec -i {pattern(value)}")
        return out
    raise BenchError(f"{where}: no haproxy translation for condition field {field!r}")


def backend_name(group: str) -> str:
    return f"tg_{group}"


def action_lines(action: dict, when: str, where: str) -> tuple[list[str], list[str]]:
    """(http-request lines, use_backend lines) of one action, taken `if when`."""
    kind = action.get("type")
    if kind == "forward":
        groups = [g for g in action.get("target_groups") or [] if g.get("weight", 1) > 0]
        if not groups:
            raise BenchError(f"{where}: forward with no target group of weight > 0")
        if len(groups) == 1:
            return [], [f"use_backend {backend_name(groups[0]['name'])} if {when}"]
        total = sum(g["weight"] for g in groups)
        lines, upto = [], 0
        for g in groups[:-1]:
            upto += g["weight"]
            lines.append(f"use_backend {backend_name(g['name'])} if {when} "
                         f"{{ var(txn.pick) -m int lt {upto} }}")
        lines.append(f"use_backend {backend_name(groups[-1]['name'])} if {when}")
        return [f"http-request set-var(txn.pick) rand({total}) if {when}"], lines
    if kind == "fixed-response":
        body = action.get("body")
        content = (f" content-type {quoted(action.get('content_type') or 'text/plain')}"
                   f" string {quoted(body)}") if body else ""
        return [f"http-request return status {action['status']}{content} if {when}"], []
    if kind == "redirect":
        sub = {"#{protocol}": "%[ssl_fc,iif(https,http)]", "#{host}": "%[req.hdr(host),field(1,:)]",
               "#{port}": "%[dst_port]", "#{path}": "%[path]", "#{query}": "%[query]"}

        def part(key: str, default: str) -> str:
            text = action.get(key) or default
            if key == "protocol" and text in ("HTTP", "HTTPS"):
                text = text.lower()
            out = literal(text)
            for token, expr in sub.items():
                out = out.replace(token, expr)
            return out
        base = f"{part('protocol', '#{protocol}')}://{part('host', '#{host}')}:" \
               f"{part('port', '#{port}')}{part('path', '#{path}')}"
        query = action.get("query", "#{query}")
        code = f"http-request redirect code {action.get('status', 301)} location"
        if not query:
            return [f"{code} {quoted(base)} if {when}"], []
        full = f"{code} {quoted(base + '?' + part('query', '#{query}'))}"
        if query == "#{query}":      # an empty query: no `?`
            return [f"{full} if {when} {{ query -m len 1: }}", f"{code} {quoted(base)} if {when}"], []
        return [f"{full} if {when}"], []
    raise BenchError(f"{where}: no haproxy translation for action type {kind!r}")


def frontend(listener: dict, address: str, port: int, pem: str | None, cfg: dict,
             log_format: str) -> list[str]:
    tls = listener.get("protocol") == "HTTPS"
    if tls and not pem:
        raise BenchError(f"listener {listener['port']}: HTTPS needs haproxy's certificate (pem)")
    ssl = haproxy_tls_bind(pem) if tls else ""
    out = [f"frontend listener_{listener['port']}", f"    bind {address}:{port}{ssl}",
           "    log stdout format raw local0 info",
           "    http-request capture req.hdr(user-agent) len 128",
           f"    log-format {quoted(log_format)}"]
    acts, backends = [], []
    ordered = sorted(listener.get("rules") or [], key=lambda r: r["priority"])
    for rule in ordered:
        p = rule["priority"]
        where = f"listener {listener['port']} rule {p}"
        names = []
        for i, condition in enumerate(rule.get("conditions") or []):
            names.append(f"r{p}_c{i}")
            out += [f"    {line}" for line in condition_acls(names[-1], condition, where)]
        if not names:
            raise BenchError(f"{where}: a rule has at least one condition")
        out.append(f"    http-request set-var(txn.rule) int({p}) if !{{ var(txn.rule) -m found }} "
                   + " ".join(names))
        a, b = action_lines(rule["action"], f"{{ var(txn.rule) -m int eq {p} }}", where)
        acts += a
        backends += b
    a, b = action_lines(listener["default"], "!{ var(txn.rule) -m found }",
                        f"listener {listener['port']} default")
    acts += a
    backends += b
    out += [f"    {line}" for line in acts]
    mode = cfg.get("xff_mode", "append")
    if mode == "append":
        out.append("    http-request add-header X-Forwarded-For %[src]:%[src_port]"
                   if cfg.get("xff_client_port") else "    option forwardfor")
    elif mode == "remove":
        out.append("    http-request del-header X-Forwarded-For")
    elif mode != "preserve":
        raise BenchError(f"xff_mode {mode!r}: append, preserve or remove")
    trace = f"1-{TRACE_HEX}-{RAND_HEX}{RAND_HEX}{RAND_HEX}"
    out += [f"    http-request set-header X-Forwarded-Proto {'https' if tls else 'http'}",
            "    http-request set-header X-Forwarded-Port %[dst_port]",
            f"    http-request set-header X-Amzn-Trace-Id {quoted('Self=' + trace + ';%[req.fhdr(x-amzn-trace-id)]')}"
            " if { req.fhdr(x-amzn-trace-id) -m found }",
            f"    http-request set-header X-Amzn-Trace-Id {quoted('Root=' + trace)}"
            " if !{ req.fhdr(x-amzn-trace-id) -m found }"]
    out += [f"    {line}" for line in backends]
    return out


def matcher_check(matcher: str) -> str:
    """`http-check expect` for a matcher `"200"`, `"200,202"` or `"200-299"`."""
    codes: list[str] = []
    for part in str(matcher).split(","):
        low, _, high = part.strip().partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise BenchError(f"health check matcher {matcher!r}: codes, lists and ranges (200,202 or 200-299)")
        codes += [str(c) for c in range(int(low), int(high or low) + 1)]
    if len(codes) == 1:
        return f"http-check expect status {codes[0]}"
    return f"http-check expect rstatus {quoted('^(' + '|'.join(codes) + ')$')}"


def backend(name: str, group: dict) -> list[str]:
    algorithm = {"round_robin": "roundrobin", "least_outstanding_requests": "leastconn"}
    if group.get("algorithm", "round_robin") not in algorithm:
        raise BenchError(f"target group {name}: algorithm {group.get('algorithm')!r}")
    tls = " ssl verify none" if group.get("protocol") == "HTTPS" else ""
    out = [f"backend {backend_name(name)}", f"    balance {algorithm[group.get('algorithm', 'round_robin')]}",
           "    http-reuse always"]
    hc, check = group.get("health_check") or {}, ""
    if hc.get("enabled", True):
        port = hc.get("port")
        out += [f"    timeout check {hc.get('timeout', 5)}s", "    option httpchk",
                f"    http-check send meth GET uri {hc.get('path', '/')} ver HTTP/1.1 "
                "hdr User-Agent ELB-HealthChecker/2.0 hdr Connection close",
                f"    {matcher_check(hc.get('matcher', '200'))}"]
        check = (f" check inter {hc.get('interval', 30)}s rise {hc.get('healthy_threshold', 5)}"
                 f" fall {hc.get('unhealthy_threshold', 2)}"
                 + (f" port {port}" if isinstance(port, int) else "")
                 + (" check-ssl" if hc.get("protocol") == "HTTPS" else ""))
    for t in group.get("targets") or []:
        server = re.sub(r"[^A-Za-z0-9_.:-]", "_", str(t["id"]))
        out.append(f"    server {server} {t['ip']}:{t['port']}{tls}{check}")
    return out


# The access log: the ALB's fields in its order, as far as haproxy has them (type, time,
# elb, client:port, target:port, request/target/response times, elb/target status,
# bytes in/out, "request", "user agent", TLS cipher/protocol, target group, matched rule).
LOG_FORMAT = ("%[ssl_fc,iif(https,http)] %tr %f %ci:%cp %si:%sp %Tq %Tr %Ta %ST %ST %U %B "
              "%{+Q}r %{+Q}hr %sslc %sslv %b %[var(txn.rule)]")


def haproxy_config(cfg: dict, binds: dict[int, tuple[str, int]], pem: str | None) -> str:
    """haproxy's translation of the node configuration `cfg`: each listener a frontend
    bound where `binds` says (the ALB listener's port → (address, haproxy's port)), each
    target group a backend (the module docstring says how and where they differ)."""
    idle = int(cfg.get("idle_timeout", IDLE_TIMEOUT_S))
    out = [haproxy_head(connect_s=CONNECT_TIMEOUT_S, idle_s=idle, keep_alive_s=idle).rstrip("\n")]
    used = []
    for listener in cfg.get("listeners") or []:
        if listener.get("port") not in binds:
            raise BenchError(f"listener {listener.get('port')}: no haproxy bind given for it")
        address, port = binds[listener["port"]]
        out += frontend(listener, address, port, pem, cfg, LOG_FORMAT)
        for action in [r["action"] for r in listener.get("rules") or []] + [listener["default"]]:
            used += [g["name"] for g in action.get("target_groups") or []]
    groups = cfg.get("target_groups") or {}
    for name in dict.fromkeys(used):
        if name not in groups:
            raise BenchError(f"target group {name!r} is used by a rule but not defined")
        out += backend(name, groups[name])
    return "\n".join(out) + "\n"
