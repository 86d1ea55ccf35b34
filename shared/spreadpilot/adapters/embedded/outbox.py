"""Mail and chat for embedded runs: one file per message in an outbox folder.

The file name is the message's idempotency key, so a retried send overwrites
nothing and creates nothing new: the same key is the same message.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from spreadpilot.ports.messaging import ChatMessage, Mail


def _safe(key: str) -> str:
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)[:80]
    return f"{stem}-{digest}"


def _write_once(path: Path, payload: dict[str, object]) -> bool:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2, ensure_ascii=False)
    return True


class OutboxMailer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "mail"

    def send(self, mail: Mail) -> str:
        stem = _safe(mail.key)
        for att in mail.attachments:
            (self.directory / f"{stem}-{att.filename}").parent.mkdir(parents=True, exist_ok=True)
            (self.directory / f"{stem}-{att.filename}").write_bytes(att.content)
        _write_once(
            self.directory / f"{stem}.json",
            {
                "key": mail.key,
                "to": list(mail.to),
                "cc": list(mail.cc),
                "subject": mail.subject,
                "text": mail.text,
                "attachments": [a.filename for a in mail.attachments],
            },
        )
        return stem


class OutboxChat:
    def __init__(self, directory: Path) -> None:
        self.directory = directory / "chat"

    def send(self, message: ChatMessage) -> str:
        stem = _safe(message.key)
        _write_once(
            self.directory / f"{stem}.json",
            {"key": message.key, "chat_id": message.chat_id, "text": message.text},
        )
        return stem
