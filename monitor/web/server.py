"""The dashboard and its read-only JSON API, served by the daemon on its own asyncio loop.

Pages are server-rendered HTML with inline SVG charts; a few lines of JavaScript re-fetch the
page every few seconds and swap its content (live without reload, no library, no CDN). Reads need
no login; silences (the only action) need a login, a CSRF token, and expire with the session.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import quote

from aiohttp import web

from monitor.config import Settings
from monitor.domain.errors import InvalidInput, MonitorError, PermanentError
from monitor.domain.margin import assess
from monitor.domain.model import AccountState
from monitor.domain.scenarios import apply_shocks, parse_shock
from monitor.domain.units import (
    format_amount,
    format_duration,
    format_percent,
    format_price,
    format_quantity,
    parse_duration,
)
from monitor.storage import queries
from monitor.storage.repository import SqlStore
from monitor.web.auth import Session, Sessions, password_matches
from monitor.web.charts import line_chart

log = logging.getLogger(__name__)

COOKIE = "pm_session"
REFRESH_SECONDS = 3
# The history chart draws at most this many points (bucketed), so a week stays light.
MAX_POINTS = 400

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    """The dashboard of one daemon: reads the store, the daemon's live state and settings."""

    def __init__(
        self,
        store: SqlStore,
        settings: Callable[[], Settings],
        *,
        stream_health: Callable[[str], str | None] = lambda name: None,
        last_state: Callable[[str], AccountState | None] = lambda name: None,
        poll_trouble: Callable[[str], str | None] = lambda name: None,
        silences_changed: Callable[[], None] = lambda: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._silences_changed = silences_changed
        self._settings = settings
        self._stream_health = stream_health
        self._last_state = last_state
        self._poll_trouble = poll_trouble
        self._now = clock
        self._sessions = Sessions(settings().web.session_lifetime)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def app(self) -> web.Application:
        """The aiohttp application (routes only; `start` serves it)."""
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._overview)
        app.router.add_get("/accounts/{name}", self._account)
        app.router.add_get("/alerts", self._alerts)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_post("/logout", self._logout)
        app.router.add_post("/silences", self._add_silence)
        app.router.add_post("/silences/{id}/remove", self._remove_silence)
        app.router.add_get("/api/accounts", self._api_accounts)
        app.router.add_get("/api/accounts/{name}/history", self._api_history)
        app.router.add_get("/api/alerts", self._api_alerts)
        return app

    async def start(self, host: str, port: int) -> None:
        """Listen on host:port (port 0: any free one, then `self.port`); MonitorError naming
        `web.listen` when that address cannot be bound."""
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            raise PermanentError(f"web.listen {host}:{port}: {exc.strerror or exc}") from None
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        log.info("dashboard on http://%s:%d/", host if ":" not in host else f"[{host}]", self.port)

    async def stop(self) -> None:
        """Stop listening."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- data --------------------------------------------------------------------------------

    async def accounts(self) -> list[dict[str, Any]]:
        """Every stored or configured account's latest figures, as `GET /api/accounts` serves."""
        now = self._now()
        configured = self._settings().accounts
        stored = {info.name for info in await queries.accounts(self._store)}
        firing = await queries.firing_alerts(self._store)
        rows = []
        for name in sorted(stored | set(configured)):
            latest = await queries.latest_snapshot(self._store, name) if name in stored else None
            nearest = None
            if latest is not None:
                distances = [
                    (p.distance_to_liquidation, p.symbol)
                    for p in latest.positions
                    if p.distance_to_liquidation is not None
                ]
                nearest = min(distances, default=None)
            rows.append(
                {
                    "name": name,
                    "configured": name in configured,
                    "margin_ratio": latest.margin_ratio if latest else None,
                    "exchange_margin_ratio": latest.exchange_margin_ratio if latest else None,
                    "account_liquidation_move": latest.account_liquidation_move if latest else None,
                    "nearest_liquidation": None
                    if nearest is None
                    else {"symbol": nearest[1], "distance": nearest[0]},
                    "equity": latest.equity if latest else None,
                    "firing": [
                        {"rule": f.rule_key, "severity": f.severity}
                        for f in firing
                        if f.account == name
                    ],
                    "at": latest.taken_at if latest else None,
                    "age_seconds": round((now - latest.taken_at).total_seconds(), 1)
                    if latest
                    else None,
                    "stream": self._stream_health(name),
                    "poll_error": self._poll_trouble(name),
                }
            )
        return rows

    # -- JSON API ----------------------------------------------------------------------------

    async def _api_accounts(self, request: web.Request) -> web.Response:
        return _json(await self.accounts())

    async def _api_history(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        start = _since(request, "1h", self._now())
        every = _every(request)
        try:
            points = await queries.account_history(self._store, name, start, self._now(), every)
        except InvalidInput as exc:
            raise web.HTTPNotFound(
                text=json.dumps({"error": str(exc).replace("--account", "name")}),
                content_type="application/json",
            ) from None
        return _json([queries.account_row(name, point) for point in points])

    async def _api_alerts(self, request: web.Request) -> web.Response:
        start = _since(request, "1d", self._now())
        return _json(await queries.alert_history(self._store, start))

    # -- pages -------------------------------------------------------------------------------

    async def _overview(self, request: web.Request) -> web.Response:
        rows = await self.accounts()
        body = ["<h1>Accounts</h1>"]
        if not rows:
            body.append("<p>No account configured or stored yet.</p>")
        else:
            body.append(
                "<table><thead><tr><th>account</th><th>margin ratio</th>"
                "<th>exchange ratio</th><th>account move to liq.</th><th>nearest liq.</th>"
                "<th>equity</th><th>firing</th><th>data age</th><th>marks</th><th>polls</th></tr>"
                "</thead><tbody>"
            )
            for row in rows:
                nearest = row["nearest_liquidation"]
                firing = " ".join(
                    f'<span class="badge {escape(f["severity"])}">{escape(f["rule"])} '
                    f"({escape(f['severity'])})</span>"
                    for f in row["firing"]
                )
                age = row["age_seconds"]
                body.append(
                    f'<tr class="account" data-account="{escape(row["name"])}">'
                    f'<td><a href="/accounts/{quote(row["name"])}">{escape(row["name"])}</a></td>'
                    f"<td>{_pct(row['margin_ratio'])}</td>"
                    f"<td>{_pct(row['exchange_margin_ratio'])}</td>"
                    f"<td>{_pct(row['account_liquidation_move'], signed=True)}</td>"
                    f"<td>{'-' if nearest is None else escape(nearest['symbol'])} "
                    f"{'' if nearest is None else _pct(nearest['distance'])}</td>"
                    f"<td>{_num(row['equity'])}</td>"
                    f'<td class="firing">{firing or "none"}</td>'
                    f"<td>{'-' if age is None else format_duration(timedelta(seconds=age))}</td>"
                    f"<td>{escape(row['stream'] or 'polling')}</td>"
                    f'<td class="error">{escape(row["poll_error"] or "")}</td></tr>'
                )
            body.append("</tbody></table>")
        body.append(
            "<p class=note>margin ratio = equity / maintenance margin (liquidation at 100 %); "
            "exchange ratio = maintenance margin / equity as Binance and Bybit show it "
            "(liquidation at 100 %).</p>"
        )
        return self._page(request, "Overview", "".join(body))

    async def _account(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        try:
            latest = await queries.latest_snapshot(self._store, name)
        except InvalidInput:
            raise web.HTTPNotFound(text=f"no stored account {name!r}") from None
        since_text = request.query.get("since", "1h")
        start = _since(request, "1h", self._now())
        body = [f"<h1>{escape(name)}</h1>"]
        if latest is None:
            body.append("<p>No snapshot stored yet.</p>")
        else:
            body.append(_account_summary(latest))
            body.append(_positions_table(latest))
        body.append(self._shock_form(request, name))
        body.append(await self._charts(name, start, since_text))
        body.append(await self._silences_section(request, name))
        return self._page(request, name, "".join(body))

    def _shock_form(self, request: web.Request, name: str) -> str:
        text = request.query.get("shock", "")
        parts = [
            "<h2>What if</h2>",
            f'<form method="get" action="/accounts/{quote(name)}" class="shock">'
            f'<label>move <input name="shock" value="{escape(text)}" '
            'placeholder="BTC=-10% or all=-5%"></label> <button>compute</button></form>',
        ]
        if not text:
            return "".join(parts)
        state = self._last_state(name)
        if state is None:
            parts.append("<p>No fetched state of this account in this daemon yet.</p>")
            return "".join(parts)
        try:
            shocks = [parse_shock(piece, path="shock") for piece in text.split(",") if piece]
            risk = assess(apply_shocks(state, shocks, path="shock"))
        except InvalidInput as exc:
            parts.append(f'<p class="error">{escape(str(exc))}</p>')
            return "".join(parts)
        parts.append(
            f'<p class="shock-result">After {escape(text)}: margin ratio '
            f"{_pct(risk.margin_ratio)}, exchange ratio {_pct(risk.exchange_margin_ratio)}, "
            f"equity {_num(risk.equity)}, account move to liquidation "
            f"{_pct(risk.account_liquidation_move, signed=True)}</p>"
            "<table><tr><th>symbol</th><th>liquidation</th><th>distance</th></tr>"
        )
        for position in risk.positions:
            parts.append(
                f"<tr><td>{escape(position.symbol)}</td>"
                f"<td>{_price(position.liquidation_price)}</td>"
                f"<td>{_pct(position.distance_to_liquidation)}</td></tr>"
            )
        parts.append("</table>")
        return "".join(parts)

    async def _charts(self, name: str, start: datetime, since_text: str) -> str:
        now = self._now()
        settings = self._settings()
        interval = 60.0
        if name in settings.accounts:
            interval = settings.accounts[name].poll_interval.total_seconds()
            if settings.streams.enabled:
                interval = max(interval, settings.streams.reconcile_interval.total_seconds())
        span = (now - start).total_seconds()
        # Whole-minute buckets (lowest ratio of each) once raw points would be too many to draw.
        every = None
        if span / interval > MAX_POINTS:
            every = max(60, math.ceil(span / MAX_POINTS / 60) * 60)
        points = await queries.account_history(self._store, name, start, now, every)
        # A gap: more than three polls missing (as `status` calls data stale), but at least 30 s
        # so that a busy machine's late polls of a 1 s account do not break the line.
        gap = timedelta(seconds=max(3 * interval, 3 * (every or 0), 30))
        events = await queries.alert_history(self._store, start, name)
        markers = [
            (e["at"], f"{e['rule']} {e['severity']} {e['kind']}")
            for e in events
            # The moments risk rose; repeats and resolutions would clutter the chart.
            if e["kind"] in ("firing", "escalated")
        ]
        alerts = settings.alerts
        if name in settings.accounts:
            alerts = alerts.merged(settings.accounts[name].alerts)
        levels = [(s.value, level) for s, level, _ in alerts.margin_ratio.below_levels()]
        asset = (
            settings.accounts[name].asset
            if name in settings.accounts
            else next((i.asset for i in await queries.accounts(self._store) if i.name == name), "")
        )
        windows = " ".join(f'<a href="?since={w}">{w}</a>' for w in ("15m", "1h", "6h", "1d", "7d"))
        return (
            f"<h2>History since {escape(since_text)}</h2><p>{windows}</p>"
            "<h3>Margin ratio (lowest per point) with alert levels and firings</h3>"
            + line_chart(
                [(p.at, p.margin_ratio_min) for p in points],
                label="margin ratio",
                unit="margin ratio",
                gap_after=gap,
                levels=levels,
                markers=markers,
                percent=True,
            )
            + f"<h3>Equity ({escape(asset)})</h3>"
            + line_chart(
                [(p.at, p.equity) for p in points],
                label="equity",
                unit=asset,
                gap_after=gap,
                markers=markers,
            )
        )

    async def _silences_section(self, request: web.Request, name: str) -> str:
        silences = await self._store.active_silences(self._now(), name)
        session = self._session(request)
        parts = ["<h2>Silences</h2>"]
        if not silences:
            parts.append("<p>No silence in force.</p>")
        for silence in silences:
            remaining = format_duration(max(silence.until - self._now(), timedelta(0)))
            remove = ""
            if session is not None:
                remove = (
                    f'<form method="post" action="/silences/{silence.id}/remove" class="inline">'
                    f'<input type="hidden" name="csrf" value="{session.csrf}">'
                    f'<input type="hidden" name="account" value="{escape(name)}">'
                    "<button>end now</button></form>"
                )
            parts.append(
                f'<p class="silence">silenced until {_stamp(silence.until)} UTC ({remaining}) '
                f"{escape(silence.reason)} {remove}</p>"
            )
        if session is None:
            parts.append(
                f'<p><a href="/login?next=/accounts/{quote(name)}">Log in</a> to silence.</p>'
            )
        else:
            parts.append(
                '<form method="post" action="/silences" class="silence-form">'
                f'<input type="hidden" name="csrf" value="{session.csrf}">'
                f'<input type="hidden" name="account" value="{escape(name)}">'
                '<label>for <input name="for" value="1h" size="5"></label> '
                '<label>reason <input name="reason" size="30"></label> '
                "<button>silence notifications</button></form>"
            )
        return "".join(parts)

    async def _alerts(self, request: web.Request) -> web.Response:
        start = _since(request, "1d", self._now())
        events = await queries.alert_history(self._store, start)
        body = [
            "<h1>Alert log</h1><table><thead><tr><th>at (UTC)</th><th>account</th><th>rule</th>"
            "<th>severity</th><th>kind</th><th>title</th><th>held back</th>"
            "<th>deliveries</th></tr></thead><tbody>"
        ]
        for e in reversed(events):
            deliveries = ", ".join(
                f"{escape(d['sink'])}: {escape(d['state'])}" for d in e["deliveries"]
            )
            body.append(
                f'<tr class="{escape(e["severity"])}"><td>{_stamp(e["at"])}</td>'
                f"<td>{escape(e['account'])}</td><td>{escape(e['rule'])}</td>"
                f"<td>{escape(e['severity'])}</td><td>{escape(e['kind'])}</td>"
                f"<td>{escape(e['title'])}</td><td>{escape(str(e['suppressed'] or ''))}</td>"
                f"<td>{deliveries}</td></tr>"
            )
        body.append("</tbody></table>")
        if not events:
            body.append(f"<p>No alert events since {_stamp(start)} UTC.</p>")
        return self._page(request, "Alerts", "".join(body))

    # -- login and actions -------------------------------------------------------------------

    def _session(self, request: web.Request) -> Session | None:
        return self._sessions.find(request.cookies.get(COOKIE), self._now())

    async def _login_form(self, request: web.Request) -> web.Response:
        return self._page(request, "Log in", _login_html(request.query.get("next", "/"), ""))

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        target = _local_path(str(form.get("next", "/")))
        stored = self._settings().web.password_hash
        password = str(form.get("password", ""))
        if stored is None or not password_matches(password, stored.get_secret_value()):
            # Never the password itself: only who tried.
            log.warning("dashboard login refused from %s", request.remote)
            page = self._page(
                request,
                "Log in",
                _login_html(
                    target,
                    "No password is configured ([web] password_hash)"
                    if stored is None
                    else "Wrong password.",
                ),
            )
            page.set_status(401)
            return page
        session = self._sessions.open(self._now())
        log.info("dashboard login from %s", request.remote)
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE,
            session.token,
            httponly=True,
            samesite="Strict",
            max_age=int((session.expires - self._now()).total_seconds()),
        )
        raise response

    async def _logout(self, request: web.Request) -> web.Response:
        session = await self._authorised(request)
        self._sessions.close(session.token)
        response = web.HTTPSeeOther("/")
        response.del_cookie(COOKIE)
        raise response

    async def _authorised(self, request: web.Request) -> Session:
        session = self._session(request)
        if session is None:
            raise web.HTTPUnauthorized(text="log in first (/login); sessions expire")
        form = await request.post()
        if str(form.get("csrf", "")) != session.csrf:
            raise web.HTTPForbidden(text="the form is stale (CSRF token mismatch): reload the page")
        return session

    async def _add_silence(self, request: web.Request) -> web.Response:
        await self._authorised(request)
        form = await request.post()
        account = str(form.get("account", ""))
        try:
            length = parse_duration(str(form.get("for", "")), path="for")
        except InvalidInput as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        if length <= timedelta(0):
            raise web.HTTPBadRequest(text="for: a silence must last longer than 0s")
        if not await queries.known_account(self._store, account):
            raise web.HTTPBadRequest(text=f"account: no stored account {account!r}")
        now = self._now()
        added = await self._store.add_silence(
            account, until=now + length, reason=str(form.get("reason", "")), now=now
        )
        self._silences_changed()
        log.info("silence %d of %s until %s made on the dashboard", added.id, account, added.until)
        raise web.HTTPSeeOther(f"/accounts/{quote(account)}")

    async def _remove_silence(self, request: web.Request) -> web.Response:
        await self._authorised(request)
        form = await request.post()
        try:
            silence_id = int(request.match_info["id"])
        except ValueError:
            raise web.HTTPNotFound(text="no such silence") from None
        if not 0 < silence_id < 2**63 or not await self._store.remove_silence(silence_id):
            raise web.HTTPNotFound(text=f"no silence with id {silence_id}")
        self._silences_changed()
        raise web.HTTPSeeOther(f"/accounts/{quote(str(form.get('account', '')))}")

    # -- frame -------------------------------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            not from_loopback(request.remote)
            and request.path != "/login"
            and self._session(request) is None
        ):
            # Beyond this machine (a password is then configured) even reads need a login.
            if request.path.startswith("/api/"):
                raise web.HTTPUnauthorized(
                    text=json.dumps({"error": "log in first: POST /login with password"}),
                    content_type="application/json",
                )
            raise web.HTTPSeeOther(f"/login?next={quote(request.path_qs)}")
        try:
            return await handler(request)
        except MonitorError as exc:
            # The store failing: say so rather than a bare 500.
            log.warning("dashboard %s: %s", request.path, exc)
            raise web.HTTPServiceUnavailable(text=f"database error: {exc}") from None

    def _page(self, request: web.Request, title: str, body: str) -> web.Response:
        session = self._session(request)
        user = (
            '<form method="post" action="/logout" class="inline">'
            f'<input type="hidden" name="csrf" value="{session.csrf}"><button>log out</button>'
            "</form>"
            if session
            else '<a href="/login">log in</a>'
        )
        html = (
            "<!doctype html><html lang=en><head><meta charset=utf-8>"
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>{escape(title)} · portfolio-monitor</title><style>{_CSS}</style></head><body>"
            '<nav><a href="/">overview</a> <a href="/alerts">alerts</a> '
            f'<span class="user">{user}</span> <span id="updated"></span></nav>'
            f'<main id="main">{body}</main><script>{_LIVE_JS}</script></body></html>'
        )
        return web.Response(text=html, content_type="text/html")


