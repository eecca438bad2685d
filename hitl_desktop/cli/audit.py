"""`hitl audit verify` and `hitl audit export`: the store's hash-chained audit trail."""

from __future__ import annotations

import argparse
import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..agent import Targets
from ..engine import AuditEntry, AuditReport, Engine
from .command import StoreCommand
from .errors import USAGE, CliError, Output
from .inputs import store_url

FIELDS = ("id", "at", "actor", "kind", "run_id", "token_id", "data", "prev_hash", "hash")
PAGE = 1000
MAX_ENTRIES = 10_000_000


@dataclass(frozen=True)
class AuditVerify(StoreCommand[AuditReport]):
    """`hitl audit verify`: exit 0 when the chain is intact, 1 naming the first bad entry."""

    store: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> AuditVerify:
        return cls(store_url(args.store))

    async def fetch(self, engine: Engine, targets: Targets) -> AuditReport:
        return await engine.verify_audit()

    def render(self, result: AuditReport) -> Output:
        doc: dict[str, Any] = {"intact": result.broken is None, "entries": result.entries}
        if result.broken is None:
            doc["head"] = result.head
            text = f"audit trail intact: {result.entries} entries, head {result.head[:16]}…"
            return Output(doc, text)
        doc["first_bad_entry"] = result.broken.entry_id
        doc["reason"] = result.broken.reason
        text = (
            f"audit trail broken at entry {result.broken.entry_id}: {result.broken.reason} "
            f"({result.entries} entries before it match)"
        )
        return Output(doc, text, code=1)


@dataclass(frozen=True)
class AuditExport(StoreCommand[list[AuditEntry]]):
    """`hitl audit export --format csv|jsonl [--since DATE]`: every entry, oldest first."""

    store: str
    format: str
    since: datetime | None

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> AuditExport:
        return cls(store_url(args.store), args.format, _since(args.since))

    async def fetch(self, engine: Engine, targets: Targets) -> list[AuditEntry]:
        entries: list[AuditEntry] = []
        after = 0
        while len(entries) < MAX_ENTRIES:
            page = await engine.audit_entries(after, limit=PAGE, since=self.since)
            entries += page
            if len(page) < PAGE:
                break
            after = page[-1].id
        return entries

    def render(self, result: list[AuditEntry]) -> Output:
        rows = [{name: getattr(e, name) for name in FIELDS} for e in result]
        if self.format == "jsonl":
            text = "\n".join(
                json.dumps({**row, "data": None if e.data is None else json.loads(e.data)})
                for row, e in zip(rows, result, strict=True)
            )
        else:
            out = io.StringIO()
            writer = csv.DictWriter(out, FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
            text = out.getvalue().rstrip("\n")
        return Output({"entries": rows}, text)


def _since(given: str | None) -> datetime | None:
    if given is None:
        return None
    try:
        when = datetime.fromisoformat(given)
    except ValueError:
        raise CliError(
            f"--since {given!r} is not a date: use 2026-12-01 or 2026-12-01T09:30", USAGE
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def add_audit_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    audit = sub.add_parser("audit", help="verify or export the store's audit trail")
    commands = audit.add_subparsers(dest="audit_command", required=True, metavar="COMMAND")
    verify = commands.add_parser(
        "verify",
        parents=[common],
        help="check every entry's hash chain: exit 0 when intact, 1 naming the first bad entry",
    )
    verify.set_defaults(command_type=AuditVerify)
    export = commands.add_parser(
        "export", parents=[common], help="print every entry, oldest first, for auditors"
    )
    export.add_argument("--format", choices=["csv", "jsonl"], default="jsonl")
    export.add_argument("--since", metavar="DATE", help="only entries at or after DATE (UTC)")
    export.set_defaults(command_type=AuditExport)
