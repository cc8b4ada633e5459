"""A small JSON-over-HTTPS client on `urllib.request` that speaks our two error kinds.

Network failures, timeouts, 5xx and rate limits become `TemporaryError` (with the delay the
server asked for, when it said); every other 4xx becomes `ForgeRefused` carrying the forge's
own message, so `linefleet: error:` shows what GitHub or Gitea actually said.
"""

from __future__ import annotations

import http.client
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import Any

from linefleet_core.errors import TemporaryError
from linefleet_forge.base import ForgeRefused

MAX_BODY = 16 * 1024 * 1024
_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


@dataclass(frozen=True)
class Response:
    status: int
    data: Any
    headers: Mapping[str, str]

    def next_url(self) -> str | None:
        """The `rel="next"` page from a `Link` header (GitHub and Gitea both send one)."""
        m = _NEXT.search(self.headers.get("link", ""))
        return m.group(1) if m else None


class JsonClient:
    def __init__(
        self, base_url: str, headers: Mapping[str, str], *, name: str, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.headers = {
            "Accept": "application/json",
            "User-Agent": "linefleet",
            **headers,
        }
        self.name = name
        self.timeout = timeout

    def url(self, path: str, query: Mapping[str, str | int] | None = None) -> str:
        url = path if "://" in path else f"{self.base_url}{path}"
        if query:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        return url

    def call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, str | int] | None = None,
    ) -> Response:
        url = self.url(path, query)
        data = None if body is None else json.dumps(body).encode()
        headers = dict(self.headers)
        if data is not None:
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"{self.name}: {method} {urllib.parse.urlsplit(url).path}"
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                raw = reply.read(MAX_BODY + 1)
                status, reply_headers = reply.status, _lower(reply.headers)
        except urllib.error.HTTPError as exc:
            raw = exc.read(MAX_BODY + 1)
            raise _http_error(where, exc.code, _lower(exc.headers), raw) from None
        except TimeoutError:
            raise TemporaryError(f"{where}: timed out after {self.timeout:g} s") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(reason, TimeoutError):
                raise TemporaryError(f"{where}: timed out after {self.timeout:g} s") from None
            raise TemporaryError(f"{where}: cannot connect: {reason or exc!r}") from None
        if len(raw) > MAX_BODY:
            raise TemporaryError(f"{where}: reply larger than {MAX_BODY} bytes")
        return Response(status, _decode(where, raw), reply_headers)

    def pages(self, path: str, query: Mapping[str, str | int]) -> Iterator[Any]:
        """Every item of a paginated list, following `Link: rel="next"`."""
        url: str | None = self.url(path, query)
        seen: set[str] = set()
        while url is not None and url not in seen:
            seen.add(url)
            reply = self.call("GET", url)
            if not isinstance(reply.data, list):
                raise TemporaryError(f"{self.name}: GET {path}: expected a JSON list")
            yield from reply.data
            url = reply.next_url()


def _lower(headers: Message | Mapping[str, str] | None) -> dict[str, str]:
    if headers is None:
        return {}
    return {k.lower(): v for k, v in headers.items()}


def _decode(where: str, raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise TemporaryError(f"{where}: the reply is not JSON: {raw[:120]!r}") from None


def forge_message(raw: bytes) -> str:
    """The human part of an error reply: GitHub's `message` + `errors[].message`, Gitea's too."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:300].decode("utf-8", "replace").strip()
    if not isinstance(doc, dict):
        return str(doc)[:300]
    parts = [str(doc.get("message") or "").strip()]
    for err in doc.get("errors") or ():
        if isinstance(err, dict):
            detail = err.get("message") or " ".join(
                str(err[k]) for k in ("resource", "field", "code") if k in err
            )
            parts.append(str(detail))
        elif err:
            parts.append(str(err))
    return "; ".join(p for p in parts if p) or "no message"


def _retry_after(headers: Mapping[str, str]) -> float | None:
    if "retry-after" in headers:
        try:
            return max(1.0, float(headers["retry-after"]))
        except ValueError:
            return 60.0
    if headers.get("x-ratelimit-remaining") == "0":
        try:
            return max(1.0, float(headers["x-ratelimit-reset"]) - time.time())
        except (KeyError, ValueError):
            return 60.0
    return None


def _http_error(
    where: str, status: int, headers: Mapping[str, str], raw: bytes
) -> TemporaryError | ForgeRefused:
    message = forge_message(raw)
    delay = _retry_after(headers)
    if status == 429 or (status == 403 and delay is not None):
        return TemporaryError(
            f"{where}: rate limited (HTTP {status}): {message}", delay=delay or 60.0
        )
    if status >= 500 or status == 408:
        return TemporaryError(f"{where}: HTTP {status}: {message}", delay=delay or 5.0)
    hint = {401: " (check the token)", 403: " (the token may lack permission)"}.get(status, "")
    return ForgeRefused(f"{where}: HTTP {status}{hint}: {message}", status=status)
