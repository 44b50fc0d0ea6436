"""The fast path of every poll cycle: its three statements run on the driver's cursor.

SQLAlchemy's per-execution and per-row handling costs more than SQLite's own work, so the cycle's
account snapshot, position rows and rollup upserts are compiled once per dialect from the models
and run with plain tuples (on SQLite and on PostgreSQL alike). A row's values follow its table's
column order as the model declares it (`insert_columns`); they must already be in their stored
form (epoch ms, no JSON).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, bindparam, case, insert
from sqlalchemy.engine import Connection

from monitor.errors import StorageUnavailable
from monitor.storage.engine import dialect_insert
from monitor.storage.models import AccountRollup, AccountSnapshot, PositionSnapshot, insert_columns

# The order of the values of each row the cycle writes: the model's columns.
SNAPSHOT_ROW = insert_columns(AccountSnapshot)
POSITION_ROW = insert_columns(PositionSnapshot)
ROLLUP_ROW = insert_columns(AccountRollup)


class Compiled:
    """A statement compiled once from the models, run on the driver's cursor with plain values.

    The cursor belongs to the transaction's connection, so it commits or rolls back with it;
    driver errors are raised as StorageError.
    """

    def __init__(self, statement: Any, conn: Connection, row: tuple[str, ...]) -> None:
        compiled = statement.compile(dialect=conn.dialect)
        self.sql = str(compiled)
        order = tuple(compiled.positiontup or ())
        if order != row:
            raise RuntimeError(f"statement takes {order}, the rows have {row}: {self.sql}")

    def scalar_row(self, conn: Connection, row: tuple[Any, ...]) -> Any:
        """The first column of the first row returned (a row given in parameter order)."""
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, row)
            first = cursor.fetchone()
            return None if first is None else first[0]
        except conn.dialect.loaded_dbapi.Error as exc:
            raise StorageUnavailable(f"{self.sql.split('(')[0].strip()}: {exc}") from exc
        finally:
            cursor.close()

    def execute_rows(self, conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
        """Rows already as tuples in the statement's parameter order."""
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(self.sql, rows)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise StorageUnavailable(f"{self.sql.split('(')[0].strip()}: {exc}") from exc
        finally:
            cursor.close()


@dataclass(frozen=True, slots=True)
class CycleStatements:
    """The statements of every cycle, built once per dialect."""

    snapshot: Compiled  # SNAPSHOT_ROW, returns the new snapshot's id
    positions: Compiled  # POSITION_ROW
    rollup: Compiled  # ROLLUP_ROW, folded into the existing bucket row


_BUILT: dict[str, CycleStatements] = {}


def statements(conn: Connection) -> CycleStatements:
    """The cycle's statements for the connection's dialect."""
    built = _BUILT.get(conn.dialect.name)
    if built is None:
        built = CycleStatements(
            snapshot=Compiled(
                _with_binds(insert(AccountSnapshot), SNAPSHOT_ROW).returning(AccountSnapshot.id),
                conn,
                SNAPSHOT_ROW,
            ),
            positions=Compiled(
                _with_binds(insert(PositionSnapshot), POSITION_ROW), conn, POSITION_ROW
            ),
            rollup=Compiled(_rollup_upsert(dialect_insert(conn)), conn, ROLLUP_ROW),
        )
        _BUILT[conn.dialect.name] = built
    return built


def _with_binds(statement: Any, columns: Sequence[str]) -> Any:
    return statement.values({column: bindparam(column) for column in columns})


def _rollup_upsert(dialect_insert: Any) -> Any:
    statement = _with_binds(dialect_insert(AccountRollup), ROLLUP_ROW)
    new, old = statement.excluded, AccountRollup.__table__.c
    is_newer = new.last_at >= old.last_at

    def last(name: str) -> ColumnElement[Any]:
        return case((is_newer, new[name]), else_=old[name])

    def lowest(name: str) -> ColumnElement[Any]:
        return case(
            (old[name].is_(None), new[name]),
            (new[name].is_(None), old[name]),
            (new[name] < old[name], new[name]),
            else_=old[name],
        )

    def highest(name: str) -> ColumnElement[Any]:
        return case(
            (old[name].is_(None), new[name]),
            (new[name].is_(None), old[name]),
            (new[name] > old[name], new[name]),
            else_=old[name],
        )

    return statement.on_conflict_do_update(
        index_elements=[
            AccountRollup.account_id,
            AccountRollup.resolution,
            AccountRollup.bucket_start,
        ],
        set_={
            "samples": old.samples + new.samples,
            "last_at": last("last_at"),
            "equity": last("equity"),
            "wallet_balance": last("wallet_balance"),
            "maintenance_margin": last("maintenance_margin"),
            "margin_ratio": last("margin_ratio"),
            "exchange_margin_ratio": last("exchange_margin_ratio"),
            "account_liquidation_move": last("account_liquidation_move"),
            "margin_ratio_min": lowest("margin_ratio_min"),
            "margin_ratio_max": highest("margin_ratio_max"),
            "exchange_margin_ratio_min": lowest("exchange_margin_ratio_min"),
            "exchange_margin_ratio_max": highest("exchange_margin_ratio_max"),
            "min_distance": lowest("min_distance"),
        },
    )
