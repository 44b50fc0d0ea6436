"""`[web]`: a dashboard reachable from other machines needs a password; the hash is checked and
never shown; `web-password` makes a hash the login accepts."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from monitor.cli import app
from monitor.web.auth import Sessions, hash_password, password_matches
from monitor.web.server import from_loopback

HASH = hash_password("correct horse battery")


def _check(tmp_path: Path, web: str) -> tuple[int, str, str]:
    path = tmp_path / "config.toml"
    path.write_text(f"[web]\n{web}\n")
    result = CliRunner().invoke(app, ["check-config", "--config", str(path)])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("listen", ["0.0.0.0:8080", "192.168.1.5:8080", "[::]:8080", "box:80"])
def test_listening_beyond_loopback_without_a_password_exits_78_naming_web_listen(
    tmp_path: Path, listen: str
) -> None:
    code, out, err = _check(tmp_path, f'listen = "{listen}"')
    assert code == 78
    assert out == ""
    assert "web.listen" in err
    assert "password_hash" in err


@pytest.mark.parametrize("listen", ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"])
def test_loopback_needs_no_password(tmp_path: Path, listen: str) -> None:
    code, out, err = _check(tmp_path, f'listen = "{listen}"')
    assert code == 0, err
    assert json.loads(out.partition("\nrequest budget")[0])["web"]["listen"] == listen


def test_with_a_password_hash_any_address_is_allowed_and_the_hash_is_masked(
    tmp_path: Path,
) -> None:
    code, out, err = _check(tmp_path, f'listen = "0.0.0.0:8080"\npassword_hash = "{HASH}"')
    assert code == 0, err
    assert HASH not in out + err
    assert json.loads(out.partition("\nrequest budget")[0])["web"]["password_hash"] == "**********"


def test_a_hash_not_made_by_web_password_is_refused_without_echoing_it(tmp_path: Path) -> None:
    code, _, err = _check(tmp_path, 'listen = "127.0.0.1:1"\npassword_hash = "hunter2"')
    assert code == 78
    assert "web.password_hash: not a hash made by `portfolio-monitor web-password`" in err
    assert "hunter2" not in err


def test_web_password_prints_a_hash_the_login_accepts() -> None:
    result = CliRunner().invoke(app, ["web-password"], input="s3cret-pass\ns3cret-pass\n")
    assert result.exit_code == 0, result.stderr
    line = result.stdout.strip().splitlines()[-1]
    assert line.startswith('password_hash = "scrypt$')
    stored = line.split('"')[1]
    assert password_matches("s3cret-pass", stored)
    assert not password_matches("s3cret-pasS", stored)
    # Salted: the same password never gives the same hash twice.
    assert hash_password("s3cret-pass") != stored


def test_a_short_password_is_refused() -> None:
    result = CliRunner().invoke(app, ["web-password"], input="short\nshort\n")
    assert result.exit_code == 2
    assert "at least 8 characters" in result.stderr


def test_sessions_expire() -> None:
    start = datetime(2026, 12, 5, tzinfo=UTC)
    sessions = Sessions(timedelta(hours=12))
    session = sessions.open(start)
    assert sessions.find(session.token, start + timedelta(hours=11)) == session
    assert sessions.find(session.token, start + timedelta(hours=12)) is None
    assert sessions.find("guessed", start) is None
    sessions.close(session.token)
    assert sessions.find(session.token, start) is None


@pytest.mark.parametrize(
    ("remote", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("192.168.1.20", False),
        ("fe80::1%eth0", False),
        ("::ffff:10.0.0.1", False),
        (None, False),
        ("garbage", False),
    ],
)
def test_reads_need_a_login_unless_they_come_from_this_machine(
    remote: str | None, loopback: bool
) -> None:
    assert from_loopback(remote) is loopback
