"""Alert channels: Telegram (python-telegram-bot), email (SendGrid) and, for
embedded runs, outbox files. Each maps its library's errors onto the one
`DeliveryError` (retryable, permanent, retry_after) the router understands."""
