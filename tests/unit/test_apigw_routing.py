"""API Gateway's matching (dataplane/services/apigw/routing.py) as tables, per AWS-FACTS-HTTP 1.1-1.2:
HTTP API route priority, REST resource walking, stage selection, Host parsing."""
from __future__ import annotations

import pytest

from dataplane.services.apigw.routing import (HttpRoutes, MatchCache, RestRoutes, api_host, host_of, select_stage,
                                     split_path)

HTTP_KEYS = ["GET /pets", "GET /pets/dog/{id}", "GET /pets/{kind}/{id}", "ANY /pets/dog/{id}",
             "POST /pets/{proxy+}", "ANY /{proxy+}", "GET /pets/dog/1", "$default",
             "GET /a/{x}/{proxy+}", "GET /a/{proxy+}", "PUT /only/put", "ANY /pets/cat"]

# (method, path) -> the route key that wins (None: no route, 404)
HTTP_PRIORITY = [
    ("GET", "/pets", "GET /pets"),
    ("GET", "/pets/dog/2", "GET /pets/dog/{id}"),         # AWS's example: {id} is a full match
    ("GET", "/pets/dog/1", "GET /pets/dog/1"),            # a literal beats {id}
    ("DELETE", "/pets/dog/2", "ANY /pets/dog/{id}"),      # ANY: the methods not defined there
    ("GET", "/pets/cow/2", "GET /pets/{kind}/{id}"),
    ("POST", "/pets/cow/2", "POST /pets/{proxy+}"),       # no full match for POST: greedy
    ("POST", "/test/5", "ANY /{proxy+}"),                 # AWS's example: greedy ANY beats $default
    ("PATCH", "/pets", "ANY /{proxy+}"),                  # GET /pets doesn't take PATCH
    ("GET", "/a/b/c", "GET /a/{x}/{proxy+}"),             # the more specific greedy route
    ("GET", "/a/b", "GET /a/{proxy+}"),                   # {x}/{proxy+} needs two segments
    ("GET", "/only/put", "ANY /{proxy+}"),                # the literal path lacks GET: next one
    ("POST", "/pets/cat", "ANY /pets/cat"),
    ("GET", "/", "$default"),                             # a greedy variable needs a segment
    ("GET", "/pets/", "GET /pets"),                       # a trailing slash is ignored
    ("GET", "/p%65ts", "GET /pets"),                      # literals compare decoded
]


@pytest.mark.parametrize("method,path,key", HTTP_PRIORITY)
def test_http_api_route_priority(method: str, path: str, key: str) -> None:
    routes = HttpRoutes([(k, k) for k in HTTP_KEYS])
    match = routes.match(method, path)
    assert match is not None and match.key == key


def test_http_api_parameters_and_misses() -> None:
    routes = HttpRoutes([(k, k) for k in ["GET /items/{id}", "GET /files/{path+}"]])
    assert routes.match("GET", "/items/a%2Fb").params == {"id": "a%2Fb"}   # kept as sent
    assert routes.match("GET", "/files/x/y/z").params == {"path": "x/y/z"}
    assert routes.match("GET", "/files") is None
    assert routes.match("POST", "/items/1") is None
    assert routes.match("GET", "/items/1/more") is None


REST_KEYS = ["GET /", "GET /orders", "ANY /orders/{id}", "DELETE /orders/{id}",
             "GET /orders/{id}/lines", "ANY /{proxy+}", "GET /parent/{proxy+}",
             "GET /parent/{child}/{proxy+}", "GET /a/b"]

# (method, path) -> (route key, resource path, params), or None: 403 Missing Authentication Token
REST_TABLE = [
    ("GET", "/", ("GET /", "/", {})),
    ("GET", "/orders", ("GET /orders", "/orders", {})),
    ("GET", "/orders/7", ("ANY /orders/{id}", "/orders/{id}", {"id": "7"})),
    ("DELETE", "/orders/7", ("DELETE /orders/{id}", "/orders/{id}", {"id": "7"})),  # explicit beats ANY
    ("GET", "/orders/7/lines", ("GET /orders/{id}/lines", "/orders/{id}/lines", {"id": "7"})),
    ("POST", "/orders", None),                  # /orders has no POST, and no going back to {proxy+}
    ("GET", "/orders/7/other", None),           # below a specific resource: no proxy fallback
    ("GET", "/x/y/z", ("ANY /{proxy+}", "/{proxy+}", {"proxy": "x/y/z"})),
    ("GET", "/parent/q", ("GET /parent/{proxy+}", "/parent/{proxy+}", {"proxy": "q"})),
    ("GET", "/parent/c/d/e", ("GET /parent/{child}/{proxy+}", "/parent/{child}/{proxy+}",
                              {"child": "c", "proxy": "d/e"})),
    ("GET", "/a/c", None),                      # /a exists (parent of /a/b): no proxy fallback
    ("GET", "/a", None),                        # a resource without methods
]


@pytest.mark.parametrize("method,path,expected", REST_TABLE)
def test_rest_resources(method: str, path: str, expected) -> None:
    routes = RestRoutes([(k, k) for k in REST_KEYS])
    match = routes.match(method, path)
    if expected is None:
        assert match is None
    else:
        assert (match.key, match.resource, match.params) == expected


def test_rest_proxy_needs_a_segment() -> None:
    assert RestRoutes([("ANY /{proxy+}", 1)]).match("GET", "/") is None


STAGES = [
    ("REST", {"prod"}, "/prod/orders/1", ("prod", "/orders/1")),
    ("REST", {"prod"}, "/prod", ("prod", "/")),
    ("REST", {"prod"}, "/beta/orders", None),
    ("REST", {"prod"}, "/", None),
    ("HTTP", {"$default", "test"}, "/test/items/1", ("test", "/items/1")),
    ("HTTP", {"$default", "test"}, "/items/1", ("$default", "/items/1")),
    ("HTTP", {"$default", "test"}, "/$default/items", ("$default", "/$default/items")),
    ("HTTP", {"test"}, "/items/1", None),
    ("HTTP", {"test"}, "/test", ("test", "/")),
]


@pytest.mark.parametrize("api_type,stages,path,expected", STAGES)
def test_stage_selection(api_type, stages, path, expected) -> None:
    assert select_stage(api_type, frozenset(stages), path) == expected


def test_hosts_and_paths() -> None:
    assert api_host("abc", "us-east-1") == "abc.execute-api.us-east-1.amazonaws.com"
    assert host_of("ABC.execute-api.us-east-1.amazonaws.com:443") == \
        "abc.execute-api.us-east-1.amazonaws.com"
    assert host_of(None) == "" and host_of("[::1]:80") == "[::1]"
    assert split_path("/") == [] and split_path("/a//b/") == ["a", "", "b"]


def test_the_match_cache_answers_as_the_routes_and_stays_bounded(monkeypatch) -> None:
    routes = HttpRoutes([(k, k) for k in HTTP_KEYS])
    cache = MatchCache(routes)
    monkeypatch.setattr(MatchCache, "SIZE", 8)
    for _ in range(2):
        for method, path, key in HTTP_PRIORITY:
            assert cache.match(method, path).key == key
            assert len(cache.seen) <= 8
    assert cache.match("GET", "/pets") is cache.match("GET", "/pets")
    assert MatchCache(RestRoutes([("GET /a", 1)])).match("GET", "/b") is None
