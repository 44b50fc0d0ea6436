"""The cycle's fast path writes plain tuples in the models' column order: every value lands in the
column of its name (all values distinct, so a swapped pair shows)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import select

from monitor.domain.model import ExchangeAccountFigures
from monitor.domain.stops import PositionStop, StopStatus
from monitor.domain.volatility import VolatilityRisk
from monitor.storage.models import Account, AccountRollup, AccountSnapshot, PositionSnapshot
from monitor.storage.repository import SqlStore
from tests.storage.factories import T0, snapshot


async def _rows(store: SqlStore, model: Any) -> list[dict[str, Any]]:
    async with store.reading("rows") as conn:
        result = await conn.execute(select(model.__table__))
        return [dict(row._mapping) for row in result]


async def test_every_value_is_stored_in_the_column_of_its_name(store: SqlStore) -> None:
    base = snapshot(positions=1)
    position, computed = base.state.positions[0], base.risk.positions[0]
    taken = replace(
        base,
        state=replace(
            base.state,
            wallet_balance=2.0,
            positions=(replace(position, mark_price=11.0, exchange_liquidation_price=15.0),),
            reported=ExchangeAccountFigures(
                equity=10.0, maintenance_margin=11.5, initial_margin=6.0, margin_ratio=12.0
            ),
        ),
        risk=replace(
            base.risk,
            equity=1.0,
            maintenance_margin=3.0,
            margin_ratio=7.0,
            exchange_margin_ratio=8.0,
            account_liquidation_move=9.0,
            positions=(
                replace(
                    computed,
                    unrealized_pnl=12.5,
                    maintenance_margin=13.0,
                    liquidation_price=14.0,
                    distance_to_liquidation=9.5,
                ),
            ),
            volatility=VolatilityRisk(None, None, 13.5, 14.5, ()),
            stops=(PositionStop(StopStatus.PARTIAL, stop_price=16.0),),
        ),
    )
    async with store.cycle() as cycle:
        await cycle.add_snapshot(taken)

    (account,) = await _rows(store, Account)
    (stored,) = await _rows(store, AccountSnapshot)
    assert stored == {
        "id": stored["id"],
        "account_id": account["id"],
        "taken_at": T0,
        "equity": 1.0,
        "wallet_balance": 2.0,
        "maintenance_margin": 3.0,
        "initial_margin": 6.0,
        "margin_ratio": 7.0,
        "exchange_margin_ratio": 8.0,
        "account_liquidation_move": 9.0,
        "nearest_distance": 9.5,
        "reported_equity": 10.0,
        "reported_maintenance_margin": 11.5,
        "reported_margin_ratio": 12.0,
        "move_sigmas_hourly": 13.5,
        "move_sigmas_daily": 14.5,
    }
    (row,) = await _rows(store, PositionSnapshot)
    assert row == {
        "snapshot_id": stored["id"],
        "ordinal": 0,
        "leg_id": row["leg_id"],
        "mark_price": 11.0,
        "unrealized_pnl": 12.5,
        "maintenance_margin": 13.0,
        "liquidation_price": 14.0,
        "exchange_liquidation_price": 15.0,
        "stop_price": 16.0,
        "stop_status": "partial",
    }
    rollups = await _rows(store, AccountRollup)
    assert [(r["resolution"], r["bucket_start"]) for r in rollups] == [(60, T0), (3600, T0)]
    for rollup in rollups:
        assert rollup == {
            "account_id": account["id"],
            "resolution": rollup["resolution"],
            "bucket_start": T0,
            "samples": 1,
            "last_at": T0,
            "equity": 1.0,
            "wallet_balance": 2.0,
            "maintenance_margin": 3.0,
            "margin_ratio": 7.0,
            "margin_ratio_min": 7.0,
            "margin_ratio_max": 7.0,
            "exchange_margin_ratio": 8.0,
            "exchange_margin_ratio_min": 8.0,
            "exchange_margin_ratio_max": 8.0,
            "account_liquidation_move": 9.0,
            "min_distance": 9.5,
        }
