"""`hitl link`: a signed URL that lets its holder see one review and approve or reject it, and
`hitl worker --http HOST:PORT`, the option that serves such links."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..agent import TASK_NAME, Targets, read_change_set
from ..engine import Engine, TokenStatus
from ..links import Link, LinkSecretUnavailable, link_secret, make_link, parse_address
from ..units.durations import text_seconds
from .command import StoreCommand
from .errors import EXPIRED, USAGE, CliError, Output
from .inputs import store_url

DEFAULT_BASE = "http://127.0.0.1:8080"
"""Where people reach the worker's --http, unless --base says otherwise."""
DEFAULT_LIFETIME = "1h"


@dataclass(frozen=True)
class MadeLink:
    link: Link
    url: str


@dataclass(frozen=True)
class MakeLink(StoreCommand[MadeLink]):
    """`hitl link TOKEN_ID --for NAME`: print a signed link to the review."""

    store: str
    token_id: str
    name: str
    lifetime: float
    base: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> MakeLink:
        store = store_url(args.store)
        try:
            lifetime = text_seconds(args.expires)
        except ValueError:
            raise CliError(
                f"--expires {args.expires!r} is not a duration (e.g. 30m, 1h, 2d)", USAGE
            ) from None
        base = args.base.rstrip("/")
        parts = urlsplit(base)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
            raise CliError(f"--base {args.base!r} is not an http:// or https:// address", USAGE)
        try:
            make_link(args.token_id, args.name, lifetime)  # the name and token checked now
        except ValueError as exc:
            raise CliError(f"--for: {exc}", USAGE) from None
        return cls(store, args.token_id, args.name.strip(), lifetime, base)

    async def fetch(self, engine: Engine, targets: Targets) -> MadeLink:
        token = await engine.get_token(self.token_id)
        run = None if token.run_id is None else await engine.get_run(token.run_id)
        if run is None or run.task != TASK_NAME:
            raise CliError(f"token {token.id} is not the review of a {TASK_NAME} run")
        if token.status == TokenStatus.TIMED_OUT:
            raise CliError(f"token {token.id} expired: it can no longer be decided", EXPIRED)
        if token.status != TokenStatus.WAITING:
            raise CliError(f"token {token.id} is already decided ({token.completed_by})")
        found = await read_change_set(engine, run.id)
        if found is not None and found.part_of(token.id) is None:
            parts = "; ".join(
                f"part {p.number} {p.name!r}: {p.token_id} ({p.status})"
                for p in found.parts
                if p.token_id is not None
            )
            raise CliError(
                f"token {token.id} is what run {run.id} waits on for the {len(found.parts)} "
                "parts of its change set together: each part is decided on its own token, so "
                f"link a part's token instead ({parts})",
                USAGE,
            )
        try:
            secret = link_secret(self.store)
        except LinkSecretUnavailable as exc:
            raise CliError(str(exc)) from None
        link = make_link(token.id, self.name, self.lifetime)
        return MadeLink(link, link.url(self.base, secret))

    def render(self, result: MadeLink) -> Output:
        link = result.link
        doc = {"url": result.url, "token_id": link.token_id, "for": link.name}
        return Output({**doc, "expires": link.expires, "scope": link.scope}, result.url)


def add_link_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add `link` to *sub* (the subparsers of `hitl`), and --http to its `worker`."""
    link = sub.add_parser(
        "link",
        parents=[common],
        help="print a signed URL that lets its holder see and decide one review",
        description="Print a URL to one review, signed with the store's link secret "
        "(HITL_LINK_SECRET, else the OS keyring, created there on first use). Whoever holds "
        "it can see the review and approve or reject it (no edits) until it expires, through "
        "a worker started with --http. The decision is recorded as made via link by NAME.",
    )
    link.add_argument("token_id", metavar="TOKEN_ID")
    link.add_argument(
        "--for", dest="name", required=True, metavar="NAME", help="who the link is made for"
    )
    link.add_argument(
        "--expires",
        default=DEFAULT_LIFETIME,
        metavar="DURATION",
        help=f"how long the link works (e.g. 30m, 24h; default {DEFAULT_LIFETIME})",
    )
    link.add_argument(
        "--base",
        default=DEFAULT_BASE,
        metavar="URL",
        help=f"where people reach the worker's --http (default {DEFAULT_BASE})",
    )
    link.set_defaults(command_type=MakeLink)

    sub.choices["worker"].add_argument(
        "--http",
        type=_address,
        metavar="HOST:PORT",
        help="also serve signed links (hitl link) on this address, e.g. 127.0.0.1:8080",
    )


def _address(text: str) -> tuple[str, int]:
    try:
        return parse_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