def from_loopback(remote: str | None) -> bool:
    """Whether a request came from this machine (reads need no login then)."""
    if remote is None:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def _json(data: Any) -> web.Response:
    return web.Response(
        text=json.dumps(data, default=_jsonable, allow_nan=False), content_type="application/json"
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _since(request: web.Request, default: str, now: datetime) -> datetime:
    """The `since` query parameter: a duration back from now (1h, 7d) or an ISO time."""
    text = request.query.get("since", default)
    try:
        return now - parse_duration(text, path="since")
    except (InvalidInput, OverflowError):
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _bad(
            f"since: {text!r} is neither a duration (1h, 7d) nor an ISO time (2026-03-01T12:00:00)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _every(request: web.Request) -> int | None:
    text = request.query.get("every")
    if text is None:
        return None
    try:
        seconds = parse_duration(text, path="every").total_seconds()
    except InvalidInput as exc:
        raise _bad(str(exc)) from None
    if seconds < 60 or seconds % 60:
        raise _bad(f"every: {text!r} must be a whole number of minutes (1m, 15m, 1h, 1d)")
    return int(seconds)


def _bad(message: str) -> web.HTTPBadRequest:
    return web.HTTPBadRequest(text=json.dumps({"error": message}), content_type="application/json")


def _local_path(target: str) -> str:
    # Only a path on this server: an open redirect would help phishing.
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _login_html(target: str, error: str) -> str:
    problem = f'<p class="error">{escape(error)}</p>' if error else ""
    return (
        f"<h1>Log in</h1>{problem}"
        '<form method="post" action="/login" class="login">'
        f'<input type="hidden" name="next" value="{escape(_local_path(target))}">'
        '<label>password <input type="password" name="password" autofocus></label> '
        "<button>log in</button></form>"
    )


def _account_summary(latest: queries.StoredSnapshot) -> str:
    return (
        '<table class="summary">'
        f"<tr><th>margin ratio</th><td>{_pct(latest.margin_ratio)}</td>"
        f"<th>exchange ratio</th><td>{_pct(latest.exchange_margin_ratio)}</td>"
        f"<th>exchange ratio (venue's figure)</th><td>{_pct(latest.reported_margin_ratio)}</td></tr>"
        f"<tr><th>equity</th><td>{_num(latest.equity)}</td>"
        f"<th>maintenance margin</th><td>{_num(latest.maintenance_margin)}</td>"
        f"<th>account move to liq.</th><td>{_pct(latest.account_liquidation_move, True)}</td>"
        f"</tr><tr><th>as of</th><td colspan=5>{_stamp(latest.taken_at)} UTC</td></tr></table>"
    )


def _positions_table(latest: queries.StoredSnapshot) -> str:
    rows = [
        "<h2>Positions</h2><table><thead><tr><th>symbol</th><th>side</th><th>size</th>"
        "<th>mark</th><th>liquidation (ours)</th><th>liquidation (exchange)</th>"
        "<th>distance</th><th>stop</th></tr></thead><tbody>"
    ]
    for p in latest.positions:
        distance = p.distance_to_liquidation
        # The bar fills as the position nears liquidation: full at 0 %, empty at 50 % or more.
        fill = 0.0 if distance is None else max(0.0, min(1.0, 1 - distance / 0.5))
        colour = "#c0392b" if fill > 0.8 else "#d08a00" if fill > 0.6 else "#2c8f4b"
        stop = "-" if p.stop_status is None else escape(p.stop_status)
        if p.stop_price is not None:
            stop += f" at {_price(p.stop_price)}"
        rows.append(
            f"<tr><td>{escape(p.symbol)}</td><td>{escape(p.side)} {escape(p.margin_mode)}</td>"
            f"<td>{format_quantity(p.quantity)}</td><td>{_price(p.mark_price)}</td>"
            f"<td>{_price(p.liquidation_price)}</td>"
            f"<td>{_price(p.exchange_liquidation_price)}</td>"
            f'<td><span class="bar"><span style="width:{fill * 100:.0f}%;background:{colour}">'
            f"</span></span> {_pct(distance)}</td><td>{stop}</td></tr>"
        )
    rows.append("</tbody></table>")
    if not latest.positions:
        rows.append("<p>No open position.</p>")
    return "".join(rows)


def _pct(value: float | None, signed: bool = False) -> str:
    return "-" if value is None else format_percent(value, signed=signed)


def _num(value: float | None) -> str:
    return "-" if value is None else format_amount(value)


def _price(value: float | None) -> str:
    return "-" if value is None else format_price(value)


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


_CSS = """
body{font:14px system-ui,sans-serif;margin:0;color:#222}nav{background:#1f2d3d;padding:8px 16px}
nav a,nav span{color:#fff;margin-right:12px}nav .user{float:right}nav button{font-size:12px}
main{padding:8px 16px}table{border-collapse:collapse;margin:8px 0}
th,td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
th{background:#f4f6f8}td.firing{white-space:normal}.badge{white-space:nowrap;display:inline-block;margin:1px}
td:first-child,th:first-child{text-align:left}.badge{padding:1px 6px;border-radius:8px;color:#fff}
.warning{background:#d08a00}.critical{background:#c0392b}.emergency{background:#7d0000}
tr.warning,tr.critical,tr.emergency{background:none}.error{color:#c0392b}
.bar{display:inline-block;width:80px;height:8px;background:#eee;vertical-align:middle}
.bar span{display:block;height:8px}.chart{width:100%;max-width:760px;height:auto}
.axis{font-size:11px;fill:#555}.inline{display:inline}.note{color:#666;font-size:12px}
"""

# Live without reload: fetch this page again every few seconds and swap <main>, unless the
# reader is typing in a form (which the swap would wipe).
_LIVE_JS = f"""
setInterval(async () => {{
  const active = document.activeElement;
  if (active && active.form) return;
  try {{
    const r = await fetch(location.href, {{credentials: 'same-origin'}});
    if (!r.ok) return;
    const doc = new DOMParser().parseFromString(await r.text(), 'text/html');
    document.getElementById('main').innerHTML = doc.getElementById('main').innerHTML;
    document.getElementById('updated').textContent =
      'updated ' + new Date().toLocaleTimeString();
  }} catch (e) {{ document.getElementById('updated').textContent = 'offline'; }}
}}, {REFRESH_SECONDS * 1000});
"""
