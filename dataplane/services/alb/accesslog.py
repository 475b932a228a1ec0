"""The node's access log: one line per request in AWS's ALB access-log format, written to
the config's `access_log` once per turn of the event loop (serving.TurnLog: `tail -f`
sees each request within the turn its response left in, for one write() per turn rather
than one per request). Fields, space-separated, quoted where AWS quotes them:

    type time elb client:port target:port request_processing_time target_processing_time
    response_processing_time elb_status_code target_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id"
    "domain_name" "chosen_cert_arn" matched_rule_priority request_creation_time
    "actions_executed" "redirect_url" "error_reason" "target:port_list"
    "target_status_code_list" "classification" "classification_reason"

e.g.

    http 2026-12-03T12:00:00.123456Z app/web-alb/50dc6c495c0c9188 10.0.1.10:41234 10.0.2.20:8080 0.000 0.002 0.000 200 200 98 310 "GET http://web.example.com:80/api/x?a=1 HTTP/1.1" "curl/7.88.1" - - arn:aws:elasticloadbalancing:…:targetgroup/web-tg/73e2d6bc24d8a067 "Root=1-…" "-" "-" 10 2026-12-03T12:00:00.121000Z "forward" "-" "-" "10.0.2.20:8080" "200" "-" "-"

As AWS writes them: `type` is `http` or `https`; `time` is when the response was sent,
`request_creation_time` when the request arrived (ISO 8601, UTC, microseconds); the
three processing times are seconds with millisecond precision, `-1` when the request
never reached a target (or the target never answered); `target:port`,
`target_status_code` and `target_group_arn` are `-` without a target; `request` is
`METHOD scheme://host:port/path?query HTTP/1.1` with the listener's port; `-` for no
user agent, no TLS (cipher and protocol as OpenSSL names them, e.g.
`ECDHE-ECDSA-AES128-GCM-SHA256 TLSv1.2`), no domain (`domain_name` is the SNI name an
HTTPS client sent), no certificate ARN (the lab's certificate has none); `matched_rule_priority` is the rule's priority, 0
for the default action, `-` when no rule was evaluated (a request refused before
routing); `actions_executed` is `forward`, `fixed-response` or `redirect`, `-` before
routing. `error_reason` and the classification fields (desync mitigation) are `-`; the
newer trailing `conn_trace_id` field is not written. A request refused before its head was
complete (400, 408 on a stalled head) has no client address known to the personality:
its line says `-` there and `"- - -"` as the request.
"""
from __future__ import annotations

import time

from dataplane.services.proxy.http import PerSecond


def _second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))


# one cache per field: a request's creation time and its log time alternate, and each
# stays in one second for many requests
_sent_second = PerSecond(_second)
_created_second = PerSecond(_second)


def seconds(value: float | None) -> str:
    """`0.002` (seconds, millisecond precision; a clock step backwards is 0), `-1` for none."""
    return "-1" if value is None else "%.3f" % (value if value > 0.0 else 0.0)


def quoted(text: str | None) -> str:
    """`"text"`, with `"` and `\\` escaped; `"-"` for none."""
    if not text:
        return '"-"'
    if '"' in text or "\\" in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + text + '"'


# the fields in order; every %s but the two times' seconds is filled by `line`
_LINE = ('%s %s.%06dZ %s %s %s %s %s %s %d %s %d %d %s %s %s %s %s %s %s "-" %s %s.%06dZ %s %s '
         '"-" %s "%s" "-" "-"\n')


def line(type: str, now: float, elb: str, client: str, target: str | None,
         request_time: float | None, target_time: float | None, response_time: float | None,
         elb_status: int, target_status: int | None, received: int, sent: int,
         request: str, user_agent: str | None, tls: tuple[str, str, str | None] | None,
         target_group_arn: str | None, trace: str | None, rule_priority: int | None,
         created: float, action: str | None, redirect_url: str | None) -> str:
    """One line, the arguments in the fields' order. Callers pass them by position: a call
    with 21 keywords costs about ten times one with 21 positions, and this runs once per
    request."""
    cipher, protocol, domain = tls if tls else ("-", "-", None)
    status = "-" if target_status is None else target_status
    return _LINE % (
        type, _sent_second(now), (now % 1.0) * 1e6, elb, client, target or "-",
        seconds(request_time), seconds(target_time), seconds(response_time), elb_status,
        status, received, sent, quoted(request), quoted(user_agent), cipher, protocol,
        target_group_arn or "-", quoted(trace), quoted(domain),
        "-" if rule_priority is None else rule_priority, _created_second(created),
        (created % 1.0) * 1e6, quoted(action), quoted(redirect_url),
        '"-"' if target is None else '"' + target + '"', status)


# a forwarded request answered by its target, the line of nearly every request: the fields
# that are constant for it ("forward", no redirect, no error) are in the text, the times
# formatted by `%.3f` in the same `%`
_FORWARDED = ('%s %s.%06dZ %s %s %s %.3f %.3f %.3f %d %d %d %d %s %s %s %s %s %s %s "-" %d '
              '%s.%06dZ "forward" "-" "-" "%s" "%d" "-" "-"\n')


def forwarded(type: str, now: float, elb: str, client: str, target: str, request_time: float,
              target_time: float, response_time: float, status: int, received: int, sent: int,
              request: str, user_agent: str | None, tls: tuple[str, str, str | None] | None,
              target_group_arn: str, trace: str, rule_priority: int, created: float) -> str:
    """`line(...)` of a request its target answered (status: the target's, passed on):
    the same text, made with a third of the Python steps (it runs once per request)."""
    cipher, protocol, domain = tls if tls else ("-", "-", None)
    return _FORWARDED % (
        type, _sent_second(now), (now % 1.0) * 1e6, elb, client, target,
        request_time if request_time > 0.0 else 0.0, target_time if target_time > 0.0 else 0.0,
        response_time if response_time > 0.0 else 0.0, status, status, received, sent,
        '"' + request + '"' if '"' not in request and "\\" not in request else quoted(request),
        quoted(user_agent), cipher, protocol, target_group_arn,
        '"' + trace + '"' if '"' not in trace and "\\" not in trace else quoted(trace),
        quoted(domain), rule_priority, _created_second(created), (created % 1.0) * 1e6,
        target, status)

