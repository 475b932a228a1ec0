"""The configuration example of the front end's contract (notes/apigw-config.md), shared
by the unit tests of dataplane/services/apigw."""

CONTRACT = {
    "version": 1, "lab": "demo", "region": "us-east-1", "account_id": "123456789012",
    "listeners": [{"address": "203.0.113.1", "port": 80, "tls": False},
                  {"address": "203.0.113.1", "port": 443, "tls": True}],
    "tls": {"cert": "/run/vpclab/demo/apigw.crt", "key": "/run/vpclab/demo/apigw.key"},
    "socket": "/run/vpclab/demo/apigw.sock", "log_dir": "/run/vpclab/demo/apigw",
    "account_throttle": {"rate": 10000, "burst": 5000},
    "links": {
        "rest-link": {"id": "vpclink-1", "type": "REST", "state": "AVAILABLE", "message": None,
                      "netns": None},
        "app-link": {"id": "vpclink-2", "type": "HTTP", "state": "AVAILABLE", "message": None,
                     "netns": "demo.apigw.app-link"},
        "bad-link": {"id": "vpclink-3", "type": "REST", "state": "FAILED",
                     "message": "NLB is already associated with another VPC Endpoint Service",
                     "netns": None}},
    "apis": [
        {"id": "a1b2c3d4e5", "name": "orders", "type": "REST", "stages": ["prod"], "throttle": None,
         "routes": [{"key": "ANY /orders/{proxy+}", "link": "rest-link",
                     "uri": "http://orders.shop.internal/{proxy}", "timeout_ms": 29000,
                     "host": "orders.shop.internal", "addresses": ["10.0.0.5", "10.0.16.5"],
                     "port": 80}]},
        {"id": "f6g7h8i9j0", "name": "catalog", "type": "HTTP", "stages": ["$default", "test"],
         "throttle": {"rate": 100, "burst": 50},
         "routes": [{"key": "GET /items/{id}", "link": "app-link", "uri": None, "timeout_ms": 30000,
                     "host": "web-nlb-0123456789abcdef.elb.us-east-1.amazonaws.com",
                     "addresses": ["10.0.1.6", "10.0.2.6"], "port": 80}]}]}
