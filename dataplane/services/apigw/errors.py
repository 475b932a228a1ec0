"""Every response API Gateway makes itself: one table, `GATEWAY_ERRORS`, from a gateway
error to its REST form (status, body, `x-amzn-ErrorType`) and its HTTP API form (status,
body), exactly as AWS-FACTS-HTTP 1.3 records them, and `ENGINE_ERRORS`, from each of the
proxy engine's failure kinds to a gateway error.

| error | REST | HTTP API |
|---|---|---|
| `forbidden`: unknown API id or host | 403 `{"message":"Forbidden"}` ForbiddenException | the same |
| `missing_token` / `not_found`: no stage, resource, route or method | 403 `{"message":"Missing Authentication Token"}` MissingAuthenticationTokenException | 404 `{"message":"Not Found"}` |
| `throttled` | 429 `{"message":"Too Many Requests"}` TooManyRequestsException | 429 the same body |
| `link_failed`: the route's VPC link is not AVAILABLE | 500 `{"message": "Internal server error"}` InternalServerErrorException | 500 `{"message":"Internal Server Error"}` |
| `integration_failure`: refused, reset, closed, connect timeout | 500 as above | 503 `{"message":"Service Unavailable"}` |
| `bad_integration_response`: junk or a body over 10 MB | 500 as above | 500 `{"message":"Internal Server Error"}` |
| `integration_timeout` | 504 `{"message": "Endpoint request timed out"}` InternalServerErrorException | 503 `{"message":"Service Unavailable"}` |

(REST's 500 and 504 bodies have a space after the colon, as AWS's do.) Rejected at the
front door, before an API is chosen, the same for both types and without request IDs:

* `body_too_large`: 413, `Content-Type: text; charset=utf-8`, body
  `HTTP content length exceeded 10485760 bytes.` (AWS's capture, byte for byte);
* `head_too_large`: **431** `{"message":"Request Header Fields Too Large"}` — vpclab's
  choice: AWS documents the 10,240-byte limit (REST: header values; HTTP APIs: request
  line and headers), not the answer; vpclab counts request line and header lines as
  sent, for both types;
* `bad_request` (not HTTP/1.x) and `unsupported_transfer_coding` (a Transfer-Encoding
  other than chunked): 400 `{"message":"Bad Request"}` — a choice;
* a client that trickles its request (slowloris) or leaves is closed without an answer.

The connection is closed after the front-door answers. Choices where AWS is silent: the
error types of 429 (`TooManyRequestsException`), 500 and 504
(`InternalServerErrorException`); a connect timeout (10 s) that comes before the route's
timeout is an integration failure (REST 500), after it a timeout (REST 504); an
integration's malformed response is REST 500, HTTP 500.
"""
from __future__ import annotations

from .headers import http_date, status_line

REST_500 = b'{"message": "Internal server error"}'
HTTP_500 = b'{"message":"Internal Server Error"}'
HTTP_503 = b'{"message":"Service Unavailable"}'
TOO_MANY = b'{"message":"Too Many Requests"}'
BODY_TOO_LARGE = b"HTTP content length exceeded 10485760 bytes."

# error: ((REST status, body, x-amzn-ErrorType), (HTTP API status, body))
GATEWAY_ERRORS: dict[str, tuple[tuple[int, bytes, str], tuple[int, bytes]]] = {
    "forbidden": ((403, b'{"message":"Forbidden"}', "ForbiddenException"),
                  (403, b'{"message":"Forbidden"}')),
    "missing_token": ((403, b'{"message":"Missing Authentication Token"}',
                       "MissingAuthenticationTokenException"),
                      (404, b'{"message":"Not Found"}')),
    "throttled": ((429, TOO_MANY, "TooManyRequestsException"), (429, TOO_MANY)),
    "link_failed": ((500, REST_500, "InternalServerErrorException"), (500, HTTP_500)),
    "integration_failure": ((500, REST_500, "InternalServerErrorException"), (503, HTTP_503)),
    "bad_integration_response": ((500, REST_500, "InternalServerErrorException"),
                                 (500, HTTP_500)),
    "integration_timeout": ((504, b'{"message": "Endpoint request timed out"}',
                             "InternalServerErrorException"), (503, HTTP_503)),
}

# the proxy engine's kinds (dataplane/services/proxy/personality.py ERRORS) after a Forward
ENGINE_ERRORS = {
    "connect_failed": "integration_failure",
    "connect_timeout": "integration_failure",
    "backend_closed": "integration_failure",
    "backend_bad_response": "bad_integration_response",
    "response_too_large": "bad_integration_response",
    "timeout": "integration_timeout",
}

# the engine's kinds before routing: (status, content type, body); None: close silently
FRONT_DOOR: dict[str, tuple[int, str, bytes] | None] = {
    "body_too_large": (413, "text; charset=utf-8", BODY_TOO_LARGE),
    "head_too_large": (431, "application/json", b'{"message":"Request Header Fields Too Large"}'),
    "bad_request": (400, "application/json", b'{"message":"Bad Request"}'),
    "unsupported_transfer_coding": (400, "application/json", b'{"message":"Bad Request"}'),
    "read_timeout": None,
    "client_closed": None,
}


def rest_error(error: str, keep_alive: bool, request_id: str, extended_id: str,
               now: float) -> tuple[int, bytes]:
    """(status, response bytes) of gateway error `error` on a REST API."""
    status, body, error_type = GATEWAY_ERRORS[error][0]
    return status, (
        f"{status_line(status)}Date: {http_date(now)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n"
        f"x-amzn-RequestId: {request_id}\r\nx-amzn-ErrorType: {error_type}\r\n"
        f"x-amz-apigw-id: {extended_id}\r\n\r\n").encode() + body


def http_error(error: str, keep_alive: bool, request_id: str, now: float) -> tuple[int, bytes]:
    """(status, response bytes) of gateway error `error` on an HTTP API."""
    status, body = GATEWAY_ERRORS[error][1]
    return status, (
        f"{status_line(status)}Date: {http_date(now)}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n"
        f"apigw-requestid: {request_id}\r\n\r\n").encode() + body


def front_door(kind: str, now: float) -> bytes | None:
    """The answer to a request refused before an API is chosen (None: close silently)."""
    row = FRONT_DOOR.get(kind)
    if row is None:
        return None
    status, content_type, body = row
    return (f"{status_line(status)}Date: {http_date(now)}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body
