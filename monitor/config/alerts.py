"""The `[alerts.*]` section (defaults for every account) and `[accounts.NAME.alerts.*]` overrides.

Each rule has its own sub-section; an account's override replaces single keys of the defaults and
keeps the rest. `to_rules()` turns the merged settings into the domain's rule objects, so the pure
state machine never sees pydantic.
"""

from __future__ import annotations

import math
from datetime import timedelta
from itertools import pairwise
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from monitor.config.types import Duration, Percent
from monitor.domain.alerts import AlertRules, Rule, RuleKey
from monitor.domain.alerts.measure import STOP_BEYOND_LIQUIDATION, STOP_UNPROTECTED
from monitor.domain.errors import InvalidInput
from monitor.domain.notification import Severity
from monitor.domain.units import config_percent, parse_percent
from monitor.domain.volatility import Horizon
from monitor.errors import ConfigError

_FRACTION_HINT = " (a number without % is a fraction: 0.8 means 80%)"


def _off_or_percent(value: object) -> object:
    # TOML has no null: "off" (or false) switches one severity level off.
    if (
        value is None
        or value is False
        or (isinstance(value, str) and value.strip().lower() == "off")
    ):
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise ValueError('expected a percentage such as 150%, or "off"')
    try:
        return parse_percent(value)
    except InvalidInput as exc:
        raise ValueError(exc.problem) from None


_PARSED = "parsed"


def _percent_sign_needed(plain_limit: float, example: str) -> Any:
    """A before-validator refusing a number written without % that cannot be meant as a fraction.

    `warning_below = 300` (or "300") parses as the fraction 300 = 30,000 %: an alert that fires
    forever, accepted without a word. Such a number is almost always a percentage missing its sign.
    """

    def check(value: object, info: ValidationInfo) -> object:
        # Merging an account's overrides re-validates values already parsed into fractions.
        if info.context and info.context.get(_PARSED):
            return value
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            return value
        text = str(value).strip()
        try:
            number = float(text)  # "300%" and "off" do not parse: they are not plain numbers
        except ValueError:
            return value
        if math.isfinite(number) and abs(number) >= plain_limit:
            shown = f'"{value}"' if isinstance(value, str) else text
            raise ValueError(
                f'{shown} needs a % sign ("{text}%"): a number without % is a fraction ({example})'
            )
        return value

    return BeforeValidator(check)


# check-config shows "300%" as written, not 3.0 (which a reader takes for 3 %).
_LEVEL_AS_WRITTEN = PlainSerializer(
    lambda level: None if level is None else config_percent(level),
    return_type=str | None,
    when_used="json",
)

# Before-validators run right to left: the % check sees the value as written, before parsing.
OptionalLevel = Annotated[
    float | None,
    BeforeValidator(_off_or_percent),
    _percent_sign_needed(1.0, "0.1 means 10%"),
    _LEVEL_AS_WRITTEN,
]
"""A level written as "15%" or "off"; a plain number is a fraction below 1 (0.1 = 10 %)."""

RatioLevel = Annotated[
    float | None,
    BeforeValidator(_off_or_percent),
    _percent_sign_needed(10.0, "3 means 300%"),
    _LEVEL_AS_WRITTEN,
]
"""A margin-ratio level: "300%", "off", or a plain fraction below 10 (3 = 300 %)."""

Share = Annotated[Percent, _percent_sign_needed(1.0, "0.2 means 20%")]
"""A clear band, tolerance or increase: "20%" or a plain fraction below 1."""

SeverityName = Literal["info", "warning", "critical", "emergency"]
_SEVERITIES = (Severity.WARNING, Severity.CRITICAL, Severity.EMERGENCY)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # Set on the override variants: their cross-key checks run only after merging with the defaults.
    partial: ClassVar[bool] = False

    enabled: bool = True

    def checked(self) -> Self:
        """Run the cross-key checks (also on an override once it is merged)."""
        return self


class _Timed(_Section):
    for_: Duration = Field(default=timedelta(seconds=30), alias="for")
    # "0s" = never repeat.
    repeat: Duration = timedelta(hours=1)

    @property
    def repeat_interval(self) -> timedelta | None:
        """The repeat interval, None when repeating is off."""
        return self.repeat or None


