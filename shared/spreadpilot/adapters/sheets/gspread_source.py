"""The live signal sheet, read through gspread as the text the strategist sees.

Why this shape:
- FORMATTED_VALUE, never gspread's record helpers: those turn '486,5' or
  '24/11/2026' into numbers by their own rules; the domain parser
  (spreadpilot.domain.sheet) reads the raw text tolerantly instead.
- One values.get per read (no metadata call): one quota unit per poll; the
  metadata is fetched only to explain an unknown worksheet.
- Every HTTP call (token refresh included) has an explicit timeout; transient
  failures (429, 5xx, connection errors, timeouts) are retried a few times
  with capped, jittered exponential backoff, then surface as
  SignalSourceError; permanent ones (403, 404, unknown worksheet, bad key)
  fail at once with the setting to fix in the message.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import gspread
import requests
from google.auth.exceptions import RefreshError, TransportError
from gspread.exceptions import APIError
from gspread.utils import absolute_range_name
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
    wait_none,
)

from spreadpilot.ports.signal_source import SignalSourceError

log = logging.getLogger(__name__)

#: Read-only is all the poller needs: least privilege for the service account.
READONLY_SCOPES = ("https://www.googleapis.com/auth/spreadsheets.readonly",)
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_TRANSIENT_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    TransportError,
)


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        return exc.response.status_code in TRANSIENT_STATUS
    if isinstance(exc, RefreshError):
        return bool(getattr(exc, "retryable", False))
    return isinstance(exc, _TRANSIENT_ERRORS)


class GspreadSignalSource:
    """SignalSource over the Google Sheets API v4 (gspread's HTTP client).

    `client` is owned by this source: its timeout is set to `timeout` seconds
    (connect and read, also used for the token refresh). A read makes at most
    `attempts` calls; worst case about attempts * timeout + the backoff
    (defaults: 3 * 10 s + 1 s + 2 s), inside one poller run.
    """

    def __init__(
        self,
        client: gspread.Client,
        spreadsheet_id: str,
        worksheet: str,
        timeout: float = 10.0,
        *,
        attempts: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 8.0,
        account: str | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive seconds, got {timeout}")
        if attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {attempts}")
        if not spreadsheet_id.strip():
            raise ValueError("spreadsheet_id is empty: set SPREADPILOT_SHEET_ID")
        if not worksheet.strip():
            raise ValueError("worksheet is empty: set SPREADPILOT_SHEET_WORKSHEET")
        self._client = client
        self._client.set_timeout(timeout)
        self.spreadsheet_id = spreadsheet_id.strip()
        self.worksheet = worksheet
        self.timeout = timeout
        self._attempts = attempts
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._account = account

    @classmethod
    def from_service_account_info(
        cls,
        info: Mapping[str, Any],
        spreadsheet_id: str,
        worksheet: str,
        timeout: float = 10.0,
        **options: Any,
    ) -> GspreadSignalSource:
        """Production wiring: a service-account key (the JSON, as a dict)."""
        try:
            client = gspread.service_account_from_dict(dict(info), scopes=list(READONLY_SCOPES))
        except (ValueError, KeyError, TypeError) as exc:
            raise SignalSourceError(
                "the Sheets service-account key is not a valid service-account JSON "
                f"({type(exc).__name__}: {exc}); check the secret named by "
                "SPREADPILOT_SHEET_CREDENTIALS_SECRET"
            ) from None  # never chain: the message of a key parser may quote the key
        account = info.get("client_email")
        return cls(
            client,
            spreadsheet_id,
            worksheet,
            timeout,
            account=account if isinstance(account, str) else None,
            **options,
        )

    # ------------------------------------------------------------------ reading

    def read_rows(self) -> list[list[str]]:
        """Raw cell text, header first, ragged as the API returns it."""
        retrying = Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=(
                wait_exponential_jitter(
                    initial=self._backoff, max=self._max_backoff, jitter=self._backoff
                )
                if self._backoff > 0
                else wait_none()
            ),
            retry=retry_if_exception(_is_transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._read_once)
        except APIError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise self._explain(exc, attempts) from exc
        except RefreshError as exc:
            raise SignalSourceError(
                f"Google refused the service account's token request ({exc}); check the key "
                "in the secret named by SPREADPILOT_SHEET_CREDENTIALS_SECRET"
            ) from exc
        except _TRANSIENT_ERRORS as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise SignalSourceError(
                f"could not reach the Google Sheets API after {attempts} attempt(s) "
                f"(timeout {self.timeout:g} s each): {type(exc).__name__}: {exc}"
            ) from exc
        except requests.RequestException as exc:
            raise SignalSourceError(
                f"unexpected answer from the Google Sheets API: {type(exc).__name__}: {exc}"
            ) from exc

    def _read_once(self) -> list[list[str]]:
        body = self._client.http_client.values_get(
            self.spreadsheet_id,
            absolute_range_name(self.worksheet),
            params={"valueRenderOption": "FORMATTED_VALUE", "majorDimension": "ROWS"},
        )
        values = body.get("values", []) if isinstance(body, dict) else []
        if not isinstance(values, list):
            raise SignalSourceError(f"unexpected values.get answer: 'values' is {values!r}")
        return [
            [cell if isinstance(cell, str) else str(cell) for cell in row]
            for row in values
            if isinstance(row, list)
        ]

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning(
            "signal sheet read failed (attempt %d of %d), retrying: %s",
            state.attempt_number,
            self._attempts,
            exc,
            extra={"operation": "read_signal_sheet", "spreadsheet_id": self.spreadsheet_id},
        )

    # ------------------------------------------------------------------ errors

    def _explain(self, exc: APIError, attempts: int) -> SignalSourceError:
        status = exc.response.status_code
        message = str(exc.error.get("message", "")).strip()
        api_status = str(exc.error.get("status", "")).strip()
        said = f"{status} {api_status}: {message}".strip()
        sheet = f"spreadsheet {self.spreadsheet_id!r}"
        if status in TRANSIENT_STATUS:
            return SignalSourceError(
                f"Google Sheets API still failing after {attempts} attempt(s) ({said}); "
                "the next poll tries again"
            )
        if status == 404:
            return SignalSourceError(
                f"{sheet} not found ({said}); check SPREADPILOT_SHEET_ID: it is the part "
                "of the sheet's URL between /d/ and /edit"
            )
        if status == 403:
            lowered = message.lower()
            if "has not been used" in lowered or "disabled" in lowered:
                return SignalSourceError(
                    f"the Google Sheets API is not enabled for the service account's project "
                    f"({said}); enable sheets.googleapis.com in that project"
                )
            who = f" ({self._account})" if self._account else ""
            return SignalSourceError(
                f"no permission to read {sheet} ({said}); share the sheet with the "
                f"service account{who} as Viewer, and check SPREADPILOT_SHEET_ID"
            )
        if status == 401:
            return SignalSourceError(
                f"the Google Sheets API refused the credentials ({said}); check the "
                "service-account key in the secret named by SPREADPILOT_SHEET_CREDENTIALS_SECRET"
            )
        if status == 400 and "unable to parse range" in message.lower():
            return self._unknown_worksheet(said)
        return SignalSourceError(f"Google Sheets API error reading {sheet} ({said})")

    def _unknown_worksheet(self, said: str) -> SignalSourceError:
        """The API only says it cannot parse the range: list the real tabs."""
        try:
            meta = self._client.http_client.fetch_sheet_metadata(
                self.spreadsheet_id,
                params={"includeGridData": "false", "fields": "sheets.properties.title"},
            )
            titles = [
                str(s["properties"]["title"])
                for s in meta.get("sheets", [])
                if isinstance(s, dict) and "properties" in s
            ]
        except (APIError, requests.RequestException, KeyError, TypeError, TransportError) as exc:
            return SignalSourceError(
                f"worksheet {self.worksheet!r} not found in spreadsheet "
                f"{self.spreadsheet_id!r} ({said}; listing the worksheets failed too: {exc}); "
                "check SPREADPILOT_SHEET_WORKSHEET"
            )
        near = [t for t in titles if t.strip().casefold() == self.worksheet.strip().casefold()]
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        listed = ", ".join(repr(t) for t in titles) or "none"
        return SignalSourceError(
            f"worksheet {self.worksheet!r} not found in spreadsheet {self.spreadsheet_id!r}; "
            f"worksheets are: {listed}{hint}; check SPREADPILOT_SHEET_WORKSHEET"
        )


def from_service_account_info(
    info: Mapping[str, Any],
    spreadsheet_id: str,
    worksheet: str,
    timeout: float = 10.0,
    **options: Any,
) -> GspreadSignalSource:
    """Module-level spelling of GspreadSignalSource.from_service_account_info."""
    return GspreadSignalSource.from_service_account_info(
        info, spreadsheet_id, worksheet, timeout, **options
    )
