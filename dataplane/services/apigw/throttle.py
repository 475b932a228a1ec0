"""Throttling: token buckets, as API Gateway describes its own (AWS-FACTS-HTTP 1.3).

A bucket holds at most `burst` tokens and gains `rate` a second; a request takes one, and
a request that finds none is answered 429 Too Many Requests. Each stage of an API with a
`throttle` has its own bucket (the API's setting applies to each stage, as a stage's
default route throttling does), and every API of the lab shares the account's bucket
(10,000 a second, burst 5,000 unless the configuration says otherwise): the account
limit is per Region and shared by all APIs. A request takes its stage's token first and
the account's only if it got the stage's, so a stage throttled on its own never drains
the account. Buckets start full. AWS calls its throttles "best-effort targets"; these
are exact, on the loop's clock, which is what a lab's tests want.
"""
from __future__ import annotations


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = float(rate)
        self.burst = float(burst)
        self.tokens = float(burst)
        self.last = now

    def take(self, now: float) -> bool:
        """Takes a token at time `now` (seconds); False if there is none."""
        tokens = self.tokens + (now - self.last) * self.rate
        self.last = now
        if tokens > self.burst:
            tokens = self.burst
        if tokens >= 1.0:
            self.tokens = tokens - 1.0
            return True
        self.tokens = tokens
        return False


def admit(stage: TokenBucket | None, account: TokenBucket, now: float) -> bool:
    """Whether a request passes its stage's bucket (if any), then the account's."""
    if stage is not None and not stage.take(now):
        return False
    return account.take(now)
