"""Approval policies: a TOML file of rules saying what deciding a proposed change takes.

    [[rule]]
    name = "small refunds"
    table = "refunds"
    when = ["refunds.amount <= 50"]
    auto_approve = true

The first rule that matches a proposal's diffs wins; none matching means the default, one
approval by anyone (`Policy.match` returns None).

A comparison (`when`) reads the proposed values of each diff: `after` for an insert (the
columns given) and for an update (the whole row: `before` with the new values over it), `before`
for a delete. It holds when at least one diff (of the named table, when the column is
qualified) has the column and every such diff's value satisfies it. Exact decimals are stored
in diffs as text ("20.00"), so a number literal compares with such text as a number. Any other
type mismatch, and a null value, make the comparison false: a rule never matches by accident,
and matching never raises.
"""

from __future__ import annotations

import operator
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

from ..units.durations import text_seconds
from .coerce import JSONValue
from .diff import Diff
from .errors import AgentError

OPERATIONS: Final = ("insert", "update", "delete")
KEYS: Final = (
    "name",
    "profile",
    "table",
    "operation",
    "min_rows",
    "max_rows",
    "when",
    "approvals",
    "approvers",
    "self_approval",
    "auto_approve",
    "remind_after",
    "escalate_to",
    "timeout",
)
_DURATION_HINT = "use a text such as '500ms', '30s', '10m', '2h', '1d' or '1h30m'"


class PolicyInvalid(AgentError):
    """A policy file that cannot be used; the message names the line, or the rule and field."""


Operator = Literal["<", "<=", ">", ">=", "==", "!="]
_COMPARISON = re.compile(
    r"\s*(?P<column>[^\W\d][\w$]*(?:\.[^\W\d][\w$]*)*)\s*(?P<op><=|>=|==|!=|<|>)\s*(?P<literal>.*?)\s*"
)
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")
_OPS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_DECIMAL_TEXT = re.compile(r"-?\d+(?:\.\d+)?")
"""How `to_json_value` writes an exact decimal: compared with a number literal as a number."""


@dataclass(frozen=True, slots=True)
class _Comparison:
    table: str | None
    column: str
    op: Operator
    literal: Decimal | str | bool | None

    def holds(self, diffs: Sequence[Diff]) -> bool:
        seen = False
        for diff in diffs:
            if self.table is not None and diff.table != self.table:
                continue
            values = diff.before if diff.op == "delete" else diff.after
            if values is None or self.column not in values:
                continue
            seen = True
            if not _satisfies(values[self.column], self.op, self.literal):
                return False
        return seen


def _satisfies(value: JSONValue, op: Operator, literal: Decimal | str | bool | None) -> bool:
    if literal is None:  # `== null` / `!= null`: the only comparisons a null takes part in
        return (value is None) == (op == "==")
    if value is None:
        return False
    if isinstance(literal, bool) or isinstance(value, bool):
        if not (isinstance(literal, bool) and isinstance(value, bool)):
            return False
        return (value == literal) == (op == "==")
    if isinstance(literal, Decimal):
        number = _number(value)
        return number is not None and _OPS[op](number, literal)
    if isinstance(literal, str) and isinstance(value, str):
        return _OPS[op](value, literal)
    return False


def _number(value: JSONValue) -> Decimal | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Decimal(repr(value))
    if isinstance(value, str) and _DECIMAL_TEXT.fullmatch(value):
        return Decimal(value)
    return None


def _parse_comparison(text: str, where: str) -> _Comparison:
    found = _COMPARISON.fullmatch(text)
    if found is None or not found["literal"]:
        raise PolicyInvalid(
            f"{where}: cannot read the comparison {text!r}: write <column> <op> <value>, "
            'e.g. "refunds.amount <= 50", with op one of < <= > >= == !='
        )
    table, _, column = found["column"].rpartition(".")
    op: Operator = found["op"]  # type: ignore[assignment]  # the pattern allows only these
    literal = _literal(found["literal"])
    if isinstance(literal, _Bad):
        raise PolicyInvalid(
            f"{where}: cannot read the value in the comparison {text!r}: use a number, a quoted "
            "text ('x' or \"x\"), true, false or null"
        )
    if op not in ("==", "!=") and (literal is None or isinstance(literal, bool)):
        raise PolicyInvalid(
            f"{where}: the comparison {text!r} orders by {found['literal']}: "
            "null, true and false are compared with == or != only"
        )
    return _Comparison(table or None, column, op, literal)