class _Levels(_Timed):
    """A "below" rule with up to three severity levels and a clear band."""

    warning_below: OptionalLevel = None
    critical_below: OptionalLevel = None
    emergency_below: OptionalLevel = None
    # The emergency level (next to liquidation) fires on the first reading below it: the venue
    # liquidates on a single mark too, so a mark that close is worth waking for even if the next
    # one recovers, and a debounce would cost the trader a whole mark interval (1 s live).
    for_: Duration = Field(default=timedelta(seconds=10), alias="for")
    emergency_for: Duration = timedelta(0)
    clear_band: Share = 0.2
    # Levels outside these bounds can never fire usefully (or never resolve): they are nearly
    # always a number written without its % sign ("80" is 8000 %), so they are refused.
    lowest_level: ClassVar[float] = 0.0  # exclusive
    highest_level: ClassVar[float | None] = None  # inclusive
    why_lowest: ClassVar[str] = ""

    @model_validator(mode="after")
    def _check(self) -> Self:
        return self if self.partial else self.checked()

    def below_levels(self) -> list[tuple[Severity, float, str]]:
        """(severity, level, key that set it) for every severity that is on."""
        levels = []
        for severity in _SEVERITIES:
            level = getattr(self, f"{severity.value}_below")
            if level is not None:
                levels.append((severity, level, f"{severity.value}_below"))
        return levels

    def checked(self) -> Self:
        if not 0 <= self.clear_band <= 1:
            raise ValueError(
                f"clear_band ({config_percent(self.clear_band)}) must be from 0% to 100%"
                f"{_FRACTION_HINT}"
            )
        levels = self.below_levels()
        if not levels and self.enabled:
            raise ValueError('every level is "off": set enabled = false instead')
        for _, level, key in levels:
            if level <= self.lowest_level:
                raise ValueError(
                    f"{key} ({config_percent(level)}) must be above "
                    f"{config_percent(self.lowest_level)}{self.why_lowest}"
                )
            if self.highest_level is not None and level > self.highest_level:
                raise ValueError(
                    f"{key} ({config_percent(level)}) must be at most "
                    f"{config_percent(self.highest_level)}{_FRACTION_HINT}"
                )
        for (_, upper, upper_key), (_, lower, lower_key) in pairwise(levels):
            if lower >= upper:
                raise ValueError(
                    f"{lower_key} ({config_percent(lower)}) must be below {upper_key} "
                    f"({config_percent(upper)}): a higher severity is closer to liquidation"
                )
        return self

    def rule(self, key: RuleKey) -> Rule:
        """The domain rule these settings describe."""
        return Rule(
            key,
            tuple((severity, level) for severity, level, _ in self.below_levels()),
            clear_band=self.clear_band,
            debounce=self.for_,
            repeat=self.repeat_interval,
            severity_debounce=((Severity.EMERGENCY, self.emergency_for),),
        )


class MarginRatioAlert(_Levels):
    """`[alerts.margin_ratio]`: equity / maintenance margin below a level (liquidation at 100 %).

    Each level may instead be written in the exchange convention (maintenance margin / equity,
    liquidation at 100 %): `critical_exchange_above = "80%"` means `critical_below = "125%"`.
    """

    warning_below: RatioLevel = 3.0
    critical_below: RatioLevel = 1.5
    emergency_below: RatioLevel = 1.2
    warning_exchange_above: OptionalLevel = None
    critical_exchange_above: OptionalLevel = None
    emergency_exchange_above: OptionalLevel = None
    lowest_level: ClassVar[float] = 1.0
    why_lowest: ClassVar[str] = (
        ": the exchange liquidates at 100%, so a lower level would fire only after liquidation"
    )

    def below_levels(self) -> list[tuple[Severity, float, str]]:
        levels = []
        for severity in _SEVERITIES:
            name = severity.value
            exchange = getattr(self, f"{name}_exchange_above")
            if exchange is not None:
                if not 0 < exchange < 1:
                    raise ValueError(
                        f"{name}_exchange_above ({config_percent(exchange)}) must be above 0% "
                        "and below 100%: the exchange liquidates at 100%, so a higher level "
                        f"would fire only after liquidation{_FRACTION_HINT}"
                    )
                levels.append((severity, 1 / exchange, f"{name}_exchange_above"))
            elif getattr(self, f"{name}_below") is not None:
                levels.append((severity, getattr(self, f"{name}_below"), f"{name}_below"))
        return levels

    def checked(self) -> Self:
        for severity in _SEVERITIES:
            name = severity.value
            both = {f"{name}_below", f"{name}_exchange_above"}
            if (
                both <= self.model_fields_set
                and getattr(self, f"{name}_exchange_above") is not None
            ):
                raise ValueError(f"give {name}_below or {name}_exchange_above, not both")
        return super().checked()


