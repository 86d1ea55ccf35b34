"""The security checklist, checked against a deployment's settings and secrets.

Run before every deployment (`spreadpilot security audit`, exit code 1 on any
failure) so a demo credential, a '*' CORS origin or a missing secret is found
by the operator, not by the first attacker or the first trading morning. Each
check says what it found and the exact fix; secret values are never shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import yaml

from spreadpilot.local.demo_login import DEMO_PASSWORD, DEMO_PIN, DEMO_TOKEN_SECRET
from spreadpilot.platform.passwords import BadHash, check_hash, verify_secret
from spreadpilot.platform.settings import Settings
from spreadpilot.ports.secrets import MissingSecret, Secrets

TOKEN_SECRET_MIN_LENGTH = 32
TOKEN_TTL_MAX_MINUTES = 60
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_RANDOM_KEY_CMD = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str


@cache
def secret_catalogue() -> dict[str, str]:
    """Secret name -> description, from secrets.yaml (the catalogue Terraform creates)."""
    text = resources.files("spreadpilot.platform").joinpath("secrets.yaml").read_text()
    raw: dict[str, Any] = (yaml.safe_load(text) or {}).get("secrets") or {}
    return {name: str((body or {}).get("description", "")) for name, body in raw.items()}


def run_checklist(settings: Settings, secrets: Secrets) -> list[Check]:
    """Every check of the checklist, in a fixed order (failed and passed alike)."""
    s = settings
    checks = [
        _hash_check(
            s,
            secrets,
            "admin password hash",
            s.admin_password_hash_secret,
            demo=DEMO_PASSWORD,
            what="password",
            produce="spreadpilot security hash-password",
        ),
        _hash_check(
            s,
            secrets,
            "admin PIN hash",
            s.admin_pin_hash_secret,
            demo=DEMO_PIN,
            what="PIN",
            produce="spreadpilot security hash-pin",
        ),
        _token_secret_check(s, secrets),
        _cors_check(s),
        _ttl_check(s),
    ]
    if s.mode == "gcp":
        checks.append(_cookies_check(s))
        admin = {s.admin_password_hash_secret, s.admin_pin_hash_secret, s.admin_token_secret}
        admin |= {
            str(Settings.model_fields[f].default)
            for f in ("admin_password_hash_secret", "admin_pin_hash_secret", "admin_token_secret")
        }
        for name, description in secret_catalogue().items():
            if name not in admin:
                checks.append(_present_check(s, secrets, name, description))
        checks.append(
            Check(
                "log format",
                s.log_format == "json",
                f"SPREADPILOT_LOG_FORMAT is {s.log_format}",
                ""
                if s.log_format == "json"
                else "set SPREADPILOT_LOG_FORMAT=json: Cloud Logging parses severity, labels "
                "and the audit fields only from JSON lines",
            )
        )
    checks.append(
        Check(
            "dry run",
            True,
            "dry run: orders are what-if only, nothing is routed"
            if s.dry_run
            else "live: orders are routed to the brokers",
            "",
        )
    )
    return checks


# --- secrets


def _store_fix(s: Settings, name: str, produce: str) -> str:
    """How to set secret `name` from a command's output, for this mode."""
    if s.mode == "gcp":
        return (
            f"{produce} | gcloud secrets versions add {name} --project={s.project_id} --data-file=-"
        )
    from spreadpilot.adapters.embedded.env_secrets import secret_env_name

    where = s.secrets_dir / name if s.secrets_dir else f"$SPREADPILOT_SECRETS_DIR/{name}"
    return f'export {secret_env_name(name)}="$({produce})", or write its output to {where}'


def _read(secrets: Secrets, name: str) -> tuple[str | None, str]:
    """The value, or None and why it could not be read (never the value itself)."""
    try:
        return secrets.get(name), ""
    except MissingSecret as exc:
        return None, str(exc)
    except Exception as exc:  # an unreachable Secret Manager must not stop the audit
        return None, f"secret '{name}' could not be read: {type(exc).__name__}: {exc}"


