"""Email through the `sendgrid` library (v3 Mail Send), host configurable so
tests point the real client at a local server."""

from __future__ import annotations

from collections.abc import Callable
from urllib.error import URLError

from python_http_client.exceptions import HTTPError  # type: ignore[import-untyped]
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import CustomArg, Header, Mail

from spreadpilot.ports.messaging import DeliveryError
from spreadpilot.ports.messaging import Mail as OutMail

#: 4xx answers that retrying cannot fix (bad payload, bad key, no permission).
_PERMANENT = {400, 401, 403, 404, 413}


class SendGridMailer:
    """Mailer port on SendGrid. SendGrid has no idempotency key: like Telegram a
    send with an unknown outcome is not repeated (`idempotent = False`); each
    mail carries its delivery key in a header and custom_args for tracing."""

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

    def send(self, mail: OutMail) -> str:
        client = SendGridAPIClient(api_key=self._api_key(), host=self._host)
        client.client.timeout = self._timeout
        message = Mail(
            from_email=self._sender,
            to_emails=list(mail.to),
            subject=mail.subject,
            plain_text_content=mail.text,
        )
        message.header = Header("X-SpreadPilot-Key", mail.key)
        message.custom_arg = CustomArg("spreadpilot_key", mail.key)
        try:
            response = client.send(message)
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            body = getattr(exc, "body", b"")
            text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
            if status == 429:
                raise DeliveryError(
                    f"sendgrid rate limited (429): {text[:200]}",
                    retry_after=_retry_after(getattr(exc, "headers", None)),
                ) from exc
            raise DeliveryError(
                f"sendgrid answered {status}: {text[:300]}", permanent=status in _PERMANENT
            ) from exc
        except (URLError, TimeoutError, OSError) as exc:
            raise DeliveryError(f"sendgrid unreachable: {exc}") from exc
        headers = response.headers
        return str(headers.get("X-Message-Id", "") if headers is not None else "") or "accepted"


def _retry_after(headers: object) -> float | None:
    """Retry-After (seconds), as SendGrid and the fake send it."""
    if headers is None or not hasattr(headers, "get"):
        return None
    value = headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
