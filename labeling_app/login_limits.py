"""Failed-login limits: too many failures for one account, or from one address, within a window and
further attempts are refused until the oldest failure leaves the window.

An attempt counts as a failure from the moment it starts, and stops counting only when its
password turns out right: parallel guesses cannot all slip under the limit while their password
checks run. Failures count for any name typed, existing or not, so the limits say nothing about
which accounts exist. An attacker can lock an account for one window by failing on purpose: the
price of making password guessing slow.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque

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

    def attempt(self, name: str, address: str) -> str | None:
        """Start a login attempt: why it is refused without checking the password, or None (it now counts
        as a failure until `succeeded`)."""
        account, origin = f"account:{name}", f"address:{address}"
        with self._lock:
            if self._recent(account) >= self.per_account:
                reason = f"too many failed logins for this account; try again in {self._wait(account)} s"
            elif self._recent(origin) >= self.per_address:
                reason = f"too many failed logins from this address; try again in {self._wait(origin)} s"
            else:
                now = self.clock()
                self._failures[account].append(now)
                self._failures[origin].append(now)
                return None
        log.warning("login of %r from %s refused: %s", name, address, reason)
        return reason

    def succeeded(self, name: str, address: str) -> None:
        """The attempt's password was right: it is not a failure after all."""
        with self._lock:
            for key in (f"account:{name}", f"address:{address}"):
                if self._failures.get(key):
                    self._failures[key].pop()

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
