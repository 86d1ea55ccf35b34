"""Embedded mail/chat: one file per idempotency key; a retried send adds nothing."""

import json
from pathlib import Path

from spreadpilot.adapters.embedded.outbox import OutboxChat, OutboxMailer
from spreadpilot.ports.messaging import Attachment, ChatMessage, Mail


def test_mail_is_written_once_per_key_with_its_attachment(tmp_path: Path) -> None:
    mailer = OutboxMailer(tmp_path)
    mail = Mail(
        key="statement:alice:2026-11",
        to=("alice@example.com",),
        subject="Statement",
        text="Hello",
        cc=("ops@example.com",),
        attachments=(Attachment("statement.pdf", b"%PDF-1.7"),),
    )
    first, second = mailer.send(mail), mailer.send(mail)
    assert first == second
    files = sorted(p.name for p in (tmp_path / "mail").iterdir())
    assert len(files) == 2 and any(f.endswith("statement.pdf") for f in files)
    body = json.loads(next((tmp_path / "mail").glob("*.json")).read_text())
    assert body["to"] == ["alice@example.com"] and body["cc"] == ["ops@example.com"]


def test_chat_messages_keyed(tmp_path: Path) -> None:
    chat = OutboxChat(tmp_path)
    chat.send(ChatMessage(key="alert:1", chat_id="-100", text="€ — ok"))
    chat.send(ChatMessage(key="alert:1", chat_id="-100", text="€ — ok"))
    chat.send(ChatMessage(key="alert:2", chat_id="-100", text="two"))
    texts = sorted(json.loads(p.read_text())["text"] for p in (tmp_path / "chat").iterdir())
    assert texts == ["two", "€ — ok"]
