"""Signed links (no Qt): a URL that lets its holder see one review and approve or reject it,
and the web app `hitl worker --http` serves them with.

from hitl_desktop.links import link_secret, make_link, link_app, LinkServer

secret = link_secret(store_url)                   # HITL_LINK_SECRET, else the OS keyring
url = make_link(token_id, "ana", 3600).url("https://hitl.example.org", secret)
server = LinkServer(link_app(engine, secret), "127.0.0.1", 8080)
await server.start()                              # in the engine's loop
"""

from .app import MAX_BODY, FailedSignatures, link_app
from .secret import SECRET_ENV, LinkSecretUnavailable, link_secret, secret_user
from .server import LinkServer, ServeFailed, parse_address
from .signing import SCOPE, Link, LinkExpired, LinkInvalid, make_link, verify

__all__ = [
    "MAX_BODY",
    "SCOPE",
    "SECRET_ENV",
    "FailedSignatures",
    "Link",
    "LinkExpired",
    "LinkInvalid",
    "LinkSecretUnavailable",
    "LinkServer",
    "ServeFailed",
    "link_app",
    "link_secret",
    "make_link",
    "parse_address",
    "secret_user",
    "verify",
]
