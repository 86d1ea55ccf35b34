"""GET /status: the day's status as JSON, the same read model the status page renders."""

from __future__ import annotations

from datetime import date as Date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from spreadpilot.admin.context import Ctx
from spreadpilot.admin.registry import API
from spreadpilot.services.console import status_view


class StatusQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: Date | None = Field(
        None,
        description="New York trading date (YYYY-MM-DD); default: today if its signal is "
        "claimed, else the latest day with a claimed signal",
    )


@API.route(
    "GET",
    "/status",
    summary="The day at a glance: signal, each follower's order, bands, P&L, alerts, health",
    tag="status",
    query=StatusQuery,
)
def status(ctx: Ctx, query: StatusQuery) -> dict[str, Any]:
    """Pure reads, a fixed number of them whatever the number of followers."""
    return status_view(ctx.c, query.date)
