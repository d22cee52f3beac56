"""Failed-login limits: too many failures for one account, or from one address, within a window and
further attempts are refused until the oldest failure leaves the window.

Only a wrong password counts as a failure. So that guesses sent in parallel cannot all pass the
check before any failure is counted, attempts wait their turn (`turn`): one at a time per account,
and per address only as many at once as the address has failures left. Right passwords sent in
parallel all get in. Failures count for any name typed, existing or not, so the limits say nothing
about which accounts exist. An attacker can lock an account for one window by failing on purpose:
the price of making password guessing slow.
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
        self._account_turns: dict[str, asyncio.Lock] = {}
        self._waiting: Counter[str] = Counter()
        self._checking: Counter[str] = Counter()  # per address: attempts whose password is being checked
        self._address_room = asyncio.Condition()

    @asynccontextmanager
    async def turn(self, name: str, address: str) -> AsyncIterator[None]:
        """Wait (on the event loop: a waiting attempt holds no thread) until no other attempt for this account
        is being checked, and until the address's failures plus its attempts being checked are below its
        limit; then check the password inside the block."""
        account, origin = f"account:{name}", f"address:{address}"
        self._waiting[account] += 1
        try:
            async with self._account_turns.setdefault(account, asyncio.Lock()):
                async with self._address_room:
                    await self._address_room.wait_for(lambda: self._has_room(origin))
                    self._checking[origin] += 1
                try:
                    yield
                finally:
                    async with self._address_room:
                        self._checking[origin] -= 1
                        if not self._checking[origin]:
                            del self._checking[origin]
                        self._address_room.notify_all()
        finally:
            self._waiting[account] -= 1
            if not self._waiting[account]:  # names nobody is logging in with take no memory
                del self._waiting[account], self._account_turns[account]

    def _has_room(self, origin: str) -> bool:
        with self._lock:
            failures = self._recent(origin)
        # A full address goes on, to be refused; otherwise parallel attempts stay within its failures left.
        return failures >= self.per_address or failures + self._checking[origin] < self.per_address

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
