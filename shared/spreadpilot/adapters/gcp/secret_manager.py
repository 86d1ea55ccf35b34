"""The Secrets port on Google Secret Manager, over its REST transport.

Why it looks like this:

* REST (HTTP/1.1 through `requests`), not gRPC: a function reads a secret or
  two per instance, so there is no channel worth keeping, nothing that breaks
  across fork(), and a local HTTP server can stand in for the service in tests.
* Every call is bounded: a timeout on the request and a retry (of 503 and 429
  only) whose deadline is that same timeout. The
  client's default retry would keep going for 60 s.
* The latest enabled version is read, then kept for `cache_seconds`, so a
  rotated value (a new version) reaches warm instances within that time.
* A secret that does not exist, has no enabled version or is not readable by
  this component's service account raises MissingSecret naming the secret and
  the fix; a transient failure raises SecretsUnavailable (the caller's retry,
  e.g. Pub/Sub redelivery, tries again). Values are registered for masking in
  every log line (as they are and as JSON escapes them) before they are returned.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import requests
from google.api_core import exceptions as gexc
from google.api_core import retry as retries

from spreadpilot.platform.logs import register_secret
from spreadpilot.ports.secrets import MissingSecret

if TYPE_CHECKING:
    from google.auth.credentials import Credentials

#: Secret ids Secret Manager accepts.
_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
CATALOGUE = "shared/spreadpilot/platform/secrets.yaml"


class SecretsUnavailable(Exception):
    """Secret Manager did not answer in time or failed transiently; retrying may help."""


class SecretManagerSecrets:
    """Secrets of `project` from Secret Manager; each read is bounded by `timeout` seconds."""

    def __init__(
        self,
        project: str,
        *,
        timeout: float = 10.0,
        cache_seconds: float = 300.0,
        endpoint: str | None = None,
        credentials: Credentials | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.project = project
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._endpoint = endpoint
        self._credentials = credentials
        self._monotonic = monotonic
        self._client: Any = None
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._retry = retries.Retry(
            predicate=retries.if_exception_type(gexc.ServiceUnavailable, gexc.TooManyRequests),
            initial=0.2,
            maximum=2.0,
            multiplier=2.0,
            timeout=timeout,
        )

    def get(self, name: str) -> str:
        if not _SECRET_ID.fullmatch(name):
            raise ValueError(f"{name!r} is not a secret id (letters, digits, '-' and '_')")
        now = self._monotonic()
        with self._lock:
            cached = self._cache.get(name)
        if cached is not None and now - cached[1] < self.cache_seconds:
            return cached[0]
        value = self._access(name)
        register_secret(value)
        # JSON log lines carry the value escaped (a service-account key has quotes
        # and newlines): mask that form too.
        register_secret(json.dumps(value, ensure_ascii=False)[1:-1])
        with self._lock:
            self._cache[name] = (value, now)
        return value

    def _access(self, name: str) -> str:
        path = f"projects/{self.project}/secrets/{name}/versions/latest"
        try:
            response = self._service().access_secret_version(
                request={"name": path}, retry=self._retry, timeout=self.timeout
            )
        except gexc.NotFound:
            raise MissingSecret(
                f"secret '{name}' has no enabled version in project {self.project} (or does "
                f"not exist): add its value with `gcloud secrets versions add {name} "
                f"--project={self.project} --data-file=FILE`; if it is new, declare it in "
                f"{CATALOGUE} and run terraform apply first"
            ) from None
        except gexc.Forbidden:  # PERMISSION_DENIED (403)
            raise MissingSecret(
                f"this component's service account may not read secret '{name}' in project "
                f"{self.project}: list the component among the secret's readers in {CATALOGUE} "
                "and run terraform apply"
            ) from None
        except (gexc.GoogleAPIError, requests.RequestException) as exc:
            raise SecretsUnavailable(
                f"reading secret '{name}' from Secret Manager failed within {self.timeout:g} s: "
                f"{exc}"
            ) from exc
        data: bytes = response.payload.data
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            raise MissingSecret(
                f"secret '{name}' is not UTF-8 text: store the value as text "
                "(base64-encode binary data)"
            ) from None
        if not value:
            raise MissingSecret(
                f"secret '{name}' is empty in project {self.project}: add a version with its "
                f"value (`gcloud secrets versions add {name} --data-file=FILE`)"
            )
        return value

    def _service(self) -> Any:
        """The generated client, created on first use (it imports a large package)."""
        with self._lock:
            if self._client is None:
                from google.api_core.client_options import ClientOptions
                from google.cloud import secretmanager

                options = ClientOptions(api_endpoint=self._endpoint) if self._endpoint else None
                self._client = secretmanager.SecretManagerServiceClient(
                    credentials=self._credentials, transport="rest", client_options=options
                )
            return self._client