class _Bad:
    """A literal that is none of the accepted kinds."""


_BAD: Final = _Bad()


def _literal(text: str) -> Decimal | str | bool | _Bad | None:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and text[0] not in text[1:-1]:
        return text[1:-1]
    if _NUMBER.fullmatch(text):
        try:
            return Decimal(text)
        except InvalidOperation:
            return _BAD
    return _BAD


@dataclass(frozen=True, slots=True)
class Rule:
    """One rule of a policy: what it matches (profile, tables, operations, rows, comparisons)
    and what deciding a matched proposal takes."""

    name: str
    profile: str | None = None
    tables: tuple[str, ...] = ()
    operations: tuple[str, ...] = ()
    min_rows: int | None = None
    max_rows: int | None = None
    when: tuple[str, ...] = ()
    """The comparisons' texts, as written."""
    approvals: int = 1
    approvers: tuple[str, ...] = ()
    self_approval: bool = True
    auto_approve: bool = False
    remind_after: float | None = None
    """Seconds."""
    escalate_to: tuple[str, ...] = ()
    timeout: str | None = None
    """The review's deadline as a duration text; None: the request's own."""
    _comparisons: tuple[_Comparison, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}, field 'when'"
        parsed = tuple(_parse_comparison(text, where) for text in self.when)
        object.__setattr__(self, "_comparisons", parsed)

    def matches(self, profile: str, diffs: Sequence[Diff]) -> bool:
        if self.profile is not None and profile != self.profile:
            return False
        if self.tables and any(diff.table not in self.tables for diff in diffs):
            return False
        if self.operations and any(diff.op not in self.operations for diff in diffs):
            return False
        if self.min_rows is not None and len(diffs) < self.min_rows:
            return False
        if self.max_rows is not None and len(diffs) > self.max_rows:
            return False
        return all(comparison.holds(diffs) for comparison in self._comparisons)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "profile": self.profile,
            "tables": list(self.tables),
            "operations": list(self.operations),
            "min_rows": self.min_rows,
            "max_rows": self.max_rows,
            "when": list(self.when),
            "approvals": self.approvals,
            "approvers": list(self.approvers),
            "self_approval": self.self_approval,
            "auto_approve": self.auto_approve,
            "remind_after": self.remind_after,
            "escalate_to": list(self.escalate_to),
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rule:
        """The rule of `to_json`; other keys (such as a review's "policy_version") are ignored."""
        remind_after = data.get("remind_after")
        return cls(
            name=str(data["name"]),
            profile=data.get("profile"),
            tables=tuple(data.get("tables") or ()),
            operations=tuple(data.get("operations") or ()),
            min_rows=data.get("min_rows"),
            max_rows=data.get("max_rows"),
            when=tuple(data.get("when") or ()),
            approvals=int(data.get("approvals", 1)),
            approvers=tuple(data.get("approvers") or ()),
            self_approval=bool(data.get("self_approval", True)),
            auto_approve=bool(data.get("auto_approve", False)),
            remind_after=None if remind_after is None else float(remind_after),
            escalate_to=tuple(data.get("escalate_to") or ()),
            timeout=data.get("timeout"),
        )


@dataclass(frozen=True, slots=True)
class Policy:
    rules: tuple[Rule, ...] = ()

    def match(self, profile: str, diffs: Sequence[Diff]) -> Rule | None:
        """The first rule matching *diffs* on *profile*; None: the default (one approval by
        anyone)."""
        return next((rule for rule in self.rules if rule.matches(profile, diffs)), None)


