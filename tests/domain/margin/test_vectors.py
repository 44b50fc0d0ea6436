"""Every published vector in tests/vectors is a test case: liquidation prices and derived figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.domain.codec import state_from_json
from monitor.domain.margin import assess
from tests.support.vectors import load, vector_files


@pytest.fixture(params=vector_files(), ids=lambda path: path.stem)
def vector(request: pytest.FixtureRequest) -> dict[str, object]:
    path: Path = request.param
    return load(path)


def test_liquidation_prices_match_published_values(vector: dict[str, object]) -> None:
    risk = assess(state_from_json(vector["state"]))
    expected = vector["expected"]["liquidation_price"]  # type: ignore[index]
    tolerance = float(vector["tolerance"])  # type: ignore[arg-type]
    assert len(risk.positions) == len(expected)
    for index, (position, published) in enumerate(zip(risk.positions, expected, strict=True)):
        if published is None:
            assert position.liquidation_price is None, index
            continue
        assert position.liquidation_price is not None, index
        assert abs(position.liquidation_price - float(published)) <= tolerance, (
            index,
            position.liquidation_price,
            published,
        )


DERIVED_FIELDS = ("equity", "maintenance_margin", "margin_ratio", "account_liquidation_move")


def test_derived_figures_match(vector: dict[str, object]) -> None:
    derived = vector["expected"]["derived"]  # type: ignore[index]
    # Every vector publishes all four figures; a file missing one is a broken vector, not a skip.
    assert set(DERIVED_FIELDS) <= set(derived), vector["name"]
    risk = assess(state_from_json(vector["state"]))
    for field in DERIVED_FIELDS:
        actual, wanted = getattr(risk, field), derived[field]
        if wanted is None:
            assert actual is None, field
        else:
            assert actual == pytest.approx(wanted, rel=1e-6, abs=1e-12), field


def test_exchange_ratio_is_the_inverse_of_ours(vector: dict[str, object]) -> None:
    risk = assess(state_from_json(vector["state"]))
    if risk.margin_ratio is None:
        assert risk.exchange_margin_ratio is None
    else:
        assert risk.exchange_margin_ratio == pytest.approx(1 / risk.margin_ratio, rel=1e-12)
