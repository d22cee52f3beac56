"""Failed-login limits: too many failures for one account, or from one address, within a window and
further attempts are refused until the oldest failure leaves the window.

Only a wrong password counts as a failure. So that guesses sent in parallel cannot all pass the
check before any failure is counted, a password is checked only while no other attempt for the same
account or from the same address is being checked (`turn`): parallel attempts wait their turn, and
right passwords sent in parallel all get in. Failures count for any name typed, existing or not, so
the limits say nothing about which accounts exist. An attacker can lock an account for one window by
failing on purpose: the price of making password guessing slow.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

log = logging.getLogger(__name__)

DEFAULT_WINDOW_SECONDS = 15 * 60
DEFAULT_PER_ACCOUNT = 5
DEFAULT_PER_ADDRESS = 20


class LoginLimits:
    def __init__(self, per_account: int = DEFAULT_PER_ACCOUNT, per_address: int = DEFAULT_PER_ADDRESS,
                 window_seconds: float = DEFAULT_WINDOW_SECONDS, clock=time.monotonic):
        self.per_account, self.per_address, self.window_seconds, self.clock = per_account, per_address, window_seconds, clock
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._turns: dict[str, asyncio.Lock] = {}
        self._waiting: Counter[str] = Counter()

    @asynccontextmanager
    async def turn(self, name: str, address: str) -> AsyncIterator[None]:
        """Wait until no other attempt for this account or from this address is being checked (on the
        event loop: a waiting attempt holds no thread)."""
        keys = sorted({f"account:{name}", f"address:{address}"})  # one order, so two turns never wait on each other
        for key in keys:
            self._waiting[key] += 1
        try:
            for key in keys:
                await self._turns.setdefault(key, asyncio.Lock()).acquire()
            try:
                yield
            finally:
                for key in keys:
                    self._turns[key].release()
        finally:
            for key in keys:
                self._waiting[key] -= 1
                if not self._waiting[key]:  # names and addresses nobody is logging in with take no memory
                    del self._waiting[key], self._turns[key]

    def refusal(self, name: str, address: str) -> str | None:
        """Why an attempt is refused without checking its password, or None."""
        account, origin = f"account:{name}", f"address:{address}"
        with self._lock:
            if self._recent(account) >= self.per_account:
                reason = f"too many failed logins for this account; try again in {self._wait(account)} s"
            elif self._recent(origin) >= self.per_address:
                reason = f"too many failed logins from this address; try again in {self._wait(origin)} s"
            else:
                return None
        log.warning("login of %r from %s refused: %s", name, address, reason)
        return reason

    def failed(self, name: str, address: str) -> None:
        """The attempt's password was wrong."""
        with self._lock:
            now = self.clock()
            for key in (f"account:{name}", f"address:{address}"):
                self._failures[key].append(now)

    def _recent(self, key: str) -> int:
        failures = self._failures.get(key)
        while failures and failures[0] <= self.clock() - self.window_seconds:
            failures.popleft()
        if not failures:
            self._failures.pop(key, None)  # names and addresses without recent failures take no memory
            return 0
        return len(failures)

    def _wait(self, key: str) -> int:
        return max(1, round(self._failures[key][0] + self.window_seconds - self.clock()))
