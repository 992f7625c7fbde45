"""The ASGI application: a fault gate in front of Starlette routes.

Requests to ``/api/...`` (the Track API) first pass :meth:`FakeTrackApp._gate`, which reads the
body, counts it and applies the configured faults; only then do the Starlette handlers validate
and record items. Admin routes under ``/_fake/...`` skip the gate so tests can always inspect
and steer the server, whatever faults are switched on.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from . import _app_api
from ._faults import FaultInjector, Outcome
from ._settings import Settings
from ._store import Accepted, MemoryStore, Store, person_key
from ._validation import (
    IDENTIFIER_KINDS,
    OBJECT,
    OBJECT_ACTIONS,
    PERSON_ACTIONS,
    PREFERENCES,
    Identifier,
    ItemError,
    identifier_of,
    validate_item,
)

Scope = dict[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CONTEXT_KEY = "cio_fake.request"
"""Scope key under which the gate hands the already-read body to the API handlers."""

# An identifier in a v1 path is an email when it looks like one (Customer.io guesses the same
# way); "cio_<id>" addresses a person by cio_id; anything else is an id.
_EMAIL_SHAPE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_CIO_ID_PREFIX = "cio_"

# (method, path suffix after the identifier) -> action, for /api/v1/customers/{identifier}...
_V1_CUSTOMER_ACTIONS = {
    ("PUT", ""): "identify",
    ("DELETE", ""): "delete",
    ("POST", "events"): "event",
    ("POST", "suppress"): "suppress",
    ("POST", "unsuppress"): "unsuppress",
}
_V1_CUSTOMERS_PREFIX = b"/api/v1/customers/"

_PAUSE_STEP = 0.05
"""Held answers look again this often (a tenth of it) whether they may go."""

_LATENCY_STEP = 0.5
"""Latency sleeps in steps this long, so that a shutting-down server is not held up by a long
delay, and hundreds of slow requests at once cost the event loop few wake-ups."""


@dataclass
class RequestContext:
    """Per-request facts shared between the gate and the API handlers."""

    body: bytes
    accept: bool
    items: int = 0
    rejected: int = 0


def _json(status: int, content: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(content), status_code=status, headers=headers, media_type="application/json"
    )


def _echoing_send(scope: Scope, send: Send) -> Send:
    """Wrap ``send`` so that the answer's texts quote the request's credentials (setting
    echo_credentials): every string of a JSON body gets them appended, any other body is
    replaced by them."""
    header = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    try:
        decoded = base64.b64decode(header.partition(" ")[2], validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        decoded = ""
    echo = f" [you sent Authorization: {header}, that is {decoded}]"
    started: list[Message] = []

    def quote(value: Any) -> Any:
        if isinstance(value, str):
            return value + echo
        if isinstance(value, list):
            return [quote(v) for v in value]
        if isinstance(value, dict):
            return {k: (v if k == "batch_index" else quote(v)) for k, v in value.items()}
        return value

    async def echoing(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
            return
        if message["type"] != "http.response.body" or not started:
            await send(message)
            return
        try:
            body = orjson.dumps(quote(orjson.loads(message.get("body", b""))))
        except orjson.JSONDecodeError:
            body = echo.strip().encode()
        if body == b"{}":
            body = orjson.dumps({"meta": {"note": echo.strip()}})
        start = started.pop()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return echoing


def _unauthorized() -> Response:
    return _json(401, {"meta": {"error": "Unauthorized request"}})


def _batch_error(reason: str, message: str) -> Response:
    """A v2 400: the whole request was refused."""
    return _json(400, {"errors": [{"reason": reason, "message": message}]})


def _v1_error(message: str, status: int = 400) -> Response:
    return _json(status, {"meta": {"errors": [message]}})


def _app_error(status: int, message: str) -> Response:
    """An App API error."""
    return _json(status, {"meta": {"error": message}})


def _action_label(item: Any) -> str:
    """Counter key for a rejected item: its action when known (``object_<action>`` for an
    object's), else ``invalid``."""
    action = item.get("action") if isinstance(item, dict) else None
    if isinstance(item, dict) and item.get("type") == OBJECT:
        return f"object_{action}" if action in OBJECT_ACTIONS else "invalid"
    return action if action in PERSON_ACTIONS else "invalid"


def path_identifier(text: str) -> Identifier:
    """Guess the identifier kind of a v1 path segment, as Customer.io does."""
    if text.startswith(_CIO_ID_PREFIX) and len(text) > len(_CIO_ID_PREFIX):
        return "cio_id", text[len(_CIO_ID_PREFIX) :]
    if _EMAIL_SHAPE.fullmatch(text):
        return "email", text
    return "id", text


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when the client went away while sending it."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _drop_connection(receive: Receive, send: Send) -> None:
    """Close the client connection without sending a single byte of response.

    ASGI has no message for this, so it reaches for the transport of uvicorn's protocol
    object, which ``send`` is a bound method of. Waiting for ``http.disconnect`` afterwards
    makes uvicorn see the connection as gone, so it does not send its own 500 either.
    """
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        raise RuntimeError("dropping connections needs uvicorn's HTTP protocol implementation")
    transport.abort()
    await receive()


class FakeTrackApp:
    """ASGI app emulating the Customer.io Track API, with fault injection and admin routes."""

    def __init__(
        self, *, site_id: str, api_key: str, settings: Settings, store: Store, app_api_key: str = "app-key"
    ) -> None:
        self.settings = settings
        self.store = store
        self.faults = FaultInjector(settings, time.monotonic())
        self._answers_left = settings.answers_allowed
        self.closing = False
        """Set on shutdown so injected delays end early instead of stalling the exit."""
        self._credentials = f"{site_id}:{api_key}".encode()
        self._app_key = app_api_key.encode()
        self.segments: dict[int, _app_api.Segment] = {}
        """App API segments defined through ``POST /_fake/segments``; kept across resets."""
        self._router = Starlette(
            routes=[
                Route("/api/v1/accounts/region", self._region, methods=["GET"]),
                Route("/api/v2/batch", self._batch, methods=["POST"]),
                Route("/api/v1/merge_customers", self._merge, methods=["POST"]),
                Route(
                    "/api/v1/customers/{rest:path}",
                    self._customer,
                    methods=["PUT", "POST", "DELETE"],
                ),
                Route("/v1/segments/{segment_id:int}/customer_count", self._app_segment_count, methods=["GET"]),
                Route("/v1/segments/{segment_id:int}/membership", self._app_segment_membership, methods=["GET"]),
                Route("/v1/customers", self._app_customers_by_email, methods=["GET"]),
                Route("/v1/customers/{rest:path}", self._app_customer, methods=["GET"]),
                Route("/_fake/segments", self._admin_segments, methods=["GET"]),
                Route("/_fake/segments", self._admin_define_segments, methods=["POST"]),
                Route("/_fake/segments/{segment_id:int}", self._admin_delete_segment, methods=["DELETE"]),
                Route("/_fake/stats", self._admin_stats, methods=["GET"]),
                Route("/_fake/config", self._admin_get_config, methods=["GET"]),
                Route("/_fake/config", self._admin_set_config, methods=["POST"]),
                Route("/_fake/reset", self._admin_reset, methods=["POST"]),
                Route("/_fake/people", self._admin_people, methods=["GET"]),
                Route("/_fake/people/{kind}/{value:path}", self._admin_person, methods=["GET"]),
                Route("/_fake/events", self._admin_events, methods=["GET"]),
                Route("/_fake/events/{event_id}", self._admin_forget_event, methods=["DELETE"]),
                Route("/_fake/deletions", self._admin_deletions, methods=["GET"]),
                Route("/_fake/objects", self._admin_objects, methods=["GET"]),
                Route("/_fake/relationships", self._admin_relationships, methods=["GET"]),
                Route("/_fake/devices", self._admin_devices, methods=["GET"]),
                Route("/_fake/suppressed", self._admin_suppressed, methods=["GET"]),
                Route("/_fake/merges", self._admin_merges, methods=["GET"]),
                Route("/_fake/requests", self._admin_requests, methods=["GET"]),
            ]
        )

    # ----------------------------------------------------------------- control

    def configure(self, changes: Mapping[str, Any]) -> Settings:
        """Apply runtime setting changes; raises ValueError and changes nothing if one is bad."""
        settings = self.settings.updated(changes)
        self.settings = settings
        self.faults.configure(settings, time.monotonic())
        self.store.resize_request_log(settings.request_log_size)
        if "answers_allowed" in changes:
            self._answers_left = settings.answers_allowed
        return settings

    def reset(self) -> None:
        """Forget all accepted data and counters; faults restart from their seed."""
        self.store.reset()
        self.faults.reset(time.monotonic())

    # -------------------------------------------------------------------- ASGI

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(self.settings.fault_paths):
            await self._gate(scope, receive, send)
        else:
            await self._router(scope, receive, send)

    async def _gate(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request (and how many are in flight at once), apply faults, then hand it to
        the API handlers."""
        body = await _read_body(receive)
        if body is None:
            return
        counters = self.store.counters
        if scope["path"] == "/api/v2/batch":
            now = time.monotonic()
            counters.batch_requests += 1
            if counters.first_batch_at is None:
                counters.first_batch_at = now
            counters.last_batch_at = now
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        try:
            await self._gated(scope, receive, send, body)
        finally:
            counters.in_flight -= 1  # (the counters of before a reset, if one came meanwhile)

    async def _gated(self, scope: Scope, receive: Receive, send: Send, body: bytes) -> None:
        counters = self.store.counters
        counters.bytes_received += len(body)
        counters.max_request_bytes_seen = max(counters.max_request_bytes_seen, len(body))

        verdict = self.faults.decide(time.monotonic())
        if verdict.outcome is Outcome.DROP:
            counters.dropped += 1
            await _drop_connection(receive, send)
            return
        if verdict.slow:
            counters.slow += 1
        context = RequestContext(body=body, accept=verdict.accept)
        if self.settings.echo_credentials:
            send = _echoing_send(scope, send)
        observed = self._observing_send(scope, send, context, verdict.delay)
        if verdict.outcome is Outcome.RATE_LIMITED:
            counters.rate_limited += 1
            response = _json(
                429,
                {"meta": {"error": "rate limited"}},
                headers={"Retry-After": str(verdict.retry_after)},
            )
        elif verdict.outcome is Outcome.ERROR:
            counters.errors_injected += 1
            response = _json(verdict.status, {"meta": {"error": "injected server error"}})
        else:
            scope[CONTEXT_KEY] = context
            await self._router(scope, receive, observed)
            return
        await response(scope, receive, observed)

    def _observing_send(
        self, scope: Scope, send: Send, context: RequestContext, delay: float
    ) -> Send:
        """Wrap ``send`` to delay the response and count it by status when it starts."""

        async def observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                await self._answer_permit()
                if delay:
                    await self._pause(delay)
                status = message["status"]
                self.store.counters.requests_by_status[status] += 1
                self.store.log_request(
                    {
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "bytes": len(context.body),
                        "items": context.items,
                        "rejected": context.rejected,
                    }
                )
            await send(message)

        return observed

    async def _answer_permit(self) -> None:
        """Wait while no more answers are allowed (setting answers_allowed), then take one."""
        if self._answers_left is None:
            return
        counters = self.store.counters
        counters.held += 1
        try:
            while not self.closing and self._answers_left is not None and self._answers_left <= 0:
                await asyncio.sleep(_PAUSE_STEP / 10)
        finally:
            counters.held -= 1
        if self._answers_left is not None:
            self._answers_left -= 1

    async def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.closing:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, _LATENCY_STEP))

    def _authorized(self, request: Request) -> bool:
        scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            credentials = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(credentials, self._credentials)

    # --------------------------------------------------------------- Track API

    async def _region(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        base_url = f"{request.url.scheme}://{request.url.netloc}"
        return _json(200, {"url": base_url, "region": self.settings.region, "environment_id": 1})

    async def _batch(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        context: RequestContext = request.scope[CONTEXT_KEY]
        body = context.body
        limit = self.settings.max_request_bytes
        if len(body) >= limit:
            return _batch_error(
                "request_too_large",
                f"request body is {len(body)} bytes; it must be smaller than {limit} bytes",
            )
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _batch_error("invalid_json", f"request body is not valid JSON: {exc}")
        batch = document.get("batch") if isinstance(document, dict) else None
        if not isinstance(batch, list) or not batch:
            return _batch_error(
                "invalid_batch",
                'request body must be {"batch": [item, ...]} with at least one item',
            )

        store = self.store
        rejected = store.counters.items_rejected
        max_item_bytes = self.settings.max_item_bytes
        dumps = orjson.dumps
        valid: list[Accepted] = []
        errors: list[dict[str, Any]] = []
        preferences = PREFERENCES.encode() in body
        for index, item in enumerate(batch):
            raw = dumps(item)
            result = validate_item(item, len(raw), max_item_bytes, preferences)
            if isinstance(result, ItemError):
                errors.append(result.for_batch(index))
                rejected[_action_label(item)] += 1
            else:
                valid.append((item, result, raw))
        if context.accept:
            store.accept_all(valid)
        store.end_request()
        context.items = len(batch)
        context.rejected = len(errors)
        if errors:
            return _json(207, {"errors": errors})
        return _json(200, {})

    async def _customer(self, request: Request) -> Response:
        """All of ``/api/v1/customers/{identifier}[/events|/suppress|/unsuppress]``.

        The identifier is cut from the raw path before percent-decoding, so an encoded ``/``
        inside it cannot be mistaken for a path separator.
        """
        if not self._authorized(request):
            return _unauthorized()
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        encoded, _, suffix = raw_path[len(_V1_CUSTOMERS_PREFIX) :].partition(b"/")
        action = _V1_CUSTOMER_ACTIONS.get((request.method, suffix.decode("latin-1")))
        if action is None or not encoded:
            return _v1_error("not found", status=404)
        try:
            text = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            return _v1_error("customer identifier in the path is not valid UTF-8")
        kind, value = path_identifier(text)

        context: RequestContext = request.scope[CONTEXT_KEY]
        document = self._v1_document(context.body)
        if isinstance(document, Response):
            return document
        item = _v1_item(action, {kind: value}, document)
        raw = orjson.dumps(item)
        # The body size was checked against the item limit already; the wrapper added by the
        # rewrite into v2 shape must not count against the caller.
        result = validate_item(item, len(raw), sys.maxsize)
        context.items = 1
        if isinstance(result, ItemError):
            context.rejected = 1
            self.store.counters.items_rejected[action] += 1
            return _v1_error(result.message)
        if context.accept:
            self.store.accept(item, result, raw)
            self.store.end_request()
        return _json(200, {})

    async def _merge(self, request: Request) -> Response:
        if not self._authorized(request):
            return _unauthorized()
        context: RequestContext = request.scope[CONTEXT_KEY]
        document = self._v1_document(context.body)
        if isinstance(document, Response):
            return document
        context.items = 1
        pair = _merge_pair(document)
        if isinstance(pair, ItemError):
            context.rejected = 1
            self.store.counters.items_rejected["merge"] += 1
            return _v1_error(pair.message)
        primary, secondary = pair
        if context.accept:
            raw = orjson.dumps(
                {
                    "type": "person",
                    "action": "merge",
                    "primary": {primary[0]: primary[1]},
                    "secondary": {secondary[0]: secondary[1]},
                }
            )
            self.store.merge(primary, secondary, raw)
            self.store.end_request()
        return _json(200, {})

    def _v1_document(self, body: bytes) -> dict[str, Any] | Response:
        """Parse a v1 body (at most one item's worth of bytes; empty means ``{}``)."""
        limit = self.settings.max_item_bytes
        if len(body) > limit:
            return _v1_error(f"request body is {len(body)} bytes, more than {limit}")
        if not body.strip():
            return {}
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _v1_error(f"request body is not valid JSON: {exc}")
        if not isinstance(document, dict):
            return _v1_error("request body must be a JSON object")
        return document

    # ----------------------------------------------------------------- App API

    def _app_authorized(self, request: Request) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), self._app_key)

    def _app_guard(self, request: Request) -> Response | MemoryStore:
        """The memory store when the request may read it, else the response refusing it."""
        if not self._app_authorized(request):
            return _unauthorized()
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        return memory

    def _app_segment(self, request: Request) -> Response | _app_api.Segment:
        segment = self.segments.get(request.path_params["segment_id"])
        if segment is None:
            return _app_error(404, "segment not found")
        return segment

    async def _app_segment_count(self, request: Request) -> Response:
        memory = self._app_guard(request)
        if isinstance(memory, Response):
            return memory
        segment = self._app_segment(request)
        if isinstance(segment, Response):
            return segment
        return _json(200, _app_api.count_document(memory, segment))

    async def _app_segment_membership(self, request: Request) -> Response:
        memory = self._app_guard(request)
        if isinstance(memory, Response):
            return memory
        segment = self._app_segment(request)
        if isinstance(segment, Response):
            return segment
        try:
            start, limit = _app_api.parse_paging(
                request.query_params.get("start"),
                request.query_params.get("limit"),
                _app_api.MEMBERSHIP_DEFAULT_LIMIT,
                _app_api.MEMBERSHIP_MAX_LIMIT,
            )
        except ValueError as exc:
            return _app_error(400, str(exc))
        return _json(200, _app_api.membership_document(memory, segment, start=start, limit=limit))

    async def _app_customers_by_email(self, request: Request) -> Response:
        memory = self._app_guard(request)
        if isinstance(memory, Response):
            return memory
        email = request.query_params.get("email")
        if not email:
            return _app_error(400, "email is required")
        return _json(200, _app_api.email_search_document(memory, email))

    async def _app_customer(self, request: Request) -> Response:
        """``/v1/customers/{customer_id}/attributes`` and ``.../activities``; the identifier is
        cut from the raw path before percent-decoding, as for the Track API."""
        memory = self._app_guard(request)
        if isinstance(memory, Response):
            return memory
        raw_path: bytes = request.scope.get("raw_path") or request.scope["path"].encode()
        encoded, _, suffix = raw_path[len(b"/v1/customers/") :].partition(b"/")
        if suffix not in (b"attributes", b"activities") or not encoded:
            return _app_error(404, "not found")
        try:
            customer_id = unquote_to_bytes(encoded).decode("utf-8")
        except UnicodeDecodeError:
            return _app_error(400, "customer id in the path is not valid UTF-8")
        id_type = request.query_params.get("id_type") or "id"
        if id_type not in _app_api.APP_ID_TYPES:
            return _app_error(400, f"id_type must be one of {', '.join(_app_api.APP_ID_TYPES)}")
        found = _app_api.find_profiles(memory, id_type, customer_id)
        if not found:
            return _app_error(404, "customer not found")
        if suffix == b"attributes":
            return _json(200, _app_api.attributes_document(found[0], customer_id))
        try:
            start, limit = _app_api.parse_paging(
                request.query_params.get("start"),
                request.query_params.get("limit"),
                _app_api.ACTIVITIES_DEFAULT_LIMIT,
                _app_api.ACTIVITIES_MAX_LIMIT,
            )
        except ValueError as exc:
            return _app_error(400, str(exc))
        document = _app_api.activities_document(
            memory,
            found[0],
            activity_type=request.query_params.get("type"),
            name=request.query_params.get("name"),
            start=start,
            limit=limit,
        )
        return _json(200, document)

    # ------------------------------------------------------------------ admin

    def _memory(self) -> MemoryStore | None:
        return self.store if isinstance(self.store, MemoryStore) else None

    @staticmethod
    def _memory_only() -> Response:
        return _json(409, {"error": "only available when recording in memory"})

    async def _admin_segments(self, request: Request) -> Response:
        return _json(200, [segment.as_dict() for segment in self.segments.values()])

    async def _admin_define_segments(self, request: Request) -> Response:
        """Define (or redefine) one segment or a list of them; all or nothing."""
        try:
            document = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _json(400, {"error": f"body is not valid JSON: {exc}"})
        try:
            parsed = [_app_api.Segment.parse(d) for d in (document if isinstance(document, list) else [document])]
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        for segment in parsed:
            self.segments[segment.id] = segment
        return _json(200, [segment.as_dict() for segment in parsed])

    async def _admin_delete_segment(self, request: Request) -> Response:
        if self.segments.pop(request.path_params["segment_id"], None) is None:
            return _json(404, {"error": "no such segment"})
        return _json(200, {})

    async def _admin_stats(self, request: Request) -> Response:
        stats = self.store.counters.as_dict()
        stats.update(self.store.summary())
        stats["settings"] = self.settings.as_dict()
        return _json(200, stats)

    async def _admin_get_config(self, request: Request) -> Response:
        return _json(200, self.settings.as_dict())

    async def _admin_set_config(self, request: Request) -> Response:
        try:
            changes = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            return _json(400, {"error": f"body is not valid JSON: {exc}"})
        if not isinstance(changes, dict):
            return _json(400, {"error": "body must be a JSON object of settings"})
        try:
            settings = self.configure(changes)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, settings.as_dict())

    async def _admin_reset(self, request: Request) -> Response:
        self.reset()
        return _json(200, {})

    async def _admin_people(self, request: Request) -> Response:
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        return _json(
            200, {person_key(key): profile.as_dict() for key, profile in memory.profiles.items()}
        )

    async def _admin_person(self, request: Request) -> Response:
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        kind = request.path_params["kind"]
        if kind not in IDENTIFIER_KINDS:
            return _json(400, {"error": f"unknown identifier kind {kind!r}"})
        profile = memory.profiles.get((kind, request.path_params["value"]))
        if profile is None:
            return _json(404, {"error": "no such person"})
        return _json(200, profile.as_dict())

    async def _admin_events(self, request: Request) -> Response:
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        name = request.query_params.get("name")
        events = memory.events if name is None else [e for e in memory.events if e["name"] == name]
        return _json(200, events)

    async def _admin_forget_event(self, request: Request) -> Response:
        """Remove a stored event, as if Customer.io had lost it (its id stays seen)."""
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        wanted = request.path_params["event_id"].upper()
        kept = [e for e in memory.events if str(e.get("id") or "").upper() != wanted]
        if len(kept) == len(memory.events):
            return _json(404, {"error": "no such event"})
        memory.events[:] = kept
        return _json(200, {})

    async def _admin_deletions(self, request: Request) -> Response:
        memory = self._memory()
        return self._memory_only() if memory is None else _json(200, memory.deletions)

    async def _admin_objects(self, request: Request) -> Response:
        """Objects by ``"<object_type_id>:<object_id>"``."""
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        return _json(200, {key: stored.as_dict() for key, stored in memory.objects.items()})

    async def _admin_relationships(self, request: Request) -> Response:
        """Person-object relationships: ``[{"person": {kind: value}, "object": {"object_type_id":
        ..., "object_id": ...}, "attributes": {...}}]``."""
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        out = []
        for (person, key), attributes in memory.relationships.items():
            type_id, _, object_id = key.partition(":")
            out.append({"person": {person[0]: person[1]}, "object": {"object_type_id": type_id, "object_id": object_id},
                        "attributes": attributes})
        return _json(200, out)

    async def _admin_devices(self, request: Request) -> Response:
        """People's devices: ``[{"person": {kind: value}, "token", "platform", "last_used", "attributes"}]``."""
        memory = self._memory()
        if memory is None:
            return self._memory_only()
        return _json(200, [{"person": {person[0]: person[1]}, "token": token, **device}
                           for (person, token), device in memory.devices.items()])

    async def _admin_suppressed(self, request: Request) -> Response:
        """Suppressed identifiers, ``"<kind>:<value>"``, sorted."""
        memory = self._memory()
        return self._memory_only() if memory is None else _json(200, sorted(map(person_key, memory.suppressed)))

    async def _admin_merges(self, request: Request) -> Response:
        memory = self._memory()
        return self._memory_only() if memory is None else _json(200, memory.merges)

    async def _admin_requests(self, request: Request) -> Response:
        entries = list(self.store.requests)
        limit = request.query_params.get("limit")
        if limit is not None:
            if not limit.isdigit():
                return _json(400, {"error": "limit must be a non-negative integer"})
            entries = entries[len(entries) - int(limit) :] if int(limit) else []
        return _json(200, entries)


def _v1_item(action: str, identifiers: dict[str, str], document: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a v1 call into the equivalent v2 batch item, so one validator serves both."""
    item: dict[str, Any] = {"type": "person", "identifiers": identifiers, "action": action}
    if action == "identify":
        # _timestamp orders updates; _update (update only) stays an attribute, as in v2.
        item["attributes"] = {k: v for k, v in document.items() if k != "_timestamp"}
        if "_timestamp" in document:
            item["timestamp"] = document["_timestamp"]
    elif action == "event":
        item["name"] = document.get("name")
        item["attributes"] = document.get("data", {})
        for key in ("id", "timestamp"):
            if key in document:
                item[key] = document[key]
    return item


def _merge_pair(document: dict[str, Any]) -> tuple[Identifier, Identifier] | ItemError:
    """The two people of a ``merge_customers`` body, or why they cannot be merged."""
    primary = identifier_of(document.get("primary"))
    if isinstance(primary, ItemError):
        return primary._replace(field="primary")
    secondary = identifier_of(document.get("secondary"))
    if isinstance(secondary, ItemError):
        return secondary._replace(field="secondary")
    if primary == secondary:
        return ItemError("invalid_identifiers", "secondary", "primary and secondary are one person")
    return primary, secondary
