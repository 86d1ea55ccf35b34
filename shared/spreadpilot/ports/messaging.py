"""Outbound human messaging: email and chat. Every message carries an
idempotency key so a retried send never reaches a person twice."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime_type: str = "application/pdf"


@dataclass(frozen=True)
class Mail:
    key: str
    to: tuple[str, ...]
    subject: str
    text: str
    cc: tuple[str, ...] = ()
    attachments: tuple[Attachment, ...] = field(default=())


@dataclass(frozen=True)
class ChatMessage:
    key: str
    chat_id: str
    text: str


class DeliveryError(Exception):
    """The service refused or failed; retryable unless permanent is True."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after


class Mailer(Protocol):
    def send(self, mail: Mail) -> str:
        """Returns the provider's message id once the service accepted the mail."""
        ...


class Chat(Protocol):
    def send(self, message: ChatMessage) -> str: ...