def _hash_check(
    s: Settings, secrets: Secrets, name: str, secret: str, *, demo: str, what: str, produce: str
) -> Check:
    fix = _store_fix(s, secret, produce)
    value, why = _read(secrets, secret)
    if value is None:
        return Check(name, False, why, fix)
    try:
        check_hash(value)
        is_demo = verify_secret(demo, value)
    except BadHash as exc:
        return Check(name, False, f"secret '{secret}': {exc}", fix)
    if is_demo:
        return Check(
            name,
            False,
            f"secret '{secret}' is the hash of the demo {what} (published in the code)",
            fix,
        )
    return Check(name, True, f"secret '{secret}': scrypt hash, not the demo {what}", "")


def _token_secret_check(s: Settings, secrets: Secrets) -> Check:
    name, secret = "token secret", s.admin_token_secret
    fix = _store_fix(s, secret, _RANDOM_KEY_CMD)
    value, why = _read(secrets, secret)
    if value is None:
        return Check(name, False, why, fix)
    if value.strip() == DEMO_TOKEN_SECRET:
        return Check(name, False, f"secret '{secret}' is the demo value (published)", fix)
    if len(value.strip()) < TOKEN_SECRET_MIN_LENGTH:
        return Check(
            name,
            False,
            f"secret '{secret}' has {len(value.strip())} characters, fewer than "
            f"{TOKEN_SECRET_MIN_LENGTH}: login tokens could be forged by brute force",
            fix,
        )
    return Check(name, True, f"secret '{secret}': {len(value.strip())} characters", "")


def _present_check(s: Settings, secrets: Secrets, name: str, description: str) -> Check:
    value, why = _read(secrets, name)
    fix = (
        f"gcloud secrets versions add {name} --project={s.project_id} --data-file=FILE "
        f"({description})"
    )
    if value is None:
        return Check(f"secret {name}", False, why, fix)
    return Check(f"secret {name}", True, f"secret '{name}' is set", "")


# --- settings


def origin_problem(origin: str, mode: str) -> str | None:
    """Why a CORS origin is unsafe or cannot match (None: fine)."""
    if "*" in origin:
        return f"{origin!r} allows any site to call the API with the operator's session"
    try:
        parts = urlsplit(origin)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return f"{origin!r} is not a URL"
    if parts.path or parts.query or parts.fragment or parts.username or parts.password:
        return f"{origin!r} has a path, query or credentials: an origin is scheme://host[:port]"
    if not host:
        return f"{origin!r} has no host"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and host in LOCAL_HOSTS:
        if mode == "embedded":
            return None
        return f"{origin!r} is a local http origin, allowed in embedded mode only"
    return f"{origin!r} is not https"


def _cors_check(s: Settings) -> Check:
    name = "CORS origins"
    if not s.admin_cors_origins:
        return Check(name, True, "none: same-origin only", "")
    problems = [p for o in s.admin_cors_origins if (p := origin_problem(o, s.mode)) is not None]
    if problems:
        return Check(
            name,
            False,
            "; ".join(problems),
            "set SPREADPILOT_ADMIN_CORS_ORIGINS to a JSON list of https origins, e.g. "
            '["https://console.example.com"] (never "*"), or [] for same-origin only',
        )
    return Check(name, True, ", ".join(s.admin_cors_origins), "")


def _ttl_check(s: Settings) -> Check:
    ttl = s.admin_token_ttl_minutes
    if ttl > TOKEN_TTL_MAX_MINUTES:
        return Check(
            "token lifetime",
            False,
            f"login tokens live {ttl} minutes: a stolen one stays usable that long",
            f"set SPREADPILOT_ADMIN_TOKEN_TTL_MINUTES to {TOKEN_TTL_MAX_MINUTES} or less "
            "(default 15)",
        )
    return Check("token lifetime", True, f"{ttl} minutes", "")


def _cookies_check(s: Settings) -> Check:
    if s.admin_secure_cookies is False:
        return Check(
            "secure cookies",
            False,
            "SPREADPILOT_ADMIN_SECURE_COOKIES is false: the session cookie may travel over http",
            "unset SPREADPILOT_ADMIN_SECURE_COOKIES (default true in gcp mode)",
        )
    return Check("secure cookies", True, "session cookie sent over https only", "")
