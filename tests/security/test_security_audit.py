"""The security checklist against real settings and the embedded secrets adapter."""

from pathlib import Path

import pytest

from spreadpilot.adapters.embedded.env_secrets import EnvFileSecrets
from spreadpilot.local.demo_login import (
    DEMO_PASSWORD,
    DEMO_PIN,
    DEMO_TOKEN_SECRET,
    DEMO_USERNAME,
    install_demo_credentials,
)
from spreadpilot.platform.passwords import hash_secret, verify_secret
from spreadpilot.platform.settings import Settings, load_settings
from spreadpilot.services.security_audit import (
    Check,
    origin_problem,
    run_checklist,
    secret_catalogue,
)

GOOD_TOKEN = "k7Qz0pW4xR9sT2vY6bN8mC1dF5gH3jL0aE7uI9oP2qS4"
ADMIN = ("admin-password-hash", "admin-pin-hash", "admin-token-secret")


@pytest.fixture(autouse=True)
def no_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("SPREADPILOT_"):
            monkeypatch.delenv(name)


def write_good(secrets_dir: Path, **override: str) -> None:
    values = {
        "admin-password-hash": hash_secret("a long operator passphrase"),
        "admin-pin-hash": hash_secret("730519"),
        "admin-token-secret": GOOD_TOKEN,
    }
    values.update({k.replace("_", "-"): v for k, v in override.items()})
    secrets_dir.mkdir(parents=True, exist_ok=True)
    for name, value in values.items():
        (secrets_dir / name).write_text(value + "\n")


def checks_of(tmp_path: Path, **settings: object) -> dict[str, Check]:
    s = load_settings(
        mode="embedded", data_dir=tmp_path, secrets_dir=tmp_path / "secrets", **settings
    )
    found = run_checklist(s, EnvFileSecrets(s.secrets_dir))
    assert len({c.name for c in found}) == len(found)
    return {c.name: c for c in found}


def failed(checks: dict[str, Check]) -> set[str]:
    return {name for name, c in checks.items() if not c.ok}


