"""Access logs: one file per API and stage, `<log_dir>/<api name>/<stage>.log` (the stage
`$default` is written as is), in AWS's example formats (AWS-FACTS-HTTP 1.8):

* REST, the CLF example of AWS's logging page, one line per request:

      $context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.httpMethod $context.resourcePath $context.protocol" $context.status $context.responseLength $context.requestId $context.extendedRequestId

  e.g. `10.9.0.2 - - [03/Dec/2026:12:00:00 +0000] "GET /orders/{proxy+} HTTP/1.1" 200 19 3c5e…-… Mc7UVioPPHcEKPA=`;
  caller and user are `-` (no IAM authorisation in vpclab), a request that matched no
  resource logs `-` as its resource path.
* HTTP APIs, the JSON example plus `integrationLatency` and `integrationErrorMessage`:

      {"requestId":"…","ip":"…","requestTime":"…","httpMethod":"GET","routeKey":"GET /items/{id}","status":"200","protocol":"HTTP/1.1","responseLength":"19","integrationLatency":"3","integrationErrorMessage":"-"}

  every value a string, as AWS's template quotes them; `-` where AWS has no value (no
  integration was called, no error). `integrationLatency` is in milliseconds.

`responseLength` is the payload's size (the body), `protocol` is always `HTTP/1.1`, and
`requestTime` is CLF time in UTC (`dd/MMM/yyyy:HH:mm:ss +0000`). Only requests that found
their API and stage are logged: AWS writes no log when there is no stage, and front-door
refusals (413, 431, 400) happen before an API is known. Files are opened in append mode
and written once per turn of the event loop (serving.TurnLog, which the ALB's log uses
too), so `tail -f` (and `vpclab logs -f`) sees each line as soon as its response has been
sent, for one write per file and turn rather than one per line.
"""
from __future__ import annotations

import json
import os
import time

from dataplane.services import serving
from dataplane.services.proxy.http import PerSecond

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _clf(second: int) -> str:
    t = time.gmtime(second)
    return (f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
            f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000")


# `03/Dec/2026:12:00:00 +0000`
clf_time = PerSecond(_clf)


def rest_line(ip: str, now: float, method: str, resource_path: str, status: int,
              length: int, request_id: str, extended_id: str) -> str:
    return (f'{ip} - - [{clf_time(now)}] "{method} {resource_path} HTTP/1.1" {status} '
            f"{length} {request_id} {extended_id}\n")


def http_line(request_id: str, ip: str, now: float, method: str, route_key: str, status: int,
              length: int, integration_latency_ms: int | None, error: str | None) -> str:
    """The JSON line; `route_key` is already a JSON string (quoted: `json_string`), the
    other values need no escaping (IDs, an address, an HTTP token, numbers) but the error
    message, which is escaped when there is one."""
    latency = "-" if integration_latency_ms is None else integration_latency_ms
    return (f'{{"requestId":"{request_id}","ip":"{ip}","requestTime":"{clf_time(now)}",'
            f'"httpMethod":"{method}","routeKey":{route_key},"status":"{status}",'
            f'"protocol":"HTTP/1.1","responseLength":"{length}",'
            f'"integrationLatency":"{latency}","integrationErrorMessage":'
            f'{json.dumps(error) if error else chr(34) + "-" + chr(34)}}}\n')


def json_string(text: str) -> str:
    """`text` as a JSON string, quotes included."""
    return json.dumps(text)


def log_path(log_dir: str, api_name: str, stage: str) -> str:
    return os.path.join(log_dir, api_name, f"{stage}.log")


def open_log(log_dir: str, api_name: str, stage: str) -> serving.TurnLog:
    """The log file of one API stage, made if missing, appended to once per turn."""
    return serving.open_log(log_path(log_dir, api_name, stage))
