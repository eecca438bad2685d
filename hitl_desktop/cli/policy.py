"""`hitl policy apply | show | clear`: the store's approval policy (a TOML file of rules)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..agent import Policy, PolicyInvalid, Targets, parse_policy
from ..engine import Engine, PolicyRecord
from .command import StoreCommand
from .errors import USAGE, CliError, Output
from .inputs import store_url

NO_POLICY = "no policy: one approval by anyone decides"


@dataclass(frozen=True)
class PolicyApply(StoreCommand[PolicyRecord]):
    """`hitl policy apply FILE`: store the file as the policy's next version, once it parses;
    `hitl policy clear` applies the empty policy."""

    store: str
    text: str
    policy: Policy

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> PolicyApply:
        # The file is read and checked before the store is opened: a bad one stores nothing.
        text = _read(args.file)
        try:
            policy = parse_policy(text)
        except PolicyInvalid as exc:
            raise CliError(f"{args.file}: {exc}; nothing was applied", USAGE) from None
        return cls(store_url(args.store, create=True), text, policy)

    async def fetch(self, engine: Engine, targets: Targets) -> PolicyRecord:
        return await engine.apply_policy(self.text)

    def render(self, result: PolicyRecord) -> Output:
        names = [rule.name for rule in self.policy.rules]
        if names:
            count = f"{len(names)} rule{'' if len(names) == 1 else 's'} ({', '.join(names)})"
        else:
            count = "no rules (one approval by anyone decides)"
        text = f"policy version {result.version} applied by {result.applied_by} at "
        text += f"{_utc(result.applied_at)}: {count}; sha256 {result.sha256[:12]}"
        return Output({**_doc(result), "rules": names}, text)


@dataclass(frozen=True)
class PolicyClear(PolicyApply):
    @classmethod
    def prepare(cls, args: argparse.Namespace) -> PolicyClear:
        return cls(store_url(args.store), "", Policy())


@dataclass(frozen=True)
class PolicyShow(StoreCommand[PolicyRecord | None]):
    """`hitl policy show`: the policy in force, with who applied it and when."""

    store: str

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> PolicyShow:
        return cls(store_url(args.store))

    async def fetch(self, engine: Engine, targets: Targets) -> PolicyRecord | None:
        return await engine.current_policy()

    def render(self, result: PolicyRecord | None) -> Output:
        if result is None:
            return Output({"policy": None}, NO_POLICY)
        header = f"# policy version {result.version}, applied by {result.applied_by} at "
        header += f"{_utc(result.applied_at)}, sha256 {result.sha256[:12]}"
        return Output({"policy": _doc(result)}, f"{header}\n{result.text.rstrip()}")


def _read(file: str) -> str:
    try:
        return Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(
            f"cannot read the policy file {file}: not UTF-8 text ({exc})", USAGE
        ) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise CliError(f"cannot read the policy file {file}: {reason}", USAGE) from None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _doc(record: PolicyRecord) -> dict[str, Any]:
    return {
        "version": record.version,
        "text": record.text,
        "sha256": record.sha256,
        "applied_at": record.applied_at,
        "applied_by": record.applied_by,
    }


def add_policy_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    policy = sub.add_parser("policy", help="apply, show or clear the store's approval policy")
    commands = policy.add_subparsers(dest="policy_command", required=True, metavar="COMMAND")
    apply = commands.add_parser(
        "apply",
        parents=[common],
        help="check a policy file (TOML [[rule]] tables) and store it as the policy in force",
        description="Check FILE and store it as the approval policy's next version, recorded "
        "in the audit trail. The first rule matching a proposal decides what deciding it "
        "takes; none matching: one approval by anyone. An invalid file stores nothing.",
    )
    apply.add_argument("file", metavar="FILE", help="the policy file (TOML)")
    apply.set_defaults(command_type=PolicyApply)
    show = commands.add_parser(
        "show", parents=[common], help="the policy in force, who applied it and when"
    )
    show.set_defaults(command_type=PolicyShow)
    clear = commands.add_parser(
        "clear", parents=[common], help="apply the empty policy: one approval by anyone decides"
    )
    clear.set_defaults(command_type=PolicyClear)
