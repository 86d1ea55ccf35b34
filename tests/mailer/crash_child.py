"""One commission mail pass in a process of its own, for the crash test:
`python -m tests.mailer.crash_child DATA_DIR SENDGRID_HOST`. With
SPREADPILOT_FAILPOINTS=statement_mail.after_send=exit it dies (os._exit) right
after SendGrid accepted the mail, before SENT is recorded."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from spreadpilot.services.commission_mailer import CommissionMailer
from tests.mailer.support import CONFIG, Book, make_statement, render_pdf, sendgrid_mailer
from tests.support.embedded import make_platform


def main(data_dir: str, host: str) -> None:
    p = make_platform(Path(data_dir), start=datetime.now(UTC))
    mailer = CommissionMailer(
        p.c.store,
        p.clock,
        sendgrid_mailer(host),
        Book(make_statement("alice")),
        render_pdf,
        CONFIG,
        alerts=p.c.alerts,
    )
    print(mailer.run(), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:3])
