"""The HTTP proxy engine that API Gateway's front end (dataplane/services/apigw) and, next, the
Application Load Balancer share: one proxy engine, two personalities.

The engine (engine.py) does the I/O: an asyncio `Protocol` server on uvloop, requests
and responses parsed by httptools, TLS by the standard library, and keep-alive backend
connections pooled per backend group (backend.py), opened in another network namespace
when a route asks for one. A *personality* (personality.py) decides everything a user
sees: which backend a request goes to, how the request and the response are rewritten,
and every error response, down to its status, headers and body. The engine never
writes a byte of its own to a client.
"""
