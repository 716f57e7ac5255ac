"""``listen --web``: the live view served to a browser (a phone) on the local network.

Data flow: the listener thread hands each identification to :meth:`WebView.publish` and each link status
change to :meth:`WebView.status`; both only schedule work on the server's own asyncio loop (its own thread,
:func:`asyncio.AbstractEventLoop.call_soon_threadsafe`) and return at once, so the serial side never waits on
a browser. On that loop every viewer of ``GET /api/events`` (server-sent events) has a bounded queue: a
viewer that falls :data:`QUEUE_SIZE` events behind (a dead phone, a slow network) is dropped, never waited for.

Routes (every one needs the session's token, as ``?token=`` or the ``X-Ramanedge-Token`` header; without it
the answer is 401 and nothing else):

=====================  ======================================================================================
``GET /``               the page (one HTML file with its script inline: no CDN, nothing fetched elsewhere)
``GET /api/events``     server-sent events: ``answer`` (the JSON-lines record, the spectra to plot, and ``n``,
                        the session's count of identifications) and ``status`` (the link and its counters)
``GET /api/answers``    the session's recent answers as JSON-lines records (docs/json-lines.md), oldest first
``GET /api/latest``     the last one (404 before the first)
``POST /api/library``   ``{"name": ..., "n": ...}``: add the spectrum of identification ``n`` to the user
                        library, as the ``a`` key does (JSON only, at most MAX_BODY bytes, the token in the header)
=====================  ======================================================================================

The token is random per session and printed once as the full URL. It is never put in a cookie, and no route
sends CORS headers, so a page of another site can neither read an answer nor add to the library (a JSON POST
from another origin needs a CORS preflight this server never grants, and a wrong ``Origin`` is refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np

#: Events a viewer may fall behind by before it is dropped.
QUEUE_SIZE = 64
#: Viewers of the event stream at once; more get 503.
MAX_VIEWERS = 32
#: Answers kept for /api/answers and for adding a shown spectrum.
HISTORY = 200
#: Largest request body, bytes (the add action's name and number).
MAX_BODY = 4096
#: Points of each plotted spectrum sent to the page (the grid's 1570, max-pooled: bands survive).
PLOT_POINTS = 524
#: Seconds between status events while nothing else happens (a viewer sees a dead link as such).
STATUS_EVERY_S = 1.0
#: Bad requests logged per minute, at most; the rest are counted in the next line.
LOG_PER_MINUTE = 20
TOKEN_HEADER = "X-Ramanedge-Token"


class WebViewError(Exception):
    """The web view cannot start (aiohttp missing, the address taken); one line saying why."""


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``[HOST:]PORT`` -> (host, port); a ValueError saying why for anything else."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or default_host
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web {text}: expected [HOST:]PORT, e.g. 8765 or 0.0.0.0:8765")
    return host, int(port)


def pooled(values: np.ndarray | None, points: int = PLOT_POINTS) -> list[float] | None:
    """A spectrum max-pooled to ``points`` values (rounded for the wire), or None."""
    if values is None:
        return None
    chunks = np.array_split(np.asarray(values, dtype=np.float64), points)
    return [round(float(c.max()), 4) if c.size else 0.0 for c in chunks]


@dataclass
class Shown:
    """One identification as the page got it: its record, and what adding it to the library needs."""

    n: int
    record: dict[str, Any]
    add: Callable[[str], str]  #: adds this spectrum under a name; the line to show (as the `a` key's)


class WebView:
    """The HTTP side of a live session: ``start()``, then ``publish``/``status`` from any thread, ``stop()``.

    ``host``/``port``: where to listen (port 0: any free one); ``say``: one log line (bad requests, viewers
    dropped); ``token``: the session's secret (default: a fresh random one).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, say: Callable[[str], None] = print, token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.say = say
        self.token = token or secrets.token_urlsafe(18)
        self.shown: deque[Shown] = deque(maxlen=HISTORY)
        self.status_payload: dict[str, Any] = {"status": "starting"}
        self._viewers: set[asyncio.Queue[tuple[str, str] | None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: Any = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._logged: deque[float] = deque()
        self._unlogged = 0
        self.dropped_viewers = 0

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/?token={self.token}"

    # --- the listener's side: never blocks ---------------------------------------------------------------

    def publish(self, n: int, record: dict[str, Any], plot: dict[str, Any], add: Callable[[str], str]) -> None:
        """Identification ``n`` (its JSON-lines ``record``, the spectra to ``plot``): to every viewer."""
        if self._loop is None:
            return
        event = json.dumps({"n": n, "record": record, "plot": plot})
        self._loop.call_soon_threadsafe(self._deliver, Shown(n, record, add), event)

    def status(self, payload: dict[str, Any]) -> None:
        """The link's status and counters (``status``, ``device``, ``frames_ok``, ...): to every viewer."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._set_status, dict(payload))

    # --- the server's loop ---------------------------------------------------------------------------------

    def _deliver(self, shown: Shown, event: str) -> None:
        self.shown.append(shown)
        self._fan_out("answer", event)

    def _set_status(self, payload: dict[str, Any]) -> None:
        self.status_payload = payload
        self._fan_out("status", json.dumps(payload))

    def _fan_out(self, kind: str, data: str) -> None:
        for queue in list(self._viewers):
            try:
                queue.put_nowait((kind, data))
            except asyncio.QueueFull:  # fell behind: dropped, never waited for
                self._viewers.discard(queue)
                self.dropped_viewers += 1
                self._log(f"web: a viewer fell {QUEUE_SIZE} events behind and was dropped")
                with contextlib.suppress(asyncio.QueueFull):
                    queue.get_nowait()
                    queue.put_nowait(None)  # tells its stream to end

    def _log(self, line: str) -> None:
        """One log line, at most LOG_PER_MINUTE a minute (a scan of the port must not flood the terminal)."""
        now = time.monotonic()
        while self._logged and now - self._logged[0] > 60.0:
            self._logged.popleft()
        if len(self._logged) >= LOG_PER_MINUTE:
            self._unlogged += 1
            return
        self._logged.append(now)
        more = f" ({self._unlogged} more not shown)" if self._unlogged else ""
        self._unlogged = 0
        self.say(line + more)

    def start(self) -> str:
        """Serve on a thread of its own; the URL with the token. A WebViewError where it cannot."""
        try:
            import aiohttp  # noqa: F401
        except ImportError as exc:
            raise WebViewError("--web needs aiohttp: pip install 'ramanedge[web]'") from exc
        self._thread = threading.Thread(target=self._serve, name="ramanedge-web", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        if self._error is not None:
            raise WebViewError(f"--web {self.host}:{self.port}: {self._error}")
        return self.url

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5.0)

    def _serve(self) -> None:
        from aiohttp import web

        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            sockets = getattr(site._server, "sockets", None) or []  # the bound port, where 0 asked for any
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        except OSError as exc:
            self._error = exc
            self._ready.set()
            return
        self._loop = loop
        loop.call_later(STATUS_EVERY_S, self._tick)
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            for queue in list(self._viewers):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

    def _tick(self) -> None:
        self._fan_out("status", json.dumps(self.status_payload))
        if self._loop is not None:
            self._loop.call_later(STATUS_EVERY_S, self._tick)

    # --- the routes --------------------------------------------------------------------------------------

    def _app(self) -> Any:
        from aiohttp import web

        @web.middleware
        async def guard(request: web.Request, handler: Callable[..., Any]) -> web.StreamResponse:
            given = str(request.query.get("token") or request.headers.get(TOKEN_HEADER) or "")
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                self._log(f"web: 401 {request.method} {request.path} from {request.remote}: no or wrong token")
                return web.Response(status=401, text="401: the URL printed by listen has the token\n")
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                self._log(f"web: {exc.status} {request.method} {request.path} from {request.remote}: {exc.text}")
                raise
            response.headers.update(
                {
                    "Cache-Control": "no-store",
                    "Referrer-Policy": "no-referrer",
                    "X-Content-Type-Options": "nosniff",
                    "X-Frame-Options": "DENY",
                }
            )
            return response

        app = web.Application(middlewares=[guard], client_max_size=MAX_BODY)
        app.router.add_get("/", self._page)
        app.router.add_get("/api/events", self._events)
        app.router.add_get("/api/answers", self._answers)
        app.router.add_get("/api/latest", self._latest)
        app.router.add_post("/api/library", self._add)
        return app

    async def _page(self, request: Any) -> Any:
        from aiohttp import web

        nonce = secrets.token_urlsafe(12)
        from edge.answer import ADVICE

        page = resources.files("edge").joinpath("web/index.html").read_text(encoding="utf-8")
        page = page.replace("{{nonce}}", nonce).replace("{{advice}}", json.dumps({str(k): v for k, v in ADVICE.items()}))
        csp = f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'"
        return web.Response(text=page, content_type="text/html", headers={"Content-Security-Policy": csp})

    async def _answers(self, request: Any) -> Any:
        from aiohttp import web

        return web.json_response([s.record for s in self.shown])

    async def _latest(self, request: Any) -> Any:
        from aiohttp import web

        if not self.shown:
            raise web.HTTPNotFound(text="no identification yet")
        return web.json_response(self.shown[-1].record)

    async def _events(self, request: Any) -> Any:
        from aiohttp import web

        if len(self._viewers) >= MAX_VIEWERS:
            raise web.HTTPServiceUnavailable(text=f"{MAX_VIEWERS} viewers already")
        queue: asyncio.Queue[tuple[str, str] | None] = asyncio.Queue(maxsize=QUEUE_SIZE)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        await response.prepare(request)
        self._viewers.add(queue)
        try:
            await response.write(f"event: status\ndata: {json.dumps(self.status_payload)}\n\n".encode())
            for shown in list(self.shown)[-1:]:  # the last answer at once: a new viewer is not left blank
                await response.write(f"event: history\ndata: {json.dumps({'n': shown.n, 'record': shown.record})}\n\n".encode())
            while True:
                item = await queue.get()
                if item is None:
                    break
                kind, data = item
                await response.write(f"event: {kind}\ndata: {data}\n\n".encode())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self._viewers.discard(queue)
        return response

    async def _add(self, request: Any) -> Any:
        from aiohttp import web

        origin = request.headers.get("Origin")
        if origin is not None and origin.split("://", 1)[-1] != request.host:
            raise web.HTTPForbidden(text=f"origin {origin} is not this device")
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="send JSON: {\"name\": ..., \"n\": ...}")
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise web.HTTPBadRequest(text=f"not JSON: {exc}") from None
        if not isinstance(body, dict) or not isinstance(body.get("name"), str) or not isinstance(body.get("n"), int):
            raise web.HTTPBadRequest(text="expected {\"name\": text, \"n\": the identification's number}")
        if not body["name"].strip():
            raise web.HTTPBadRequest(text="name: empty; type the mineral's name")
        shown = next((s for s in self.shown if s.n == body["n"]), None)
        if shown is None:
            raise web.HTTPNotFound(text=f"identification {body['n']} is no longer kept (the last {HISTORY} are)")
        line = await asyncio.get_running_loop().run_in_executor(None, shown.add, body["name"])
        added = line.startswith("added")
        self._log(f"web: {line}")
        return web.json_response({"added": added, "message": line}, status=200 if added else 400)
