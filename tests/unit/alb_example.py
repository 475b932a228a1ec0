"""The ALB node's contract example (notes/alb-config.md), as the unit tests read it:
the coordinator's sample, plus two target groups it names (`api-tg` with no targets,
`canary-tg` with one) so that every forward in it resolves."""
import json

CONTRACT = json.loads(r'''
{
 "version": 1,
 "lab": "demo",
 "region": "us-east-1",
 "account_id": "123456789012",
 "vpc": "shop",
 "name": "web-alb",
 "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/web-alb/50dc6c495c0c9188",
 "dns_name": "internal-web-alb-1234567890.us-east-1.elb.amazonaws.com",
 "node": {
  "az": "us-east-1a",
  "subnet": "a",
  "address": "10.0.1.5"
 },
 "idle_timeout": 60,
 "xff_mode": "append",
 "xff_client_port": false,
 "socket": "/run/vpclab/demo/alb/shop.web-alb.a.sock",
 "access_log": "/run/vpclab/demo/alb/shop.web-alb.a.log",
 "listeners": [
  {
   "port": 80,
   "protocol": "HTTP",
   "tls": null,
   "rules": [
    {
     "priority": 10,
     "conditions": [
      {
       "field": "path-pattern",
       "values": [
        "/api/*"
       ]
      }
     ],
     "action": {
      "type": "forward",
      "target_groups": [
       {
        "name": "api-tg",
        "weight": 3
       },
       {
        "name": "canary-tg",
        "weight": 1
       }
      ]
     }
    },
    {
     "priority": 20,
     "conditions": [
      {
       "field": "host-header",
       "values": [
        "admin.*"
       ]
      }
     ],
     "action": {
      "type": "fixed-response",
      "status": 403,
      "content_type": "text/plain",
      "body": "no"
     }
    },
    {
     "priority": 30,
     "conditions": [
      {
       "field": "http-header",
       "name": "x-debug",
       "values": [
        "1"
       ]
      },
      {
       "field": "http-request-method",
       "values": [
        "POST"
       ]
      }
     ],
     "action": {
      "type": "redirect",
      "protocol": "#{protocol}",
      "host": "#{host}",
      "port": "#{port}",
      "path": "/debug",
      "query": "#{query}",
      "status": 301
     }
    },
    {
     "priority": 40,
     "conditions": [
      {
       "field": "query-string",
       "values": [
        {
         "key": "v",
         "value": "2*"
        },
        {
         "key": null,
         "value": "beta"
        }
       ]
      },
      {
       "field": "source-ip",
       "values": [
        "10.0.1.0/24"
       ]
      }
     ],
     "action": {
      "type": "forward",
      "target_groups": [
       {
        "name": "web-tg",
        "weight": 1
       }
      ]
     }
    }
   ],
   "default": {
    "type": "forward",
    "target_groups": [
     {
      "name": "web-tg",
      "weight": 1
     }
    ]
   }
  },
  {
   "port": 443,
   "protocol": "HTTPS",
   "tls": {
    "cert": "/run/vpclab/demo/alb.crt",
    "key": "/run/vpclab/demo/alb.key"
   },
   "rules": [],
   "default": {
    "type": "forward",
    "target_groups": [
     {
      "name": "web-tg",
      "weight": 1
     }
    ]
   }
  }
 ],
 "target_groups": {
  "web-tg": {
   "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/web-tg/73e2d6bc24d8a067",
   "protocol": "HTTP",
   "port": 8080,
   "algorithm": "round_robin",
   "targets": [
    {
     "id": "web1",
     "ip": "10.0.1.4",
     "port": 8080
    },
    {
     "id": "10.0.2.9",
     "ip": "10.0.2.9",
     "port": 8080
    }
   ],
   "health_check": {
    "enabled": true,
    "protocol": "HTTP",
    "port": 8080,
    "path": "/",
    "interval": 30,
    "timeout": 5,
    "healthy_threshold": 5,
    "unhealthy_threshold": 2,
    "matcher": "200"
   }
  },
  "api-tg": {
   "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/api-tg/1111111111111111",
   "port": 8080,
   "targets": []
  },
  "canary-tg": {
   "arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/canary-tg/2222222222222222",
   "port": 8080,
   "algorithm": "least_outstanding_requests",
   "targets": [
    {
     "id": "c1",
     "ip": "10.0.1.7",
     "port": 8080
    }
   ]
  }
 }
}
''')
