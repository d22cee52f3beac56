"""A rater over HTTP: the app's named endpoints through gradio_client, as scripts, load tests and the bench use them."""

from __future__ import annotations

from gradio_client import Client


class RatingClient:
    """One logged-in rater session. Every call returns the app's receipt: what happened, what is shown now."""

    def __init__(self, url: str, name: str, password: str, timeout: float = 60.0):
        self.name = name
        self.timeout = timeout
        self.client = Client(url, auth=(name, password), verbose=False, download_files=False)
        self.showing: str | None = None  # the sample on this client's screen, named in each click


    def start(self) -> dict:
        return self._call("/start")

    def thumbs_up(self) -> dict:
        return self._call("/thumbs_up", self.showing or "")

    def thumbs_down(self, reasons: list[str] | None = None) -> dict:
        return self._call("/thumbs_down", self.showing or "", reasons or [])

    def skip(self) -> dict:
        return self._call("/skip", self.showing or "")

    def undo(self) -> dict:
        return self._call("/undo", self.showing or "")

    def admin_export(self) -> str:
        return self.client.submit(api_name="/admin_export").result(timeout=self.timeout)

    def admin_summary(self) -> str:
        return self.client.submit(api_name="/admin_summary").result(timeout=self.timeout)

    def close(self) -> None:
        self.client.close()

    def _call(self, api_name: str, *args) -> dict:
        outputs = self.client.submit(*args, api_name=api_name).result(timeout=self.timeout)
        receipt = outputs[-1]
        self.showing = receipt["showing"]
        return receipt
