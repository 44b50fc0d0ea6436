"""The one error tree: every error is retryable or permanent by its class, the drawing in
`monitor.domain.errors` is the tree, and no error class or raise of an area base hides elsewhere."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import httpx
import pytest

import monitor.domain.errors as domain_errors
import monitor.errors as errors
from monitor.domain.errors import MonitorError, PermanentError, RetryableError
from monitor.errors import DeliveryError, MessageRejected, SinkRefused, SinkUnavailable
from monitor.notify.http.transport import raise_for_status

PACKAGE = Path(__file__).resolve().parents[1] / "monitor"
ERROR_MODULES = {PACKAGE / "errors.py", PACKAGE / "domain" / "errors.py"}
# Groups for an `except`, never raised: every raised error says retryable or permanent.
ABSTRACT = {"MonitorError", "ExchangeError", "StorageError", "DeliveryError"}
KINDS = {"RetryableError", "PermanentError"}


def _tree() -> dict[str, type[MonitorError]]:
    found: dict[str, type[MonitorError]] = {}
    for module in (domain_errors, errors):
        for name, value in vars(module).items():
            if isinstance(value, type) and issubclass(value, MonitorError):
                found[name] = value
    return found


def _drawing() -> list[tuple[int, str, str | None]]:
    """(depth, class, area in parentheses) for each line of the docstring's drawing."""
    rows = []
    for line in (domain_errors.__doc__ or "").splitlines():
        match = re.match(
            r"^(?P<lead>[ │├└─]*)(?P<name>[A-Z]\w+Error|[A-Z]\w+)\b(?P<rest>.*)$", line
        )
        if match is None or not ("─" in match["lead"] or match["name"] == "MonitorError"):
            continue
        depth = len(match["lead"]) // 4 - 1  # 0: MonitorError
        area = re.match(r"\s+\((\w+)\)", match["rest"])
        rows.append((depth, match["name"], area.group(1) if area else None))
    return rows


def test_every_error_is_retryable_or_permanent_by_its_class() -> None:
    for name, cls in _tree().items():
        kinds = [kind for kind in (RetryableError, PermanentError) if issubclass(cls, kind)]
        if name in ABSTRACT:
            assert not kinds, name
        elif name not in KINDS:
            assert len(kinds) == 1, f"{name} must be under exactly one of {KINDS}"


def test_the_docstring_draws_the_tree() -> None:
    tree = _tree()
    rows = _drawing()
    drawn = {name for _, name, _ in rows}
    assert drawn == set(tree) - (ABSTRACT - {"MonitorError"}), "every class drawn once"
    parents: list[str] = []
    area_of: dict[str, str | None] = {}
    for depth, name, area in rows:
        del parents[depth:]
        if parents:
            assert issubclass(tree[name], tree[parents[-1]]), f"{name} under {parents[-1]}"
        area_of[name] = area or (area_of[parents[-1]] if parents else None)
        parents.append(name)
    for name, area in area_of.items():
        inside = {a for a in ABSTRACT - {"MonitorError"} if issubclass(tree[name], tree[a])}
        assert inside == ({area} if area else set()), f"{name} drawn in area {area}"


def test_only_domain_errors_live_in_the_domain() -> None:
    domain = {n for n, v in vars(domain_errors).items() if isinstance(v, type)}
    assert not domain & {"ConfigError", "StorageError", "DeliveryError", "LeaseLost"}


def _python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_error_classes_are_defined_in_the_two_error_modules() -> None:
    names = set(_tree())
    for path in _python_files():
        if path in ERROR_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                bases = {b.id for b in node.bases if isinstance(b, ast.Name)}
                assert not bases & names, f"{path}: class {node.name} extends the error tree"


def test_no_area_base_is_raised_itself() -> None:
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                assert node.func.id not in ABSTRACT, f"{path}:{node.lineno} raises {node.func.id}"


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (401, SinkRefused),
        (404, SinkRefused),
        (410, SinkRefused),
        (408, SinkUnavailable),
        (429, SinkUnavailable),
        (503, SinkUnavailable),
    ],
)
def test_a_sink_failure_is_one_kind(status: int, kind: type[DeliveryError]) -> None:
    with pytest.raises(DeliveryError) as caught:
        raise_for_status("hook", httpx.Response(status))
    assert type(caught.value) is kind
    permanent = kind is SinkRefused
    assert isinstance(caught.value, PermanentError) is permanent
    assert isinstance(caught.value, RetryableError) is not permanent


def test_a_rejected_message_is_retried_not_the_sink_disabled() -> None:
    assert issubclass(MessageRejected, RetryableError)
    assert not issubclass(MessageRejected, PermanentError)
