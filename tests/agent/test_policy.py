"""Approval policies: parsing the TOML file, its errors, and matching rules against diffs."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from hitl_desktop.agent import (
    Catalogue,
    Diff,
    Policy,
    PolicyInvalid,
    Rule,
    diff_proposal,
    fingerprint,
    parse_policy,
    validate,
)
from tests.agent.helpers import proposal

FULL = """
[[rule]]
name = "small refunds"
profile = "demo"
table = "refunds"
operation = "insert"
min_rows = 1
max_rows = 5
when = ["refunds.amount <= 50"]
auto_approve = true

[[rule]]
name = "large refunds"
table = ["refunds", "invoices"]
operation = ["insert", "update"]
approvals = 2
approvers = ["finance", "leads"]
self_approval = false
remind_after = "2h"
escalate_to = ["leads"]
timeout = "48h"
"""


def insert(table: str, **after: Any) -> Diff:
    return Diff(0, "insert", table, {}, None, dict(after), tuple(after), fingerprint(None))


def update(table: str, before: dict[str, Any], **values: Any) -> Diff:
    after = {**before, **values}
    return Diff(0, "update", table, {"id": 1}, before, after, tuple(values), fingerprint(before))


def delete(table: str, **before: Any) -> Diff:
    return Diff(0, "delete", table, {"id": 1}, dict(before), None, tuple(before), "x")


def rule(**fields: Any) -> Rule:
    return Rule(name="r", **fields)


def invalid(text: str) -> str:
    with pytest.raises(PolicyInvalid) as caught:
        parse_policy(text)
    return str(caught.value)


# ------------------------------------------------------------------ parsing


def test_every_field_is_read() -> None:
    small, large = parse_policy(FULL).rules
    assert small == Rule(
        name="small refunds",
        profile="demo",
        tables=("refunds",),
        operations=("insert",),
        min_rows=1,
        max_rows=5,
        when=("refunds.amount <= 50",),
        auto_approve=True,
    )
    assert (small.approvals, small.approvers, small.self_approval) == (1, (), True)
    assert (small.remind_after, small.escalate_to, small.timeout) == (None, (), None)
    assert large == Rule(
        name="large refunds",
        tables=("refunds", "invoices"),
        operations=("insert", "update"),
        approvals=2,
        approvers=("finance", "leads"),
        self_approval=False,
        remind_after=7200.0,
        escalate_to=("leads",),
        timeout="48h",
    )
    assert (large.profile, large.min_rows, large.max_rows, large.when) == (None, None, None, ())
    assert large.auto_approve is False


def test_empty_text_is_no_policy() -> None:
    assert parse_policy("") == Policy(rules=())
    assert parse_policy("\n  \n") == Policy(rules=())


def test_a_toml_syntax_error_names_its_line() -> None:
    message = invalid('[[rule]]\nname = "a"\ntable = refunds\n')
    assert message.startswith("the policy is not valid TOML: ")
    assert "line 3" in message
    unfinished = invalid('[[rule]]\nname = "a"\nwhen = [\n')
    assert unfinished == "the policy is not valid TOML: Invalid value (at end of document), line 3"


@pytest.mark.parametrize(
    ("text", "wording"),
    [
        ("# only a comment\n", "the policy has no [[rule]]: add one, or apply an empty file"),
        ('[rule]\nname = "a"\n', "'rule' must be an array of tables: write [[rule]], not [rule]"),
        (
            'title = "x"\n[[rule]]\nname = "a"\n',
            "unknown top-level key 'title': a policy holds only [[rule]] tables",
        ),
        ('[[rule]]\ntable = "t"\n', "rule 1: 'name' is required, a non-empty text"),
        ('[[rule]]\nname = " "\n', "rule 1: 'name' is required, a non-empty text"),
        (
            '[[rule]]\nname = "a"\n[[rule]]\nname = "a"\n',
            "rule 2: the name 'a' is used by another rule",
        ),
        ('[[rule]]\nname = "a"\napprovals = 0\n', "rule 'a', field 'approvals': must be 1 or more"),
        (
            '[[rule]]\nname = "a"\napprovals = "2"\n',
            "rule 'a', field 'approvals': must be a whole number, not '2'",
        ),
        (
            '[[rule]]\nname = "a"\nmin_rows = true\n',
            "rule 'a', field 'min_rows': must be a whole number, not True",
        ),
        (
            '[[rule]]\nname = "a"\ntable = 3\n',
            "rule 'a', field 'table': must be a non-empty text or a list of them, not 3",
        ),
        (
            '[[rule]]\nname = "a"\napprovers = []\n',
            "rule 'a', field 'approvers': must be a non-empty text or a list of them, not []",
        ),
        (
            '[[rule]]\nname = "a"\nprofile = ["demo"]\n',
            "rule 'a', field 'profile': must be a non-empty text, not ['demo']",
        ),
        (
            '[[rule]]\nname = "a"\nself_approval = "no"\n',
            "rule 'a', field 'self_approval': must be true or false, not 'no'",
        ),
        (
            '[[rule]]\nname = "a"\nauto_approve = true\napprovals = 2\n',
            "rule 'a': auto_approve contradicts approvals = 2",
        ),
        (
            '[[rule]]\nname = "a"\nauto_approve = true\napprovers = ["leads"]\n',
            "rule 'a': auto_approve contradicts approvers (nobody decides)",
        ),
        (
            '[[rule]]\nname = "a"\nescalate_to = ["leads"]\n',
            "rule 'a': escalate_to needs remind_after (when the review escalates)",
        ),
        (
            '[[rule]]\nname = "a"\nremind_after = "2 hours"\n',
            "rule 'a', field 'remind_after': invalid duration '2 hours': use a text such as",
        ),
        (
            '[[rule]]\nname = "a"\ntimeout = 3600\n',
            "rule 'a', field 'timeout': must be a duration text (use a text such as",
        ),
        (
            '[[rule]]\nname = "a"\noperation = ["insert", "upsert"]\n',
            "rule 'a', field 'operation': unknown operation 'upsert'; use insert, update, delete",
        ),
        (
            '[[rule]]\nname = "a"\nmin_rows = 5\nmax_rows = 2\n',
            "rule 'a': min_rows (5) is more than max_rows (2)",
        ),
        (
            '[[rule]]\nname = "a"\nmax_rows = -1\n',
            "rule 'a', field 'max_rows': must be 0 or more, not -1",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = ["amount is small"]\n',
            "rule 'a', field 'when': cannot read the comparison 'amount is small': "
            "write <column> <op> <value>",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = ["amount <="]\n',
            "rule 'a', field 'when': cannot read the comparison 'amount <='",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = ["status == paid"]\n',
            "rule 'a', field 'when': cannot read the value in the comparison 'status == paid': "
            "use a number, a quoted text",
        ),
        (
            '[[rule]]\nname = "a"\nwhen = ["note < null"]\n',
            "rule 'a', field 'when': the comparison 'note < null' orders by null: "
            "null, true and false are compared with == or != only",
        ),
    ],
)
def test_each_error_names_the_rule_and_field(text: str, wording: str) -> None:
    assert wording in invalid(text)


def test_an_unknown_field_is_named_with_the_known_ones() -> None:
    message = invalid('[[rule]]\nname = "a"\napprover = ["leads"]\n')
    assert message == (
        "rule 'a': unknown field 'approver'; the fields are name, profile, table, operation, "
        "min_rows, max_rows, when, approvals, approvers, self_approval, auto_approve, "
        "remind_after, escalate_to, timeout"
    )


def test_single_texts_are_lists_of_one() -> None:
    (only,) = parse_policy(
        '[[rule]]\nname = "a"\noperation = "delete"\nwhen = "status == \'paid\'"\n'
        'approvers = "leads"\nremind_after = "1h30m"\nescalate_to = "cto"\n'
    ).rules
    assert only.operations == ("delete",) and only.when == ("status == 'paid'",)
    assert only.approvers == ("leads",) and only.escalate_to == ("cto",)
    assert only.remind_after == 5400.0


def test_to_json_and_from_json_round_trip() -> None:
    for each in parse_policy(FULL).rules:
        data = each.to_json()
        assert Rule.from_json(data) == each
        assert Rule.from_json(data).to_json() == data
    assert Rule.from_json({**data, "policy_version": 3}) == each  # as a review stores it
    small = Rule.from_json(parse_policy(FULL).rules[0].to_json())
    assert small.matches("demo", [insert("refunds", amount="20.00")])


# ------------------------------------------------------------------ matching


def test_first_matching_rule_wins_and_none_matching_is_the_default() -> None:
    policy = parse_policy(FULL)
    small = [insert("refunds", amount="20.00")]
    large = [insert("refunds", amount="80.00")]
    assert policy.match("demo", small) == policy.rules[0]
    assert policy.match("demo", large) == policy.rules[1]
    assert policy.match("shop", small) == policy.rules[1]  # the first is for profile demo only
    assert policy.match("demo", [insert("customers", name="x")]) is None
    assert Policy().match("demo", small) is None


def test_profile() -> None:
    assert rule(profile="demo").matches("demo", [insert("t")])
    assert not rule(profile="demo").matches("shop", [insert("t")])
    assert rule().matches("anything", [insert("t")])


def test_every_diffs_table_must_be_listed() -> None:
    diffs = [insert("refunds"), update("invoices", {"id": 1, "status": "open"}, status="paid")]
    assert rule(tables=("refunds", "invoices")).matches("p", diffs)
    assert not rule(tables=("refunds",)).matches("p", diffs)


def test_every_diffs_operation_must_be_listed() -> None:
    diffs = [insert("t"), delete("t", id=1)]
    assert rule(operations=("insert", "delete")).matches("p", diffs)
    assert not rule(operations=("insert",)).matches("p", diffs)
    assert not rule(operations=("update",)).matches("p", diffs)


def test_rows_counts_the_diffs() -> None:
    three = [insert("t") for _ in range(3)]
    assert rule(min_rows=3, max_rows=3).matches("p", three)
    assert not rule(min_rows=4).matches("p", three)
    assert not rule(max_rows=2).matches("p", three)


def when(*texts: str) -> Rule:
    return rule(when=texts)


def test_numbers_compare_with_exact_decimal_text_and_numbers() -> None:
    assert when("refunds.amount <= 50").matches("p", [insert("refunds", amount="50.00")])
    assert not when("refunds.amount < 50").matches("p", [insert("refunds", amount="50.00")])
    assert when("amount == 20").matches("p", [insert("refunds", amount="20.00")])
    assert when("seats > 2.5").matches("p", [insert("subs", seats=3)])
    assert when("ratio >= -1e1").matches("p", [insert("t", ratio=-10.0)])
    assert when("amount != 20").matches("p", [insert("t", amount=21)])


def test_texts_and_flags_and_null() -> None:
    paid = insert("invoices", status="paid", note=None, urgent=True)
    assert when("status == 'paid'").matches("p", [paid])
    assert when('status == "paid"').matches("p", [paid])
    assert when("status != 'open'").matches("p", [paid])
    assert when("status > 'open'").matches("p", [paid])  # text orders as text
    assert when("urgent == true", "urgent != false").matches("p", [paid])
    assert when("note == null", "status != null").matches("p", [paid])
    assert not when("status == null").matches("p", [paid])
    assert when("when <= '2025-12-31'").matches("p", [insert("t", when="2025-07-01")])


@pytest.mark.parametrize(
    "comparison",
    [
        "amount <= 50",  # text that is not a number
        "urgent == 1",  # a flag is not a number
        "urgent < 'x'",  # nor text
        "count == 'ten'",  # a number is not text
        "note < 50",  # null orders with nothing
        "note != 50",  # nor differs from anything
        "note != 'x'",
        "status == true",  # text is not a flag
        "blob == 1",  # a list is none of these
    ],
)
def test_a_type_mismatch_or_null_never_matches_and_never_raises(comparison: str) -> None:
    row = insert("t", amount="abc", urgent=True, count=10, note=None, status="x", blob=[1])
    assert when(comparison).matches("p", [row]) is False


def test_a_missing_column_does_not_match() -> None:
    assert not when("refunds.amount <= 50").matches("p", [insert("refunds", reason="x")])
    assert not when("nope == 1").matches("p", [insert("t", id=1)])


def test_a_qualified_column_reads_only_its_tables_diffs() -> None:
    diffs = [insert("refunds", amount="10.00"), insert("invoices", amount="900.00")]
    assert when("refunds.amount <= 50").matches("p", diffs)
    assert not when("invoices.amount <= 50").matches("p", diffs)
    assert not when("amount <= 50").matches("p", diffs)  # unqualified: every table's diffs
    assert when("amount > 5").matches("p", diffs)
    assert not when("customers.amount > 5").matches("p", diffs)  # no diff of that table


def test_an_unqualified_column_skips_diffs_without_it() -> None:
    diffs = [insert("refunds", amount="10.00"), insert("notes", text="x")]
    assert when("amount < 50").matches("p", diffs)


def test_every_row_must_satisfy_a_comparison() -> None:
    small = [insert("refunds", amount=f"{n}.00") for n in (5, 20, 50)]
    assert when("refunds.amount <= 50").matches("p", small)
    assert not when("refunds.amount <= 50").matches("p", [*small, insert("refunds", amount="51")])
    assert not when("amount <= 50", "amount >= 10").matches("p", small)  # all must hold


def test_a_delete_is_judged_by_the_row_it_removes() -> None:
    gone = delete("refunds", id=1, amount="30.00", status="pending")
    assert when("amount < 50", "status == 'pending'").matches("p", [gone])
    assert not when("amount > 50").matches("p", [gone])


def test_on_real_diffs_an_updates_after_is_the_whole_row(
    demo_catalogue: Catalogue, demo_engine: sa.Engine
) -> None:
    change = {"op": "update", "table": "subscriptions", "key": {"id": 20}, "values": {"plan_id": 4}}
    refund = {
        "op": "insert",
        "table": "refunds",
        "values": {
            "invoice_id": 1042,
            "amount": "20",
            "reason": "requested_by_customer",
            "status": "pending",
            "created_at": "2025-07-01T10:00:00",
        },
    }
    move, give = diff_proposal(
        validate(proposal(change, refund), demo_catalogue, demo_engine), demo_engine
    )
    assert give.after is not None and give.after["amount"] == "20.00"  # a decimal, as text
    # status was not changed, yet the update's proposed row has it (from before)
    both = when("subscriptions.status == 'active'", "subscriptions.plan_id == 4", "amount <= 50")
    assert both.matches("demo", [move, give])
    small = parse_policy(FULL)
    assert small.match("demo", [give]) == small.rules[0]
    assert small.match("demo", [move, give]) is None  # subscriptions is in neither rule


def test_a_comparison_is_data_never_code() -> None:
    message = invalid('[[rule]]\nname = "a"\nwhen = ["__import__(\'os\') == 1"]\n')
    assert "cannot read the comparison" in message
