"""The agent's Qt-free, engine-free core: the catalogue, proposals, validation, diffs, demo data.

from hitl_desktop.agent import reflect_catalogue, Proposal, validate, diff_proposal

catalogue = reflect_catalogue(engine, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
proposal = Proposal.model_validate_json(model_answer)   # the shape of proposal_json_schema()
validated = validate(proposal, catalogue, engine)       # or raises ProposalInvalid
diffs = diff_proposal(validated, engine)                # JSON-ready: Diff.to_json()
"""

from .catalogue import (
    COLUMN_KINDS,
    Catalogue,
    ColumnInfo,
    ColumnKind,
    ForeignKeyInfo,
    TableInfo,
    column_kind,
    reflect_catalogue,
    reflect_catalogue_async,
    reflect_catalogue_conn,
)
from .coerce import CoercionError, coerce_value, to_json_value
from .demo_db import DEFAULT_DENY, DEMO_ALLOW, create_demo_db, demo_rows, write_demo
from .diff import (
    Conflict,
    Diff,
    diff_conn,
    diff_proposal,
    diff_proposal_async,
    diffs_from_json,
    diffs_to_json,
    find_conflicts,
    fingerprint,
    read_rows,
)
from .errors import AgentError, CatalogueError, Problem, ProblemCode, ProposalInvalid
from .proposal import (
    ColumnValue,
    Op,
    Proposal,
    RowChange,
    Scalar,
    proposal_json_schema,
    proposal_response_format,
)
from .validation import (
    DEFAULT_MAX_ROWS,
    ValidatedChange,
    ValidatedProposal,
    validate,
    validate_async,
)

__all__ = [
    "COLUMN_KINDS",
    "DEFAULT_DENY",
    "DEFAULT_MAX_ROWS",
    "DEMO_ALLOW",
    "AgentError",
    "Catalogue",
    "CatalogueError",
    "CoercionError",
    "ColumnInfo",
    "ColumnKind",
    "ColumnValue",
    "Conflict",
    "Diff",
    "ForeignKeyInfo",
    "Op",
    "Problem",
    "ProblemCode",
    "Proposal",
    "ProposalInvalid",
    "RowChange",
    "Scalar",
    "TableInfo",
    "ValidatedChange",
    "ValidatedProposal",
    "coerce_value",
    "column_kind",
    "create_demo_db",
    "demo_rows",
    "diff_conn",
    "diff_proposal",
    "diff_proposal_async",
    "diffs_from_json",
    "diffs_to_json",
    "find_conflicts",
    "fingerprint",
    "proposal_json_schema",
    "proposal_response_format",
    "read_rows",
    "reflect_catalogue",
    "reflect_catalogue_async",
    "reflect_catalogue_conn",
    "to_json_value",
    "validate",
    "validate_async",
    "write_demo",
]
