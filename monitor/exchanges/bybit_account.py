"""Which kind of Bybit account a key belongs to, from `GET /v5/account/info`.

`unifiedMarginStatus` (Bybit API docs, "Different Account Modes", docs/v5/acct-mode and the enum
page): 1 classic account, 3/4 Unified Trading Account 1.0 (pro), 5/6 UTA 2.0 (pro). UTA 1.0 keeps
inverse contracts in a separate "inverse derivatives account" (wallet-balance accountType=CONTRACT)
margined in their own coin; UTA 2.0 integrates them into the unified account, and in cross and
portfolio margin "margin is shared among all trades". `marginMode` is account-wide:
REGULAR_MARGIN (cross: every collateral coin pooled in USD), ISOLATED_MARGIN (every position holds
its own margin in its settle coin), PORTFOLIO_MARGIN (portfolio risk; no liquidation price per
position).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from monitor.domain.errors import ExchangeAuthError, ExchangeDataError
from monitor.domain.model import PoolModel
from monitor.exchanges.fields import as_mapping

CLASSIC = 1
_UTA_1 = frozenset({3, 4})
_UTA_2 = frozenset({5, 6})
_MODELS = {
    "REGULAR_MARGIN": PoolModel.UNIFIED,
    "ISOLATED_MARGIN": PoolModel.ISOLATED,
    "PORTFOLIO_MARGIN": PoolModel.PORTFOLIO,
}


@dataclass(frozen=True, slots=True)
class BybitAccount:
    """A Unified Trading Account's version and margin model."""

    model: PoolModel
    # 1 for UTA 1.0, 2 for UTA 2.0.
    version: int
    status: int

    @property
    def inverse_pooled(self) -> bool:
        """Whether inverse contracts share the account-wide pool (UTA 2.0 cross / portfolio)."""
        return self.version == 2 and self.model is not PoolModel.ISOLATED

    @property
    def label(self) -> str:
        """How `check-config` names it: "UTA 2.0 cross (unified)"."""
        modes = {
            PoolModel.UNIFIED: "cross",
            PoolModel.ISOLATED: "isolated margin",
            PoolModel.PORTFOLIO: "portfolio margin",
        }
        return f"UTA {self.version}.0 {modes[self.model]}"


def classic_account_error(where: str) -> ExchangeAuthError:
    """The permanent refusal of a classic (pre-UTA) account: its wallet and positions live behind
    endpoints and rules (derivatives account, per-position margin) this monitor does not read."""
    return ExchangeAuthError(
        f"{where}: this key belongs to a Bybit classic (non-unified) account "
        "(account/info unifiedMarginStatus 1); only Unified Trading Accounts are supported: "
        "upgrade the account to UTA on Bybit, or use a key of a unified account"
    )


def bybit_account(info: Any, where: str) -> BybitAccount:
    """The account kind from an account/info envelope; a classic account is refused (as a key
    problem: nothing works until a human upgrades the account), an unknown value named."""
    result = as_mapping(as_mapping(info, where).get("result"), f"{where}.result")
    status = _status(result, where)
    if status == CLASSIC:
        raise classic_account_error(where)
    if status in _UTA_1:
        version = 1
    elif status in _UTA_2:
        version = 2
    else:
        raise ExchangeDataError(
            f"{where}.result.unifiedMarginStatus: {status} is not a known account status "
            "(1 classic, 3/4 UTA 1.0, 5/6 UTA 2.0)"
        )
    mode = result.get("marginMode")
    model = _MODELS.get(str(mode))
    if model is None:
        raise ExchangeDataError(
            f"{where}.result.marginMode: {mode!r} is not one of {', '.join(_MODELS)}"
        )
    return BybitAccount(model=model, version=version, status=status)


def _status(result: Mapping[str, Any], where: str) -> int:
    raw = result.get("unifiedMarginStatus")
    try:
        if isinstance(raw, bool):
            raise ValueError
        return int(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ExchangeDataError(
            f"{where}.result.unifiedMarginStatus: {raw!r} is not an account status"
        ) from None
