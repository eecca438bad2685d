"""The diff grid: changed cells, inserts and deletes apart, word diff, raw JSON toggle."""

from __future__ import annotations

import json

from hitl_desktop.agent.diff import Diff
from hitl_desktop.agent.review import Review
from hitl_desktop.ui.dialogs import confirmation, parse_edit
from hitl_desktop.ui.diff_view import (
    DARK,
    LIGHT,
    DiffView,
    diff_html,
    field_rows,
    word_diff,
)

LONG_BEFORE = "Customer asked for a refund because the service was down for two days"
LONG_AFTER = "Customer asked for a partial refund because the service was down for three days"

UPDATE = Diff(
    index=0,
    op="update",
    table="customers",
    key={"id": 23},
    before={"id": 23, "email": "a@example.net", "note": LONG_BEFORE, "vip": False},
    after={"id": 23, "email": "b@example.net", "note": LONG_AFTER, "vip": False},
    changed=("email", "note"),
    fingerprint="f",
)
INSERT = Diff(1, "insert", "refunds", {}, None, {"invoice_id": 1042, "amount": "20.00"},
              ("invoice_id", "amount"), "f")  # fmt: skip
DELETE = Diff(2, "delete", "refunds", {"id": 12}, {"id": 12, "amount": "5.00"}, None,
              ("id", "amount"), "f")  # fmt: skip


def review(*diffs: Diff) -> Review:
    return Review(
        request="r",
        summary="s",
        rationale="why",
        proposal={"summary": "s", "changes": [{"op": d.op} for d in diffs]},
        diffs=diffs,
        tables=tuple(sorted({d.table for d in diffs})),
        target="sqlite:///t.db",
        proposer="offline (demo)",
    )


def test_field_rows_mark_changed_cells_and_key_columns() -> None:
    rows = {r.name: r for r in field_rows(UPDATE)}
    assert list(rows) == ["id", "email", "note", "vip"]
    assert rows["id"].key and not rows["id"].changed
    assert rows["email"].changed and not rows["vip"].changed
    assert (rows["email"].before, rows["email"].after) == ("a@example.net", "b@example.net")
    assert all(r.changed and r.before is None for r in field_rows(INSERT))
    assert all(r.changed and r.after is None for r in field_rows(DELETE))


def test_word_diff_marks_removed_and_added_words() -> None:
    old, new = word_diff(LONG_BEFORE, LONG_AFTER)
    assert ("del", "two") in old and ("ins", "three") in new
    assert any(kind == "ins" and "partial" in text for kind, text in new)
    assert "".join(t for _, t in old) == LONG_BEFORE and "".join(t for _, t in new) == LONG_AFTER


def test_the_html_highlights_changes_and_styles_inserts_and_deletes_apart() -> None:
    page = diff_html([UPDATE, INSERT, DELETE], LIGHT)
    assert page.count(f"background-color:{LIGHT.changed}") == 2  # email and note
    assert f"background-color:{LIGHT.insert}" in page and f"background-color:{LIGHT.delete}" in page
    assert "line-through" in page and f"background-color:{LIGHT.ins_word}" in page
    assert "UPDATE" in page and "INSERT" in page and "DELETE" in page and "(new row)" in page
    dark = diff_html([UPDATE], DARK)
    assert LIGHT.changed not in dark and DARK.changed in dark
    assert "<script>" not in diff_html([Diff(0, "insert", "t", {}, None, {"x": "<script>"},
                                             ("x",), "f")], LIGHT)  # fmt: skip
    assert page.count("b@example.net") == 1


def test_the_raw_json_toggle_shows_the_proposal(qapp: object) -> None:
    view = DiffView()
    view.set_review(review(UPDATE, DELETE))
    assert view.title.text() == "Changes: 2 rows (1 delete, 1 update)"
    assert not view.showing_raw and "b@example.net" in view.browser.toPlainText()
    view.raw_toggle.click()
    assert view.showing_raw and json.loads(view.raw.toPlainText())["summary"] == "s"
    view.raw_toggle.click()
    assert not view.showing_raw
    view.set_review(None)
    assert not view.raw_toggle.isEnabled()


def test_deletes_and_several_rows_ask_for_confirmation() -> None:
    assert confirmation(review(UPDATE)) is None
    assert "deletes 1 row (refunds)" in (confirmation(review(DELETE)) or "")
    assert "2 row changes" in (confirmation(review(UPDATE, INSERT)) or "")


def test_edited_values_keep_the_proposal_type() -> None:
    assert parse_edit("15", 10) == 15 and parse_edit("x", 10) == "x"
    assert parse_edit("1.5", 2.0) == 1.5
    assert parse_edit("no", True) is False and parse_edit("true", False) is True
    assert parse_edit("", None) is None and parse_edit("text", None) == "text"
    assert parse_edit("007", "001") == "007"