class LiquidationDistanceAlert(_Levels):
    """`[alerts.liquidation_distance]`: any position's |mark - liquidation| / mark below a level."""

    warning_below: OptionalLevel = 0.10
    critical_below: OptionalLevel = 0.05
    highest_level: ClassVar[float | None] = 1.0


class AccountMoveAlert(_Levels):
    """`[alerts.account_move]`: the uniform move of all prices that liquidates the account is
    smaller (in magnitude) than a level."""

    warning_below: OptionalLevel = 0.15
    critical_below: OptionalLevel = 0.08
    highest_level: ClassVar[float | None] = 1.0


class _Single(_Timed):
    severity: SeverityName = "warning"

    @model_validator(mode="after")
    def _check(self) -> Self:
        return self if self.partial else self.checked()

    def single(self, key: RuleKey, level: float, **extra: Any) -> Rule:
        """A one-severity rule at `level`."""
        return Rule(
            key,
            ((Severity(self.severity), level),),
            debounce=self.for_,
            repeat=self.repeat_interval,
            **extra,
        )


class StaleAlert(_Single):
    """`[alerts.stale]`: no successful poll for `after` poll intervals."""

    severity: SeverityName = "critical"
    for_: Duration = Field(default=timedelta(0), alias="for")
    # TOML has nan and inf literals; either would make the rule never fire.
    after: float = Field(default=3.0, allow_inf_nan=False)

    def checked(self) -> Self:
        if self.after < 1:
            raise ValueError(f"after ({self.after:g}) must be at least 1 poll interval")
        return self


class AuthAlert(_Single):
    """`[alerts.auth]`: the exchange rejects the API key (invalid, expired, IP, permissions)."""

    severity: SeverityName = "critical"
    for_: Duration = Field(default=timedelta(0), alias="for")
    repeat: Duration = timedelta(hours=6)


class LiquidationMismatchAlert(_Single):
    """`[alerts.liquidation_mismatch]`: our liquidation price and the exchange's differ by more
    than `tolerance` (relative to the exchange's) for any position."""

    for_: Duration = Field(default=timedelta(minutes=2), alias="for")
    repeat: Duration = timedelta(hours=24)
    tolerance: Share = 0.02
    clear_band: Share = 0.2

    def checked(self) -> Self:
        if self.tolerance <= 0:
            raise ValueError(f"tolerance ({config_percent(self.tolerance)}) must be above 0%")
        if not 0 <= self.clear_band < 1:
            raise ValueError(
                f"clear_band ({config_percent(self.clear_band)}) must be from 0% to below 100%"
            )
        return self


class TierChangeAlert(_Section):
    """`[alerts.tier_change]`: the exchange changed a leverage bracket / risk-limit table."""

    severity: SeverityName = "warning"

    def rule(self) -> Rule:
        """The one-shot rule: any changed table notifies once."""
        return Rule(RuleKey.TIER_CHANGE, ((Severity(self.severity), 1.0),))


class MarginChasingAlert(_Single):
    """`[alerts.margin_chasing]`: margin added `count` times to one isolated position within `window`."""

    for_: Duration = Field(default=timedelta(0), alias="for")
    repeat: Duration = timedelta(hours=24)
    count: int = 3
    window: Duration = timedelta(hours=24)
    min_increase: Share = 0.01

    def checked(self) -> Self:
        if self.count < 2:
            raise ValueError(f"count ({self.count}) must be at least 2")
        if self.window <= timedelta(0):
            raise ValueError("window must be longer than 0s")
        if self.min_increase < 0:
            raise ValueError(
                f"min_increase ({config_percent(self.min_increase)}) cannot be negative"
            )
        return self


class VenuePausedAlert(_Single):
    """`[alerts.venue_paused]`: the venue banned this address (HTTP 418/429, Bybit 403) for longer
    than a fetch sits out; one alert per venue and address, with the retry-after. While it
    holds, the pause does not count towards the `stale` rule of the accounts it pauses."""

    for_: Duration = Field(default=timedelta(0), alias="for")


