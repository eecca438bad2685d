"""The demo's offline proposer: a fixed set of request shapes, answered without a model.

It exists so that `make demo` and the tests run with no API key and no network. It reads rows
through the same recorded tools as the model would, and its proposals are checked like a model's.
Anything it does not understand fails the run with the list of shapes it knows (`SHAPES`).
A request of several shapes joined by "and" is answered with a change set: one part per shape,
named after it, each relying on its own reads (`DEMO_CHANGE_SET`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .proposal import Proposal, RowChange
from .proposer import ProposalSession, ProposerFailed

LABEL = "offline (demo)"

SHAPES: tuple[str, ...] = (
    "Refund $AMOUNT on invoice ID   (optionally: because duplicate | service outage | fraudulent)",
    "Move customer ID to the annual plan   (or: monthly plan)",
    "Change the email of customer ID to ADDRESS",
    "Cancel the subscription of customer ID   (or: Cancel subscription ID)",
    "Mark invoice ID as paid",
    "Void invoice ID",
    "Delete refund ID",
    "REQUEST and REQUEST   (two or more of the above: a change set, each part reviewed alone)",
)
"""The request shapes the offline proposer understands (ID may be a number or INV-000123)."""

DEMO_CHANGE_SET = "Refund $20 on invoice 1042 and mark invoice 4854 as paid"
"""A request the offline proposer answers with a two-part change set on the demo database."""

MAX_PARTS = 10
"""The most parts a request of the offline proposer may join with "and"."""

DEMO_REQUESTS: tuple[str, ...] = (
    "Refund $20 on invoice 1042",
    "Move customer 17 to the annual plan",
    "Change the email of customer 23 to jonas@schmidt.example",
    "Cancel the subscription of customer 58",
    "Mark invoice 4854 as paid",
    "Delete refund 12",
)
"""Requests that make sense on the demo database (the demo console triggers them)."""

_REASONS = {
    "duplicate": "duplicate",
    "service outage": "service_outage",
    "outage": "service_outage",
    "fraud": "fraudulent",
    "fraudulent": "fraudulent",
}

_ID = r"(?P<id>INV-\d+|\d+)"
_I = re.IGNORECASE


@dataclass(frozen=True, slots=True)
class _Shape:
    pattern: re.Pattern[str]
    build: Callable[[OfflineProposer, ProposalSession, re.Match[str]], Awaitable[Proposal]]


def _ident(text: str) -> int:
    return int(text.upper().removeprefix("INV-"))


class OfflineProposer:
    """Deterministic proposals for the `SHAPES`; labelled as the demo's wherever it is shown."""

    label = LABEL

    async def propose(self, session: ProposalSession) -> Proposal:
        text = " ".join(session.request.split()).rstrip(".!")
        items = _items(text)
        if items is None:
            known = "\n".join(f"  - {shape}" for shape in SHAPES)
            raise ProposerFailed(
                f"the offline demo proposer does not understand {session.request!r}. "
                f"It knows these requests:\n{known}\n(use the OpenAI proposer for anything else)"
            )
        if len(items) == 1:
            shape, match, _ = items[0]
            proposal = await shape.build(self, session, match)
        else:
            proposal = await self._change_set(session, items)
        problems = await session.check(proposal)
        if problems:
            lines = "; ".join(str(p) for p in problems)
            raise ProposerFailed(f"the demo proposer's answer is invalid: {lines}")
        return proposal

    async def _change_set(
        self, session: ProposalSession, items: list[tuple[_Shape, re.Match[str], str]]
    ) -> Proposal:
        """One part per item, named after it; each item's reads are relied on by its part."""
        built: list[tuple[str, Proposal]] = []
        try:
            for shape, match, name in items:
                session.part = name
                built.append((name, await shape.build(self, session, match)))
        finally:
            session.part = None
        return Proposal(
            summary="; ".join(proposal.summary for _, proposal in built)[:2000],
            rationale=" ".join(proposal.rationale for _, proposal in built)[:20000],
            changes=[
                change.model_copy(update={"part": name})
                for name, proposal in built
                for change in proposal.changes
            ],
        )

    # ------------------------------------------------------------ reads, all recorded

    async def _row(self, session: ProposalSession, table: str, key: dict[str, Any]) -> Any:
        name = f"read {table} {','.join(str(v) for v in key.values())}"
        return await session.record(name, session.tools.get_row, table, key)

    async def _find(self, session: ProposalSession, table: str, where: dict[str, Any]) -> Any:
        name = f"find {table} {','.join(f'{k}={v}' for k, v in where.items())}"
        return await session.record(name, session.tools.find_rows, table, where, 50)

    async def _invoice(self, session: ProposalSession, ident: str) -> dict[str, Any]:
        row = await self._row(session, "invoices", {"id": _ident(ident)})
        if row is None:
            raise ProposerFailed(f"there is no invoice {ident}")
        return dict(row)

    async def _customer(self, session: ProposalSession, ident: str) -> dict[str, Any]:
        row = await self._row(session, "customers", {"id": int(ident)})
        if row is None:
            raise ProposerFailed(f"there is no customer {ident}")
        return dict(row)

    async def _active_subscription(self, session: ProposalSession, customer: int) -> dict[str, Any]:
        rows = await self._find(session, "subscriptions", {"customer_id": customer})
        live = [r for r in rows if r["status"] in ("active", "trialing", "past_due")]
        if not live:
            raise ProposerFailed(f"customer {customer} has no active subscription")
        return dict(live[-1])

    async def _now(self, session: ProposalSession) -> str:
        # Recorded, so a replay proposes the very same timestamps.
        stamp: str = await session.record(
            "clock", lambda: datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()
        )
        return stamp

    # ------------------------------------------------------------ the shapes

    async def refund(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        try:
            amount = Decimal(m["amount"]).quantize(Decimal("0.01"))
        except InvalidOperation:
            raise ProposerFailed(f"{m['amount']!r} is not an amount") from None
        if amount <= 0:
            raise ProposerFailed("a refund must be more than $0.00")
        invoice = await self._invoice(session, m["id"])
        if invoice["status"] != "paid":
            raise ProposerFailed(
                f"invoice {invoice['number']} is {invoice['status']}, not paid: nothing to refund"
            )
        earlier = await self._find(session, "refunds", {"invoice_id": invoice["id"]})
        refunded = sum(
            (Decimal(str(r["amount"])) for r in earlier if r["status"] != "failed"), Decimal(0)
        )
        left = Decimal(str(invoice["amount"])) - refunded
        if amount > left:
            raise ProposerFailed(
                f"invoice {invoice['number']} has ${left} left to refund "
                f"(${invoice['amount']} paid, ${refunded} refunded); ${amount} is too much"
            )
        reason = _REASONS.get((m["reason"] or "").lower(), "requested_by_customer")
        now = await self._now(session)
        return Proposal(
            summary=f"Refund ${amount} on invoice {invoice['number']}",
            rationale=(
                f"Invoice {invoice['number']} (id {invoice['id']}) is paid: ${invoice['amount']}, "
                f"${refunded} already refunded, so ${left} can be refunded. A pending refund of "
                f"${amount} is recorded with reason {reason}; the payment provider settles it."
            ),
            changes=[
                RowChange(
                    op="insert",
                    table="refunds",
                    values={
                        "invoice_id": invoice["id"],
                        "amount": str(amount),
                        "reason": reason,
                        "status": "pending",
                        "created_at": now,
                        "note": f"Requested: {session.request}"[:500],
                    },
                )
            ],
        )

    async def move_plan(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        customer = await self._customer(session, m["id"])
        sub = await self._active_subscription(session, customer["id"])
        plan = await self._row(session, "plans", {"id": sub["plan_id"]})
        interval = "year" if m["interval"].lower() in ("annual", "yearly") else "month"
        if plan is None:
            raise ProposerFailed(f"subscription {sub['id']} has no plan")
        if plan["billing_interval"] == interval:
            raise ProposerFailed(
                f"customer {customer['id']} is already on {plan['name']}: nothing to change"
            )
        tier = str(plan["code"]).split("-")[0]
        code = f"{tier}-{'annual' if interval == 'year' else 'monthly'}"
        found = await self._find(session, "plans", {"code": code})
        if not found:
            raise ProposerFailed(f"there is no plan {code!r}")
        target = found[0]
        return _update(
            "subscriptions",
            sub["id"],
            {"plan_id": target["id"]},
            summary=f"Move {customer['name']} (customer {customer['id']}) to {target['name']}",
            rationale=(
                f"Customer {customer['id']}'s current subscription {sub['id']} is on "
                f"{plan['name']} (${plan['price']}/{plan['billing_interval']}). The same tier "
                f"billed per {interval} is {target['name']} at ${target['price']}."
            ),
        )

    async def change_email(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        customer = await self._customer(session, m["id"])
        email = m["email"].lower()
        taken = await self._find(session, "customers", {"email": email})
        if taken:
            raise ProposerFailed(f"{email} already belongs to customer {taken[0]['id']}")
        return _update(
            "customers",
            customer["id"],
            {"email": email},
            summary=f"Change the email of {customer['name']} (customer {customer['id']})",
            rationale=f"Replaces {customer['email']} with {email}, which no customer uses yet.",
        )

    async def cancel_subscription(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        if m.groupdict().get("customer"):
            customer = await self._customer(session, m["customer"])
            sub = await self._active_subscription(session, customer["id"])
        else:
            row = await self._row(session, "subscriptions", {"id": int(m["subscription"])})
            if row is None:
                raise ProposerFailed(f"there is no subscription {m['subscription']}")
            sub = dict(row)
            if sub["status"] == "canceled":
                raise ProposerFailed(f"subscription {sub['id']} is already canceled")
        today = (await self._now(session))[:10]
        return _update(
            "subscriptions",
            sub["id"],
            {"status": "canceled", "canceled_on": today},
            summary=f"Cancel subscription {sub['id']} of customer {sub['customer_id']}",
            rationale=(
                f"Subscription {sub['id']} is {sub['status']}; it is marked canceled today "
                f"({today}). The current period ends {sub['current_period_end']}."
            ),
        )

    async def mark_paid(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        invoice = await self._invoice(session, m["id"])
        if invoice["status"] != "open":
            raise ProposerFailed(f"invoice {invoice['number']} is {invoice['status']}, not open")
        now = await self._now(session)
        return _update(
            "invoices",
            invoice["id"],
            {"status": "paid", "paid_at": now},
            summary=f"Mark invoice {invoice['number']} as paid",
            rationale=f"Invoice {invoice['number']} (${invoice['amount']}) is open; paid now.",
        )

    async def void(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        invoice = await self._invoice(session, m["id"])
        if invoice["status"] != "open":
            raise ProposerFailed(
                f"invoice {invoice['number']} is {invoice['status']}: only open invoices are voided"
            )
        return _update(
            "invoices",
            invoice["id"],
            {"status": "void"},
            summary=f"Void invoice {invoice['number']}",
            rationale=f"Invoice {invoice['number']} (${invoice['amount']}) is open; voided.",
        )

    async def delete_refund(self, session: ProposalSession, m: re.Match[str]) -> Proposal:
        row = await self._row(session, "refunds", {"id": int(m["id"])})
        if row is None:
            raise ProposerFailed(f"there is no refund {m['id']}")
        if row["status"] == "succeeded":
            raise ProposerFailed(f"refund {row['id']} has succeeded: it cannot be deleted")
        return Proposal(
            summary=f"Delete {row['status']} refund {row['id']} of ${row['amount']}",
            rationale=(
                f"Refund {row['id']} on invoice id {row['invoice_id']} is {row['status']}, "
                "so no money moved; deleting it removes it from the books."
            ),
            changes=[RowChange(op="delete", table="refunds", key={"id": row["id"]})],
        )


_AND = re.compile(r",? and |; ", _I)


def _items(text: str) -> list[tuple[_Shape, re.Match[str], str]] | None:
    """The shapes *text* asks for: one, or several joined by "and" (a change set), each with
    its match and its part's name; None when a piece matches no shape."""
    for pieces in ([text], _AND.split(text)):
        if len(pieces) > MAX_PARTS:
            return None
        found = []
        for piece in pieces:
            shape = next((s for s in _SHAPES if s.pattern.fullmatch(piece)), None)
            if shape is None:
                break
            match = shape.pattern.fullmatch(piece)
            assert match is not None
            found.append((shape, match, piece[:1].upper() + piece[1:]))
        else:
            return found
    return None


def _update(
    table: str, row_id: Any, values: dict[str, Any], *, summary: str, rationale: str
) -> Proposal:
    """A proposal that updates one row, found by its id."""
    return Proposal(
        summary=summary,
        rationale=rationale,
        changes=[RowChange(op="update", table=table, key={"id": row_id}, values=values)],
    )


_SHAPES: tuple[_Shape, ...] = (
    _Shape(
        re.compile(
            r"refund \$?(?P<amount>\d+(?:\.\d{1,2})?) (?:on|for|of) invoice "
            + _ID
            + r"(?: (?:because|for|reason:?) (?:of )?(?:a )?(?P<reason>[a-z ]+))?",
            _I,
        ),
        OfflineProposer.refund,
    ),
    _Shape(
        re.compile(
            r"move customer (?P<id>\d+) to (?:the |an? )?(?P<interval>annual|yearly|monthly) plan",
            _I,
        ),
        OfflineProposer.move_plan,
    ),
    _Shape(
        re.compile(
            r"change (?:the )?email of customer (?P<id>\d+) to (?P<email>[^@\s]+@[^@\s]+\.[a-z]+)",
            _I,
        ),
        OfflineProposer.change_email,
    ),
    _Shape(
        re.compile(r"cancel (?:the )?subscription of customer (?P<customer>\d+)", _I),
        OfflineProposer.cancel_subscription,
    ),
    _Shape(
        re.compile(r"cancel (?:the )?subscription (?P<subscription>\d+)", _I),
        OfflineProposer.cancel_subscription,
    ),
    _Shape(re.compile(r"mark invoice " + _ID + r" (?:as )?paid", _I), OfflineProposer.mark_paid),
    _Shape(re.compile(r"void invoice " + _ID, _I), OfflineProposer.void),
    _Shape(re.compile(r"delete refund (?P<id>\d+)", _I), OfflineProposer.delete_refund),
)
