"""Typed view of topics.yaml: the single definition of topics and subscriptions."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

DEAD_LETTER_SUFFIX = "-dead-letter"
HOLD_SUFFIX = "-hold"


class Subscription(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    topic: str
    push: str | None = Field(None, description="function the subscription delivers to")
    pull: str | None = Field(None, description="consumer that pulls it")
    ack_deadline_seconds: int
    max_delivery_attempts: int
    min_backoff_seconds: float
    max_backoff_seconds: float
    message_retention_seconds: int
    exactly_once: bool = False
    dead_letter_topic: str | None = None

    @model_validator(mode="after")
    def _one_consumer(self) -> Subscription:
        if (self.push is None) == (self.pull is None):
            raise ValueError(f"subscription {self.name}: set exactly one of push/pull")
        return self

    def backoff(self, delivery_attempt: int) -> float:
        """Seconds before a nacked message is offered again (Pub/Sub's exponential policy)."""
        delay = self.min_backoff_seconds * (2 ** max(0, delivery_attempt - 1))
        return float(min(self.max_backoff_seconds, delay))


class Topology(BaseModel):
    model_config = ConfigDict(frozen=True)

    topics: dict[str, str]
    subscriptions: dict[str, Subscription]

    def subscriptions_of(self, topic: str) -> list[Subscription]:
        return [s for s in self.subscriptions.values() if s.topic == topic]

    def push_subscription_for(self, function: str) -> Subscription:
        for sub in self.subscriptions.values():
            if sub.push == function:
                return sub
        raise KeyError(f"no push subscription delivers to function {function!r}")

    def with_overrides(self, **fields: Any) -> Topology:
        """Same topology with every subscription's field overridden (tests: zero backoff)."""
        subs = {n: s.model_copy(update=fields) for n, s in self.subscriptions.items()}
        return self.model_copy(update={"subscriptions": subs})


def build_topology(raw: dict[str, Any]) -> Topology:
    defaults = raw.get("defaults", {})
    topics: dict[str, str] = dict(raw["topics"])
    subs: dict[str, Subscription] = {}
    for name, spec in raw["subscriptions"].items():
        if spec["topic"] not in topics:
            raise ValueError(f"subscription {name}: unknown topic {spec['topic']!r}")
        dlt = f"{name}{DEAD_LETTER_SUFFIX}"
        subs[name] = Subscription(name=name, **{**defaults, **spec}, dead_letter_topic=dlt)
        topics[dlt] = f"Messages {name} could not process after every retry."
        hold = f"{dlt}{HOLD_SUFFIX}"
        subs[hold] = Subscription(
            name=hold,
            topic=dlt,
            pull="operator",
            **{**defaults, "max_delivery_attempts": defaults.get("max_delivery_attempts", 5)},
        )
    return Topology(topics=topics, subscriptions=subs)


@cache
def topology() -> Topology:
    text = resources.files("spreadpilot.platform").joinpath("topics.yaml").read_text()
    return build_topology(yaml.safe_load(text))
