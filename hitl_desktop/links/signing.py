"""Signed links: a URL that lets its holder see one review and approve or reject it.

A link names a token, the one action it allows (``decide``: view and decide, never edit), the
person it was made for and when it expires; an HMAC-SHA256 over those four, keyed with the
store's link secret, is its signature. Anything changed in the URL (another token, a later
expiry, another name) no longer matches the signature. The secret never enters the store: a
link proves that whoever made it could read the secret, not who holds the link now.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from urllib.parse import quote, urlencode

SCOPE = "decide"
"""What a link allows: viewing its review and approving or rejecting it (no edits)."""
PATH = "/link/"
"""Where the worker serves links: ``/link/<token id>?for=…&exp=…&sig=…``."""
MAX_NAME = 200
"""The longest name a link may be made for (it is recorded with the decision)."""

_VERSION = "hitl-link-v1"


class LinkInvalid(ValueError):
    """A link that is malformed or whose signature does not match: it was not made with this
    store's secret, or was changed since."""


class LinkExpired(ValueError):
    """A genuine link past its expiry."""


@dataclass(frozen=True, slots=True)
class Link:
    """What a link grants: *scope* on *token_id*, for *name*, until *expires* (epoch seconds)."""

    token_id: str
    name: str
    expires: int
    scope: str = SCOPE

    def message(self) -> bytes:
        """The bytes signed: every field, each on its own line (none may hold a line break)."""
        fields = (_VERSION, self.scope, self.token_id, self.name, str(self.expires))
        return "\n".join(fields).encode("utf-8")

    def signature(self, secret: bytes) -> str:
        return hmac.new(secret, self.message(), hashlib.sha256).hexdigest()

    def query(self, secret: bytes) -> str:
        """The link's query string, signature included."""
        return urlencode({"for": self.name, "exp": self.expires, "sig": self.signature(secret)})

    def path(self) -> str:
        return PATH + quote(self.token_id, safe="")

    def url(self, base: str, secret: bytes) -> str:
        """The full URL under *base*, the address where people reach the worker."""
        return f"{base.rstrip('/')}{self.path()}?{self.query(secret)}"


def make_link(token_id: str, name: str, lifetime: float, *, now: float | None = None) -> Link:
    """A link to *token_id* for *name*, valid for *lifetime* seconds from *now*."""
    _check_field(token_id, "the token id")
    name = name.strip()
    _check_field(name, "the name the link is made for")
    if len(name) > MAX_NAME:
        raise ValueError(f"the name the link is made for is longer than {MAX_NAME} characters")
    if not lifetime > 0:
        raise ValueError(f"a link's lifetime must be more than 0 seconds, not {lifetime}")
    start = time.time() if now is None else now
    return Link(token_id, name, int(start + lifetime))


def verify(
    token_id: str,
    name: str | None,
    expires: str | None,
    signature: str | None,
    secret: bytes,
    *,
    now: float,
) -> Link:
    """The link these URL parts make, once its signature matches (compared in constant time)
    and it has not expired: `LinkInvalid` or `LinkExpired` otherwise. The signature is checked
    first, so a tampered expiry is a forgery, not an expired link."""
    if not name or not expires or not signature:
        raise LinkInvalid("the link is incomplete: it needs for=, exp= and sig=")
    if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
        raise LinkInvalid("the link's expiry is not a time")
    link = Link(token_id, name, int(expires))
    if str(link.expires) != expires:  # "0123" would sign as "123": one spelling only
        raise LinkInvalid("the link's expiry is not a time")
    expected = link.signature(secret)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace")):
        raise LinkInvalid("the link's signature does not match: it was changed or forged")
    if now >= link.expires:
        raise LinkExpired(f"the link expired at {link.expires}")
    return link


def _check_field(value: str, what: str) -> None:
    if not value or not value.strip():
        raise ValueError(f"{what} is empty")
    if not value.isprintable():
        raise ValueError(f"{what} holds a line break or another control character")