class MoveInSigmaAlert(_Single):
    """`[alerts.move_in_sigma]`: the account move or a position's distance to liquidation is
    smaller than `below` typical moves (sigmas) of `horizon` (realised volatility of the venue's
    klines). Off unless enabled."""

    enabled: bool = False
    below: float = Field(default=3.0, allow_inf_nan=False)
    horizon: Horizon = Horizon.HOURLY
    clear_band: Share = 0.2

    def checked(self) -> Self:
        if self.below <= 0:
            raise ValueError(f"below ({self.below:g}) must be above 0 sigma")
        if not 0 <= self.clear_band <= 1:
            raise ValueError(
                f"clear_band ({config_percent(self.clear_band)}) must be from 0% to 100%"
            )
        return self


class StopLossAlert(_Timed):
    """`[alerts.stop_loss]` (off by default): a position without an effective stop-loss for
    longer than `grace` (warning), a stop beyond the liquidation price (critical: it can never
    fire), and optionally a loss at the stop above `max_loss` of equity (warning)."""

    enabled: bool = False
    for_: Duration = Field(default=timedelta(0), alias="for")
    grace: Duration = timedelta(minutes=5)
    max_loss: OptionalLevel = None

    @model_validator(mode="after")
    def _check(self) -> Self:
        return self if self.partial else self.checked()

    def checked(self) -> Self:
        if self.max_loss is not None and not 0 < self.max_loss < 1:
            raise ValueError(
                f"max_loss ({config_percent(self.max_loss)}) must be above 0% and below 100%"
            )
        return self

    def rule(self) -> Rule:
        """Warning at a position without protection, critical at a stop that cannot fire."""
        return Rule(
            RuleKey.STOP_LOSS,
            ((Severity.WARNING, STOP_UNPROTECTED), (Severity.CRITICAL, STOP_BEYOND_LIQUIDATION)),
            debounce=self.for_,
            repeat=self.repeat_interval,
            grace=self.grace,
            max_loss=self.max_loss,
        )


class _Partial:
    partial: ClassVar[bool] = True


class MarginRatioOverride(_Partial, MarginRatioAlert):
    """`[accounts.NAME.alerts.margin_ratio]`: keys that replace the defaults for one account."""


class LiquidationDistanceOverride(_Partial, LiquidationDistanceAlert):
    """`[accounts.NAME.alerts.liquidation_distance]`."""


class AccountMoveOverride(_Partial, AccountMoveAlert):
    """`[accounts.NAME.alerts.account_move]`."""


class StaleOverride(_Partial, StaleAlert):
    """`[accounts.NAME.alerts.stale]`."""


class AuthOverride(_Partial, AuthAlert):
    """`[accounts.NAME.alerts.auth]`."""


class LiquidationMismatchOverride(_Partial, LiquidationMismatchAlert):
    """`[accounts.NAME.alerts.liquidation_mismatch]`."""


class TierChangeOverride(_Partial, TierChangeAlert):
    """`[accounts.NAME.alerts.tier_change]`."""


class MarginChasingOverride(_Partial, MarginChasingAlert):
    """`[accounts.NAME.alerts.margin_chasing]`."""


class VenuePausedOverride(_Partial, VenuePausedAlert):
    """`[accounts.NAME.alerts.venue_paused]`."""


class MoveInSigmaOverride(_Partial, MoveInSigmaAlert):
    """`[accounts.NAME.alerts.move_in_sigma]`."""


class StopLossOverride(_Partial, StopLossAlert):
    """`[accounts.NAME.alerts.stop_loss]`."""


