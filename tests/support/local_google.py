"""Point a real gspread client at a local HTTP server.

gspread builds absolute https://sheets.googleapis.com URLs, so the session's
adapter rewrites Google API hosts to the local base URL, and refuses every
other host: a test can never reach the internet by mistake.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import gspread
import requests
from requests.adapters import HTTPAdapter

GOOGLE_API_ORIGINS = ("https://sheets.googleapis.com", "https://www.googleapis.com")


class RewriteHostAdapter(HTTPAdapter):
    """Sends https://<google api host>/path?query to <base_url>/path?query."""

    def __init__(self, base_url: str) -> None:
        super().__init__(max_retries=0)
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        url = request.url or ""
        parts = urlsplit(url)
        local = self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")
        request.url = local
        return super().send(request, **kwargs)


class _RefuseAdapter(HTTPAdapter):
    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        raise requests.ConnectionError(f"test session refuses non-local URL {request.url}")


def local_session(base_url: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment for 127.0.0.1
    session.mount("https://", _RefuseAdapter())
    session.mount("http://", _RefuseAdapter())
    adapter = RewriteHostAdapter(base_url)
    for origin in GOOGLE_API_ORIGINS:
        session.mount(origin + "/", adapter)
    return session


def local_gspread_client(base_url: str) -> gspread.Client:
    """A real gspread.Client whose Google API calls reach `base_url`."""
    return gspread.Client(auth=None, session=local_session(base_url))  # type: ignore[arg-type]
