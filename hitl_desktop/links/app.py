"""The web app that serves signed links (Starlette): GET shows a link's review, POST decides it.

A decision goes through `Engine.decide`, as the console's does: the review's rule is checked
where it commits and the store's audit trail records it. The store records the engine's actor
(the worker's identity) as who decided; the decision itself says ``via link by <name>`` and
carries the link's name and expiry, so the audit trail shows both.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from ..agent import (
    TASK_NAME,
    ChangeSet,
    Decision,
    DecisionInvalid,
    Outcome,
    change_set,
    read_change_set,
    review_from_steps,
)
from ..engine import (
    DecisionRefused,
    Engine,
    OutputRefused,
    RunStatus,
    Token,
    TokenAlreadyFinished,
    TokenExpired,
    TokenNotFound,
    TokenStatus,
)
from .pages import MAX_COMMENT, message_page, review_page
from .signing import PATH, Link, LinkExpired, LinkInvalid, verify

MAX_BODY = 64 * 1024
"""The largest request body taken, in bytes (a decision's form is far smaller)."""
RESULT_WAIT = 10.0
"""How long a final decision's answer waits for the run to finish, to say how it ended."""
FAILURES_ALLOWED = 10
"""Failed signatures one client address may send per FAILURE_WINDOW before it gets 429."""
FAILURE_WINDOW = 60.0

_FINISHED = (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)
_HASH = re.compile(r"[0-9a-f]{64}")
_HEADERS = {
    # No scripts, no frames, forms only back here; the URL holds the signature: never sent on.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


class FailedSignatures:
    """Failed signatures per client address in a sliding window: more than *allowed* within
    *window* seconds blocks that address until the oldest failure leaves the window."""

    def __init__(
        self,
        allowed: int = FAILURES_ALLOWED,
        window: float = FAILURE_WINDOW,
        clock: Callable[[], float] = time.monotonic,
        max_clients: int = 10_000,
    ) -> None:
        self.allowed, self.window, self.clock = allowed, window, clock
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until *client* may try again, or None when it is not blocked."""
        failures = self._recent(client)
        if len(failures) < self.allowed:
            return None
        return max(1.0, failures[0] + self.window - self.clock())

    def record(self, client: str) -> None:
        failures = self._recent(client)
        failures.append(self.clock())
        self._failures[client] = failures
        self._failures.move_to_end(client)
        while len(self._failures) > self.max_clients:  # bounded: the least recent goes
            self._failures.popitem(last=False)

    def _recent(self, client: str) -> deque[float]:
        failures = self._failures.get(client, deque(maxlen=self.allowed))
        horizon = self.clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        return failures


class _Refused(Exception):
    """Answer with a small page: *status*, a title and why."""

    def __init__(self, status: int, title: str, *why: str, headers: dict[str, str] | None = None):
        super().__init__(title)
        self.status, self.title, self.why, self.headers = status, title, why, headers or {}


def link_app(
    engine: Engine,
    secret: bytes,
    *,
    failures: FailedSignatures | None = None,
    clock: Callable[[], float] = time.time,
) -> Starlette:
    """The app serving links signed with *secret* to reviews on *engine*'s store."""
    limiter = failures or FailedSignatures()

    async def link(request: Request) -> Response:
        try:
            found = _check(request, secret, limiter, clock)
            if request.method == "POST":
                return _html(200, await _decide(engine, request, found, clock()))
            return _html(200, await _show(engine, found, _action(request), clock()))
        except _Refused as refused:
            body = message_page(refused.title, *refused.why)
            return _html(refused.status, body, refused.headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            body = message_page(
                "Method not allowed",
                "A link is opened (GET) or decided with its page's form (POST), "
                f"not {request.method}.",
            )
            return _html(405, body, {"Allow": "GET, HEAD, POST"})
        if exc.status_code == 404:
            body = message_page("Not found", "There is nothing here but signed links.")
            return _html(404, body)
        return _html(exc.status_code, message_page(f"Error {exc.status_code}", str(exc.detail)))

    async def server_error(request: Request, exc: Exception) -> Response:
        body = message_page(
            "The store could not be reached",
            "Nothing was decided. Try the link again in a moment.",
        )
        return _html(503, body)

    return Starlette(
        routes=[Route(PATH + "{token_id}", link, methods=["GET", "POST"])],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )


def _check(
    request: Request, secret: bytes, limiter: FailedSignatures, clock: Callable[[], float]
) -> Link:
    """The request's link, once its client is not blocked and its signature holds."""
    client = request.client.host if request.client else "unknown"
    wait = limiter.retry_after(client)
    if wait is not None:
        raise _Refused(
            429,
            "Too many bad links",
            f"This address sent more than {limiter.allowed} links with a bad signature in the "
            f"last {limiter.window:.0f} seconds. Try again in {wait:.0f} seconds.",
            headers={"Retry-After": str(round(wait))},
        )
    params = request.query_params
    try:
        return verify(
            request.path_params["token_id"],
            params.get("for"),
            params.get("exp"),
            params.get("sig"),
            secret,
            now=clock(),
        )
    except LinkInvalid as exc:
        limiter.record(client)
        raise _Refused(403, "This link is not valid", f"{exc}.", "Ask for a new link.") from None
    except LinkExpired:
        raise _Refused(
            410, "This link has expired", "Nothing was decided. Ask for a new link."
        ) from None


async def _show(engine: Engine, link: Link, action: str, now: float) -> str:
    token = await _waiting_token(engine, link.token_id, now)
    assert token.run_id is not None
    steps = await engine.get_steps(token.run_id)
    found = change_set(steps)
    _decided_in_parts(found, token.id)
    part = None if found is None else found.part_of(token.id)
    # A change set's part: that part's review alone.
    review = review_from_steps(steps) if part is None else part.review
    if review is None:
        raise _Refused(404, "No review", f"Run {token.run_id} has no review to show.")
    return review_page(review, token, link, action, found)


async def _decide(engine: Engine, request: Request, link: Link, now: float) -> str:
    approve, comment, seen = _form(await _body(request))
    token = await _waiting_token(engine, link.token_id, now)
    assert token.run_id is not None
    found = change_set(await engine.get_steps(token.run_id))
    _decided_in_parts(found, token.id)
    decision: dict[str, Any] = Decision(approve, f"via link by {link.name}", comment).to_json()
    decision["link"] = {"for": link.name, "expires": link.expires, "scope": link.scope}
    try:
        token = await engine.decide(link.token_id, decision, seen=seen)
    except DecisionRefused as exc:
        raise _Refused(
            403, "The store refused this decision", f"{exc.reason}.", "Nothing was recorded."
        ) from None
    except OutputRefused as exc:
        raise _Refused(400, "The decision is not valid", exc.reason) from None
    except TokenExpired:
        raise _Refused(410, "This review has expired", "Nothing was decided.") from None
    except TokenAlreadyFinished:
        _already_finished(await engine.get_token(link.token_id))
        raise
    verb = "Approved" if approve else "Rejected"
    if token.status == TokenStatus.WAITING:
        approvals = sum(1 for v in token.verdicts if v.approve)
        needed = token.requirement.approvals if token.requirement else 1
        return message_page(
            "Approval recorded",
            f"{approvals} of {needed} approvals so far: the change waits for "
            f"{needed - approvals} more before anything is written.",
        )
    assert token.run_id is not None
    if found is not None:  # a part: the run may go on waiting for the others
        decided = await read_change_set(engine, token.run_id)
        if decided is not None and decided.waiting():
            if decided.apply == "each" and approve:
                decided = await _written(engine, token.run_id, token.id, decided)
            if decided.waiting():
                return _part_decided(token.id, decided)
    return message_page(verb, await _ending(engine, token.run_id))


def _decided_in_parts(found: ChangeSet | None, token_id: str) -> None:
    """Refuse the token a change set's run waits on for all its parts at once (wait.for_all
    or wait.for_any): each part is decided on its own token, hence on its own link."""
    if found is None or found.part_of(token_id) is not None:
        return
    parts = "; ".join(
        f"part {p.number} '{p.name}': token {p.token_id}" for p in found.parts if p.token_id
    )
    raise _Refused(
        404,
        "Not a part's review",
        f"Token {token_id} is what the run waits on for the {len(found.parts)} parts of its "
        "change set together; each part is decided on its own token, through a link of its own.",
        f"Ask for a link to a part's token: {parts}.",
    )


def _part_decided(token_id: str, found: ChangeSet) -> str:
    """The answer to the decision on part *token_id* while other parts still wait."""
    part = found.part_of(token_id)
    assert part is not None
    count = len(found.parts)
    waiting = ", ".join(f"part {p.number} '{p.name}'" for p in found.waiting())
    refused = part.status in ("rejected", "expired")
    title = f"Part {part.number} of {count} " + ("rejected" if refused else "approved")
    if found.apply == "each":
        if part.outcome is not None:
            done = part.outcome.message
        elif refused:
            done = "This part will not be written."
        else:
            done = "It is written as its run resumes: see the console or 'hitl show'."
        others = f"Each other part is written as soon as it is approved; waiting for {waiting}."
        return message_page(title, done, others)
    if any(p.status in ("rejected", "expired") for p in found.parts):
        return message_page(
            title,
            "Nothing of the change set will be written: a part was rejected or expired. Its "
            f"run ends once the other parts are decided or expire (waiting for {waiting}).",
        )
    return message_page(
        title,
        f"The change set waits for {waiting} before anything is written: every part is "
        "written together once all are approved.",
    )


async def _written(engine: Engine, run_id: str, token_id: str, found: ChangeSet) -> ChangeSet:
    """*found* once part *token_id*, just approved, is written (the engine executing the run
    writes it as soon as the run resumes), or as it is after RESULT_WAIT."""
    try:
        async with asyncio.timeout(RESULT_WAIT):
            while (part := found.part_of(token_id)) is not None and part.status == "approved":
                await asyncio.sleep(0.05)
                now = await read_change_set(engine, run_id)
                assert now is not None
                found = now
    except TimeoutError:
        pass
    return found


async def _ending(engine: Engine, run_id: str) -> str:
    try:
        run = await engine.wait_for(run_id, _FINISHED, timeout=RESULT_WAIT)
    except TimeoutError:
        return f"Run {run_id} carries on; its outcome is in the console and in 'hitl show'."
    if run.status != RunStatus.COMPLETED:
        return f"Run {run_id} ended {run.status}: {run.error}"
    return Outcome.from_json(run.output).message


async def _waiting_token(engine: Engine, token_id: str, now: float) -> Token:
    try:
        token = await engine.get_token(token_id)
    except TokenNotFound:
        raise _Refused(404, "No such review", f"There is no token {token_id}.") from None
    _already_finished(token)
    if token.expires_at.timestamp() <= now:  # its timer has not fired yet: it will
        raise _Refused(410, "This review has expired", "Nothing was decided or written.")
    run = None if token.run_id is None else await engine.get_run(token.run_id)
    if run is None or run.task != TASK_NAME:
        raise _Refused(404, "No such review", f"Token {token_id} is not a change's review.")
    return token


def _already_finished(token: Token) -> None:
    """Refuse a token that is no longer waiting: 410 once timed out, 409 with who and when
    once decided."""
    if token.status == TokenStatus.TIMED_OUT:
        raise _Refused(410, "This review has expired", "Nothing was decided or written.")
    if token.status != TokenStatus.WAITING:
        output = token.output if isinstance(token.output, dict) else {}
        verdict = {"approve": "approved", "reject": "rejected"}.get(str(output.get("decision")))
        name = output.get("reviewer")
        by = f"{name} (recorded as {token.completed_by})" if name else token.completed_by
        raise _Refused(
            409,
            "Already decided",
            f"This review was already {verdict or 'completed'} by {by or 'someone'} "
            f"at {_moment(token.completed_at)}.",
            "Nothing was changed.",
        )


async def _body(request: Request) -> bytes:
    """The request's body, refused (413) past MAX_BODY whether or not it says its length."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise _too_large()
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:
            raise _too_large()
    return bytes(body)


def _form(body: bytes) -> tuple[bool, str | None, str]:
    """(approve, comment, seen) from the page's form; 400 for anything else."""
    try:
        fields = parse_qsl(body.decode("utf-8"), strict_parsing=True, max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise _Refused(400, "Not the review's form", "Decide with the link's page.") from None
    form = dict(fields)
    if len(form) != len(fields) or not set(form) <= {"decision", "comment", "seen"}:
        extra = ", ".join(sorted(set(form) - {"decision", "comment", "seen"}))
        raise _Refused(
            400,
            "Not the review's form",
            f"A link approves or rejects the change as shown: it takes no {extra or 'repeated'} "
            "fields (edits are made in the console).",
        )
    if form.get("decision") not in ("approve", "reject"):
        raise _Refused(400, "No decision", "Choose Approve or Reject on the link's page.")
    seen = form.get("seen", "")
    if not _HASH.fullmatch(seen):
        raise _Refused(400, "Not the review's form", "The form lacks the hash of the diff shown.")
    comment = form.get("comment", "").strip() or None
    if comment is not None and len(comment) > MAX_COMMENT:
        raise _Refused(400, "Comment too long", f"A comment has at most {MAX_COMMENT} characters.")
    try:
        Decision.from_json({"decision": form["decision"], "reviewer": "x", "comment": comment})
    except DecisionInvalid as exc:
        raise _Refused(400, "The decision is not valid", str(exc)) from None
    return form["decision"] == "approve", comment, seen


def _too_large() -> _Refused:
    return _Refused(
        413, "Too large", f"A decision's form is at most {MAX_BODY // 1024} KiB; nothing was read."
    )


def _action(request: Request) -> str:
    """Where the page's form posts: this very link (its path and signed query)."""
    return f"{request.url.path}?{request.url.query}"


def _html(status: int, body: str, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**_HEADERS, **(headers or {})})


def _moment(at: datetime | None) -> str:
    return "an unknown time" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