class AlertsSettings(BaseModel):
    """`[alerts]`: the rules every account gets unless it overrides them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin_ratio: MarginRatioAlert = MarginRatioAlert()
    liquidation_distance: LiquidationDistanceAlert = LiquidationDistanceAlert()
    account_move: AccountMoveAlert = AccountMoveAlert()
    stale: StaleAlert = StaleAlert()
    auth: AuthAlert = AuthAlert()
    liquidation_mismatch: LiquidationMismatchAlert = LiquidationMismatchAlert()
    tier_change: TierChangeAlert = TierChangeAlert()
    margin_chasing: MarginChasingAlert = MarginChasingAlert()
    venue_paused: VenuePausedAlert = VenuePausedAlert()
    move_in_sigma: MoveInSigmaAlert = MoveInSigmaAlert()
    stop_loss: StopLossAlert = StopLossAlert()

    def merged(self, overrides: AccountAlerts | None, *, path: str = "alerts") -> AlertsSettings:
        """These defaults with an account's overrides applied key by key.

        Raises `ConfigError` naming `path` plus the key when the combination is invalid (e.g. an
        account's `critical_below` above the default `warning_below`).
        """
        if overrides is None:
            return self
        sections: dict[str, BaseModel] = {}
        for name in type(self).model_fields:
            base: _Section = getattr(self, name)
            override: _Section | None = getattr(overrides, name)
            if override is None:
                continue
            changed = override.model_dump(include=override.model_fields_set)
            data = {**base.model_dump(include=base.model_fields_set), **changed}
            if isinstance(base, MarginRatioAlert):
                # One level is one key, written in either convention: the override's wins.
                for severity in _SEVERITIES:
                    pair = (f"{severity.value}_below", f"{severity.value}_exchange_above")
                    if any(key in changed for key in pair):
                        data = {k: v for k, v in data.items() if k not in pair or k in changed}
            try:
                sections[name] = type(base).model_validate(data, context={_PARSED: True})
            except ValidationError as exc:
                raise ConfigError(_describe(exc, f"{path}.{name}")) from None
        return self.model_copy(update=sections)

    def to_rules(self) -> AlertRules:
        """The enabled rules as domain objects for the state machine."""
        rules: list[Rule] = []
        for key, section in (
            (RuleKey.MARGIN_RATIO, self.margin_ratio),
            (RuleKey.LIQUIDATION_DISTANCE, self.liquidation_distance),
            (RuleKey.ACCOUNT_MOVE, self.account_move),
        ):
            if section.enabled:
                rules.append(section.rule(key))
        if self.stale.enabled:
            # A venue-wide pause is reported once by `venue_paused`; without that rule the
            # pause counts as staleness, so nobody misses it.
            excuse = self.venue_paused.enabled
            rules.append(self.stale.single(RuleKey.STALE, self.stale.after, excuse_pauses=excuse))
        if self.auth.enabled:
            rules.append(self.auth.single(RuleKey.AUTH, 1.0))
        mismatch = self.liquidation_mismatch
        if mismatch.enabled:
            rules.append(
                mismatch.single(
                    RuleKey.LIQUIDATION_MISMATCH, mismatch.tolerance, clear_band=mismatch.clear_band
                )
            )
        if self.tier_change.enabled:
            rules.append(self.tier_change.rule())
        chasing = self.margin_chasing
        if chasing.enabled:
            rules.append(
                chasing.single(
                    RuleKey.MARGIN_CHASING,
                    float(chasing.count),
                    window=chasing.window,
                    min_increase=chasing.min_increase,
                )
            )
        if self.venue_paused.enabled:
            rules.append(self.venue_paused.single(RuleKey.VENUE_PAUSED, 1.0))
        sigma = self.move_in_sigma
        if sigma.enabled:
            rules.append(
                sigma.single(
                    RuleKey.MOVE_IN_SIGMA,
                    sigma.below,
                    clear_band=sigma.clear_band,
                    horizon=sigma.horizon,
                )
            )
        if self.stop_loss.enabled:
            rules.append(self.stop_loss.rule())
        return AlertRules(tuple(rules))


class AccountAlerts(BaseModel):
    """`[accounts.NAME.alerts]`: per-rule keys that replace the `[alerts]` defaults for one account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    margin_ratio: MarginRatioOverride | None = None
    liquidation_distance: LiquidationDistanceOverride | None = None
    account_move: AccountMoveOverride | None = None
    stale: StaleOverride | None = None
    auth: AuthOverride | None = None
    liquidation_mismatch: LiquidationMismatchOverride | None = None
    tier_change: TierChangeOverride | None = None
    margin_chasing: MarginChasingOverride | None = None
    venue_paused: VenuePausedOverride | None = None
    move_in_sigma: MoveInSigmaOverride | None = None
    stop_loss: StopLossOverride | None = None


def account_rules(
    defaults: AlertsSettings, overrides: AccountAlerts | None, name: str
) -> AlertRules:
    """The rules of account `name`: the `[alerts]` defaults merged with its overrides.

    Raises `ConfigError` naming `accounts.NAME.alerts.RULE.KEY` when the merged values are invalid.
    """
    merged = defaults.merged(overrides, path=f"accounts.{name}.alerts")
    try:
        return merged.to_rules()
    except InvalidInput as exc:
        raise ConfigError(f"accounts.{name}.{exc.path}: {exc.problem}") from None


def _describe(exc: ValidationError, path: str) -> str:
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        where = ".".join([path, *(str(part) for part in error["loc"])])
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(problems)
