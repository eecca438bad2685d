"""JSON texts in columns: small ones inline, large ones out of line in `hitl_blobs`."""

from __future__ import annotations

import os

import sqlalchemy as sa

from . import schema
from .tx import Prepared, Tx

INLINE_LIMIT = 64 * 1024
"""Texts longer than this (characters) are stored out of line."""

_REF = "@blob:"  # JSON text never starts with "@", so a reference cannot be mistaken for JSON

_insert_blob = Prepared(
    schema.blobs.insert().values(
        id=sa.bindparam("id"), size=sa.bindparam("size"), data=sa.bindparam("data")
    )
)
_delete_blob = Prepared(schema.blobs.delete().where(schema.blobs.c.id == sa.bindparam("rid")))
_select_blob = Prepared(
    sa.select(schema.blobs.c.data).where(schema.blobs.c.id == sa.bindparam("rid"))
)


def put(tx: Tx, text: str | None) -> str | None:
    """The column value for *text*, writing it to the blob table when it is large."""
    if text is None or len(text) <= INLINE_LIMIT:
        return text
    blob_id = os.urandom(12).hex()
    tx.execute(_insert_blob, {"id": blob_id, "size": len(text), "data": text})
    return _REF + blob_id


def drop(tx: Tx, column: str | None) -> None:
    """Delete what put() wrote out of line for *column*, which will not be stored after all."""
    if column is not None and column.startswith(_REF):
        tx.execute(_delete_blob, {"rid": column[len(_REF) :]})


def get(tx: Tx, column: str | None) -> str | None:
    """The JSON text behind a column value written by put()."""
    if column is None or not column.startswith(_REF):
        return column
    row = tx.one(_select_blob, {"rid": column[len(_REF) :]})
    if row is None:  # only a bug or hand-edited store gets here
        raise LookupError(f"large value {column[len(_REF) :]} is missing from the store")
    return str(row["data"])