def parse_policy(text: str) -> Policy:
    """The policy of a TOML file's *text*; empty text is no policy. Raises `PolicyInvalid`."""
    if not text.strip():
        return Policy()
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = str(exc)
        if "line " not in where:  # "at end of document": still name the line
            where += f", line {len(text.splitlines())}"
        raise PolicyInvalid(f"the policy is not valid TOML: {where}") from None
    other = sorted(set(doc) - {"rule"})
    if other:
        raise PolicyInvalid(
            f"unknown top-level key {other[0]!r}: a policy holds only [[rule]] tables"
        )
    tables = doc.get("rule")
    if not tables:
        raise PolicyInvalid("the policy has no [[rule]]: add one, or apply an empty file")
    if not isinstance(tables, list):
        raise PolicyInvalid("'rule' must be an array of tables: write [[rule]], not [rule]")
    rules: list[Rule] = []
    for number, table in enumerate(tables, 1):
        rule = _rule(table, number)
        if any(rule.name == earlier.name for earlier in rules):
            raise PolicyInvalid(f"rule {number}: the name {rule.name!r} is used by another rule")
        rules.append(rule)
    return Policy(tuple(rules))


def _rule(table: dict[str, Any], number: int) -> Rule:
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PolicyInvalid(f"rule {number}: 'name' is required, a non-empty text")
    where = f"rule {name!r}"
    unknown = sorted(set(table) - set(KEYS))
    if unknown:
        raise PolicyInvalid(
            f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(KEYS)}"
        )
    fields = _Fields(table, where)
    operations = fields.texts("operation")
    for op in operations:
        if op not in OPERATIONS:
            raise PolicyInvalid(
                f"{where}, field 'operation': unknown operation {op!r}; use {', '.join(OPERATIONS)}"
            )
    min_rows, max_rows = fields.count("min_rows"), fields.count("max_rows")
    if min_rows is not None and max_rows is not None and min_rows > max_rows:
        raise PolicyInvalid(f"{where}: min_rows ({min_rows}) is more than max_rows ({max_rows})")
    approvals = fields.count("approvals")
    if approvals is not None and approvals < 1:
        raise PolicyInvalid(f"{where}, field 'approvals': must be 1 or more, not {approvals}")
    approvals = 1 if approvals is None else approvals
    approvers = fields.texts("approvers")
    auto_approve = fields.flag("auto_approve", False)
    if auto_approve and approvals > 1:
        raise PolicyInvalid(f"{where}: auto_approve contradicts approvals = {approvals}")
    if auto_approve and approvers:
        raise PolicyInvalid(f"{where}: auto_approve contradicts approvers (nobody decides)")
    remind_after = fields.duration("remind_after")
    escalate_to = fields.texts("escalate_to")
    if escalate_to and remind_after is None:
        raise PolicyInvalid(f"{where}: escalate_to needs remind_after (when the review escalates)")
    timeout = fields.duration_text("timeout")
    return Rule(
        name=name,
        profile=fields.text("profile"),
        tables=fields.texts("table"),
        operations=operations,
        min_rows=min_rows,
        max_rows=max_rows,
        when=fields.texts("when"),
        approvals=approvals,
        approvers=approvers,
        self_approval=fields.flag("self_approval", True),
        auto_approve=auto_approve,
        remind_after=remind_after,
        escalate_to=escalate_to,
        timeout=timeout,
    )


@dataclass(frozen=True, slots=True)
class _Fields:
    """A rule table's fields, each read as its type or a `PolicyInvalid` naming it."""

    table: dict[str, Any]
    where: str

    def _wrong(self, key: str, wanted: str) -> PolicyInvalid:
        return PolicyInvalid(
            f"{self.where}, field {key!r}: must be {wanted}, not {self.table[key]!r}"
        )

    def text(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self._wrong(key, "a non-empty text")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, ())
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list | tuple) or not all(
            isinstance(item, str) and item.strip() for item in items
        ):
            raise self._wrong(key, "a non-empty text or a list of them")
        if key in self.table and not items:
            raise self._wrong(key, "a non-empty text or a list of them")
        return tuple(items)

    def count(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise self._wrong(key, "a whole number")
        if value is not None and value < 0:
            raise self._wrong(key, "0 or more")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self._wrong(key, "true or false")
        return value

    def duration_text(self, key: str) -> str | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self._wrong(key, f"a duration text ({_DURATION_HINT})")
        try:
            text_seconds(value)
        except ValueError:
            raise PolicyInvalid(
                f"{self.where}, field {key!r}: invalid duration {value!r}: {_DURATION_HINT}"
            ) from None
        return value

    def duration(self, key: str) -> float | None:
        value = self.duration_text(key)
        return None if value is None else text_seconds(value)
