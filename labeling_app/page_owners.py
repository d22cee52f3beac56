"""Which logged-in user each open page belongs to.

Gradio names every open page by a session hash the browser makes up, and keys by it the page's
state, its event stream (`queue/data?session_hash=`), its heartbeat and its events. Gradio ties no
hash to a user: whoever learns one could read that page's stream, an admin's export path included.
Here the first logged-in user to send a hash owns it, and HttpGuard refuses the requests of anyone
else that carry it.

A user owns at most `pages_per_user` hashes; a new one beyond that ends the user's oldest page
(`on_end`). So a user sending events from thousands of fresh hashes ends only their own pages, and
cannot fill Gradio's table of page states (10,000 at most, least recently used evicted first) to
evict another user's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable

DEFAULT_PAGES_PER_USER = 16  # tabs and reloads of one person; a page's state is small


class PageOwners:
    def __init__(self, pages_per_user: int = DEFAULT_PAGES_PER_USER, on_end: Callable[[str], None] = lambda page: None):
        self.pages_per_user, self.on_end = pages_per_user, on_end
        self._owner: dict[str, str] = {}
        self._pages: dict[str, OrderedDict[str, None]] = defaultdict(OrderedDict)  # a user's pages, oldest first
        self._lock = threading.Lock()

    def claim(self, page: str, user: str) -> bool:
        """Whether `user` may use the page `page`: theirs already, or nobody's until now (then it becomes theirs)."""
        with self._lock:
            owner = self._owner.get(page)
            if owner is not None:
                if owner == user:
                    self._pages[user].move_to_end(page)
                return owner == user
            self._owner[page] = user
            pages = self._pages[user]
            pages[page] = None
            ended = []
            while len(pages) > self.pages_per_user:
                oldest, _ = pages.popitem(last=False)
                del self._owner[oldest]
                ended.append(oldest)
        for oldest in ended:
            self.on_end(oldest)
        return True
