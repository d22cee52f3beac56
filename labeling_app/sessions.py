"""Login sessions that end when their account changes, or after a while without a request.

Gradio keeps a table of session tokens and the user each belongs to, filled at login and read on
every request (pages, API calls, files). This table takes its place and checks, at each read,
that the account still exists with the password and admin flag it had at login, and that the
session was used within `idle_seconds`; otherwise the session ends there and the request is
anonymous (refused).
"""

from __future__ import annotations

import logging
import time

from labeling_app.accounts import Accounts

log = logging.getLogger(__name__)


class LiveSessions(dict):
    def __init__(self, accounts: Accounts, idle_seconds: float, clock=time.monotonic):
        super().__init__()
        self.accounts, self.idle_seconds, self.clock = accounts, idle_seconds, clock
        self.account_at_login: dict[str, tuple] = {}
        self.last_seen: dict[str, float] = {}

    def __setitem__(self, token: str, user: str) -> None:
        super().__setitem__(token, user)
        self.account_at_login[token] = self.accounts.fingerprint(user)
        self.last_seen[token] = self.clock()

    def __delitem__(self, token: str) -> None:
        super().__delitem__(token)
        self.account_at_login.pop(token, None)
        self.last_seen.pop(token, None)

    def get(self, token, default=None):
        user = super().get(token)
        if user is None:
            return default
        now = self.clock()
        if now - self.last_seen[token] > self.idle_seconds:
            reason = "idle too long"
        elif self.accounts.fingerprint(user) != self.account_at_login[token]:
            reason = "account removed or changed"
        else:
            self.last_seen[token] = now
            return user
        log.info("session of %s ended: %s", user, reason)
        self.pop(token)
        return default

    def pop(self, token, *default):
        self.account_at_login.pop(token, None)
        self.last_seen.pop(token, None)
        return super().pop(token, *default)