def test_good_values_pass(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    checks = checks_of(tmp_path, admin_cors_origins=["https://console.example.com"])
    assert failed(checks) == set()
    assert set(checks) == {
        "admin password hash",
        "admin PIN hash",
        "token secret",
        "CORS origins",
        "token lifetime",
        "dry run",
    }
    assert all(c.fix == "" for c in checks.values())


def test_demo_credentials_fail(tmp_path: Path) -> None:
    assert install_demo_credentials(tmp_path / "secrets")
    checks = checks_of(tmp_path)
    assert failed(checks) == {"admin password hash", "admin PIN hash", "token secret"}
    assert "demo password" in checks["admin password hash"].detail
    assert "demo PIN" in checks["admin PIN hash"].detail
    assert "demo value" in checks["token secret"].detail
    assert "spreadpilot security hash-pin" in checks["admin PIN hash"].fix
    assert "SPREADPILOT_SECRET_ADMIN_PIN_HASH" in checks["admin PIN hash"].fix
    for check in checks.values():  # the audit never prints a secret
        assert DEMO_PIN not in check.detail + check.fix
        assert DEMO_TOKEN_SECRET not in check.detail + check.fix


def test_install_demo_credentials_writes_once_with_private_mode(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    assert install_demo_credentials(secrets_dir) is True
    for name in ADMIN:
        assert (secrets_dir / name).stat().st_mode & 0o777 == 0o600
    secrets = EnvFileSecrets(secrets_dir)
    assert verify_secret(DEMO_PASSWORD, secrets.get("admin-password-hash"))
    assert verify_secret(DEMO_PIN, secrets.get("admin-pin-hash"))
    assert secrets.get("admin-token-secret") == DEMO_TOKEN_SECRET
    assert len(DEMO_TOKEN_SECRET) == 48
    assert Settings().admin_username == DEMO_USERNAME
    before = (secrets_dir / "admin-pin-hash").read_text()
    assert install_demo_credentials(secrets_dir) is False
    assert (secrets_dir / "admin-pin-hash").read_text() == before


def test_install_keeps_the_operators_own_values(tmp_path: Path) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    (secrets_dir / "admin-token-secret").write_text(GOOD_TOKEN)
    assert install_demo_credentials(secrets_dir) is True
    assert (secrets_dir / "admin-token-secret").read_text() == GOOD_TOKEN


def test_missing_secrets_fail_naming_how_to_set_them(tmp_path: Path) -> None:
    checks = checks_of(tmp_path)
    assert failed(checks) == {"admin password hash", "admin PIN hash", "token secret"}
    pin = checks["admin PIN hash"]
    assert "secret 'admin-pin-hash' is not set" in pin.detail
    assert "SPREADPILOT_SECRET_ADMIN_PIN_HASH" in pin.fix
    assert str(tmp_path / "secrets" / "admin-pin-hash") in pin.fix


def test_malformed_hash_fails(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets", admin_password_hash="$2b$12$bcrypt-is-not-scrypt")
    checks = checks_of(tmp_path)
    assert failed(checks) == {"admin password hash"}
    assert "not a scrypt hash" in checks["admin password hash"].detail
    assert "hash-password" in checks["admin password hash"].fix


def test_short_token_secret_fails(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets", admin_token_secret="x" * 31)
    checks = checks_of(tmp_path)
    assert failed(checks) == {"token secret"}
    assert "31 characters, fewer than 32" in checks["token secret"].detail


@pytest.mark.parametrize(
    "origins",
    [
        ["*"],
        ["https://console.example.com", "*"],
        ["https://*.example.com"],
        ["http://console.example.com"],
        ["https://console.example.com/"],
        ["https://console.example.com/admin"],
        ["https://user:pw@console.example.com"],
        ["console.example.com"],
        ["https://"],
    ],
)
def test_unsafe_cors_origins_fail(tmp_path: Path, origins: list[str]) -> None:
    write_good(tmp_path / "secrets")
    checks = checks_of(tmp_path, admin_cors_origins=origins)
    assert failed(checks) == {"CORS origins"}
    assert "SPREADPILOT_ADMIN_CORS_ORIGINS" in checks["CORS origins"].fix


def test_star_cors_says_why(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    checks = checks_of(tmp_path, admin_cors_origins=["*"])
    assert "allows any site" in checks["CORS origins"].detail


def test_local_http_origins_only_in_embedded_mode() -> None:
    for origin in ("http://localhost:5173", "http://127.0.0.1:8080", "http://[::1]:3000"):
        assert origin_problem(origin, "embedded") is None
        assert "embedded mode only" in (origin_problem(origin, "gcp") or "")
    assert origin_problem("https://console.example.com:8443", "gcp") is None


def test_long_token_lifetime_fails(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    assert failed(checks_of(tmp_path, admin_token_ttl_minutes=60)) == set()
    checks = checks_of(tmp_path, admin_token_ttl_minutes=61)
    assert failed(checks) == {"token lifetime"}


def test_dry_run_is_informational(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    live = checks_of(tmp_path)["dry run"]
    dry = checks_of(tmp_path, dry_run=True)["dry run"]
    assert live.ok and dry.ok
    assert "live" in live.detail and "dry run" in dry.detail


def gcp_checks(tmp_path: Path, **settings: object) -> dict[str, Check]:
    s = load_settings(mode="gcp", sheet_id="sheet-1", project_id="sp-prod", **settings)
    found = run_checklist(s, EnvFileSecrets(tmp_path / "secrets"))
    return {c.name: c for c in found}


def test_gcp_mode_checks_every_catalogued_secret_and_json_logs(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    others = [name for name in secret_catalogue() if name not in ADMIN]
    assert others  # sheets, telegram, sendgrid
    checks = gcp_checks(tmp_path, log_format="text", admin_cors_origins=["http://localhost"])
    assert failed(checks) == {"CORS origins", "log format", *(f"secret {n}" for n in others)}
    missing = checks["secret telegram-bot-token"]
    assert "gcloud secrets versions add telegram-bot-token --project=sp-prod" in missing.fix
    pin_fix = gcp_checks(tmp_path / "none")["admin PIN hash"].fix
    assert "gcloud secrets versions add admin-pin-hash --project=sp-prod --data-file=-" in pin_fix

    for name in others:
        (tmp_path / "secrets" / name).write_text("value-of-" + name)
    checks = gcp_checks(tmp_path)
    assert failed(checks) == set()
    assert {"secure cookies", "log format"} <= set(checks)


def test_gcp_insecure_cookies_fail(tmp_path: Path) -> None:
    write_good(tmp_path / "secrets")
    for name in secret_catalogue():
        if name not in ADMIN:
            (tmp_path / "secrets" / name).write_text("value")
    assert failed(gcp_checks(tmp_path, admin_secure_cookies=False)) == {"secure cookies"}
