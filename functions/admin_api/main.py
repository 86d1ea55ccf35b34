"""Cloud Function admin_api: the operator's console (JSON API under /api/v1 and the status page)."""

import functions_framework
from flask import Request, Response

from spreadpilot.platform.entry import boot

boot("admin_api")

from spreadpilot.admin.app import handle  # noqa: E402  (after boot: settings checked first)


@functions_framework.http
def admin_api(request: Request) -> Response:
    return handle(request)
