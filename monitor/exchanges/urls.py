"""Pointing a ccxt instance at another host (simulator, proxy) while keeping every API path."""

from __future__ import annotations

import re
from typing import Any

_SCHEME_AND_HOST = re.compile(r"^https?://[^/]+")


def rewrite_api_urls(urls: Any, base_url: str) -> Any:
    """A copy of ccxt's `urls['api']` (a string or nested dicts of them) with scheme and host
    replaced by `base_url`; paths and `{hostname}` templates in paths are kept."""
    if isinstance(urls, dict):
        return {key: rewrite_api_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str):
        return _SCHEME_AND_HOST.sub(base_url.rstrip("/"), urls)
    return urls


_WS_SCHEME_AND_HOST = re.compile(r"^wss?://[^/]+")


def rewrite_ws_urls(urls: Any, base_url: str) -> Any:
    """A copy of ccxt.pro's `urls['api']['ws']` pointed at `base_url` ("http://HOST:PORT"): each
    production websocket URL keeps its path, its scheme and host become `ws://HOST:PORT`."""
    target = re.sub(r"^https?://", "ws://", base_url.rstrip("/"))
    if isinstance(urls, dict):
        return {key: rewrite_ws_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str):
        return _WS_SCHEME_AND_HOST.sub(target, urls)
    return urls
