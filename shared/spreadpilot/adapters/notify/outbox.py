"""Embedded channels: one file per delivery under DATA_DIR/outbox/telegram and
DATA_DIR/outbox/email (statements: DATA_DIR/outbox/statements), named by the
delivery key. Writing is atomic (temp file + rename) and a retry overwrites the
same file, so a resend never duplicates: these channels are idempotent.

A mail is a complete .eml (Cc and attachments included, openable in any mail
client); each attachment is also written beside it as `<key>--<filename>` so a
dry run's PDFs can be opened directly. The .eml is written last: its presence
means the mail was "delivered" (`find`)."""

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

    def __init__(self, outbox: Path, sender: str, folder: str = "email") -> None:
        self.directory = outbox / folder
        self.sender = sender

    def send(self, mail: Mail) -> str:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = ", ".join(mail.to)
        if mail.cc:
            msg["Cc"] = ", ".join(mail.cc)
        msg["Subject"] = mail.subject
        msg["X-SpreadPilot-Key"] = mail.key
        msg.set_content(mail.text)
        stem = _stem(mail.key)
        for item in mail.attachments:
            maintype, _, subtype = item.mime_type.partition("/")
            msg.add_attachment(
                item.content,
                maintype=maintype,
                subtype=subtype or "octet-stream",
                filename=item.filename,
            )
            _atomic_write(self.directory / f"{stem}--{_stem(item.filename)}", item.content)
        path = self._path(mail.key)
        _atomic_write(path, bytes(msg))
        return path.name

    def find(self, key: str) -> str | None:
        """The file name if a mail with this key is in the outbox."""
        path = self._path(key)
        return path.name if path.is_file() else None

    def _path(self, key: str) -> Path:
        return self.directory / f"{_stem(key)}.eml"
