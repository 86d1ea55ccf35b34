"""Email through the `sendgrid` library (v3 Mail Send), host configurable so
tests point the real client at a local server.

SendGrid has no idempotency key. Each mail carries its delivery key in a header
and in custom_args (`spreadpilot_key`), and `find(key)` asks the Email Activity
API whether a mail with that key was accepted: that is how a sender that died
between the send and recording it learns the outcome instead of sending blind.
(The Email Activity API needs the key's "Email Activity" read scope and the
activity add-on; its feed lags the send by seconds to minutes.)
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from urllib.error import URLError

from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import (
    Attachment,
    Cc,
    CustomArg,
    Disposition,
    FileContent,
    FileName,
    FileType,
    Header,
    Mail,
)

from spreadpilot.ports.messaging import DeliveryError
from spreadpilot.ports.messaging import Mail as OutMail

#: 4xx answers that retrying cannot fix (bad payload, bad key, no permission).
_PERMANENT = {400, 401, 403, 404, 413}
#: The custom arg carrying the delivery key, searchable in the Email Activity API.
KEY_ARG = "spreadpilot_key"


class SendGridMailer:
    """Mailer port on SendGrid. SendGrid has no idempotency key: like Telegram a
    send with an unknown outcome is not repeated (`idempotent = False`); each
    mail carries its delivery key in a header and custom_args, which `find` uses."""

    idempotent = False

    def __init__(
        self,
        api_key: Callable[[], str],
        sender: str,
        host: str = "https://api.sendgrid.com",
        timeout: float = 10.0,
    ) -> None:
        self._api_key = api_key
        self._sender = sender
        self._host = host
        self._timeout = timeout

    def _client(self) -> SendGridAPIClient:
        client = SendGridAPIClient(api_key=self._api_key(), host=self._host)
        client.client.timeout = self._timeout
        return client

    def send(self, mail: OutMail) -> str:
        client = self._client()
        message = Mail(
            from_email=self._sender,
            to_emails=list(mail.to),
            subject=mail.subject,
            plain_text_content=mail.text,
        )
        # SendGrid refuses (400) an address repeated between to and cc
        seen = {a.lower() for a in mail.to}
        for address in mail.cc:
            if address.lower() not in seen:
                seen.add(address.lower())
                message.add_cc(Cc(address))
        for item in mail.attachments:
            message.add_attachment(
                Attachment(
                    FileContent(base64.b64encode(item.content).decode("ascii")),
                    FileName(item.filename),
                    FileType(item.mime_type),
                    Disposition("attachment"),
                )
            )
        message.header = Header("X-SpreadPilot-Key", mail.key)
        message.custom_arg = CustomArg(KEY_ARG, mail.key)
        try:
            response = client.send(message)
        except HTTPError as exc:
            raise _http_error("", exc) from exc
        except (URLError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"sendgrid unreachable: {exc}") from exc
        headers = response.headers
        return str(headers.get("X-Message-Id", "") if headers is not None else "") or "accepted"

    def find(self, key: str) -> str | None:
        """The message id of an accepted mail carrying `key` (Email Activity API),
        None if SendGrid has none; DeliveryError when it cannot be asked."""
        client = self._client()
        query = f"(unique_args['{KEY_ARG}']=\"{key}\")"
        try:
            response = client.client.messages.get(query_params={"query": query, "limit": 1})
        except HTTPError as exc:
            raise _http_error(" email activity", exc) from exc
        except (URLError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"sendgrid unreachable: {exc}") from exc
        try:
            messages = json.loads(response.body or b"{}").get("messages") or []
        except (ValueError, AttributeError) as exc:
            raise DeliveryError(f"sendgrid email activity: unreadable answer: {exc}") from exc
        if not messages:
            return None
        return str(messages[0].get("msg_id") or "accepted")


def _http_error(what: str, exc: HTTPError) -> DeliveryError:
    """A SendGrid HTTP error as a DeliveryError: 429 with its Retry-After,
    retryable 5xx, permanent 4xx (a retry cannot fix the request)."""
    status = int(getattr(exc, "status_code", 0) or 0)
    body = getattr(exc, "body", b"")
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    if status == 429:
        return DeliveryError(
            f"sendgrid{what} rate limited (429): {text[:200]}",
            retry_after=_retry_after(getattr(exc, "headers", None)),
        )
    return DeliveryError(
        f"sendgrid{what} answered {status}: {text[:300]}", permanent=status in _PERMANENT
    )


def _retry_after(headers: object) -> float | None:
    """Retry-After (seconds), as SendGrid and the fake send it."""
    if headers is None or not hasattr(headers, "get"):
        return None
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
