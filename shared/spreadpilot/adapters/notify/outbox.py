"""Embedded channels: one file per delivery under DATA_DIR/outbox/telegram and
DATA_DIR/outbox/email, named by the delivery key. Writing is atomic (temp file
+ rename) and a retry overwrites the same file, so a resend never duplicates:
these channels are idempotent."""

from __future__ import annotations

import json
import os
import tempfile
from email.message import EmailMessage
from pathlib import Path

from spreadpilot.ports.messaging import ChatMessage, Mail


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _stem(key: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:120]


class OutboxTelegram:
    idempotent = True

    def __init__(self, outbox: Path) -> None:
        self.directory = outbox / "telegram"

    def send(self, message: ChatMessage) -> str:
        path = self.directory / f"{_stem(message.key)}.json"
        payload = {"key": message.key, "chat_id": message.chat_id, "text": message.text}
        _atomic_write(path, json.dumps(payload, indent=2, ensure_ascii=False).encode())
        return path.name


class OutboxEmail:
    idempotent = True

    def __init__(self, outbox: Path, sender: str) -> None:
        self.directory = outbox / "email"
        self.sender = sender

    def send(self, mail: Mail) -> str:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(mail.to)
        msg["Subject"] = mail.subject
        msg["X-SpreadPilot-Key"] = mail.key
        msg.set_content(mail.text)
        path = self.directory / f"{_stem(mail.key)}.eml"
        _atomic_write(path, bytes(msg))
        return path.name
