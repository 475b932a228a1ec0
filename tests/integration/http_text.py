"""Reading what curl printed with `-i`: the status, the headers (names lower-cased) and
the body, past any `100 Continue`. Shared by the HTTP services' root tests."""
from __future__ import annotations


def parse_response(text: str) -> tuple[int, dict[str, str], str]:
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    while head.startswith("HTTP/1.1 100"):
        head, _, body = body.partition("\n\n")
    lines = head.split("\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body
