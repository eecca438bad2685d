"""The agent (no Qt): the catalogue, proposals, validation, diffs, the proposers, the demo data,
and the built-in `db-change` task with its exactly-once write.

from hitl_desktop.agent import reflect_catalogue, Proposal, validate, diff_proposal

catalogue = reflect_catalogue(engine, allow=DEMO_ALLOW, deny=DEFAULT_DENY)
proposal = Proposal.model_validate_json(model_answer)   # the shape of proposal_json_schema()
validated = validate(proposal, catalogue, engine)       # or raises ProposalInvalid
diffs = diff_proposal(validated, engine)                # JSON-ready: Diff.to_json()

targets = Targets({"shop": TargetProfile("shop", url)})      # this machine's profiles
engine = Engine(store, tasks=[db_change_task(targets)])
run = await request_change(engine, ChangeRequest("Refund $20 on invoice 1042", "shop"))
await decide(engine, targets, token_id, Decision(approve=True, reviewer="ana"))
"""

from .apply import MARKERS, ApplyFailed
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
from .change_set import ChangeSet, PartState, change_set, part_review, read_change_set
from .coerce import CoercionError, coerce_value, to_json_value
from .db_change import (
    ChangeRequest,
    EditRefused,
    RequestInvalid,
    check_edits,
    db_change_task,
    decide,
    request_change,
)
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
    value_text,
)
from .errors import AgentError, CatalogueError, Problem, ProblemCode, ProposalInvalid
from .offline import DEMO_CHANGE_SET, DEMO_REQUESTS, SHAPES, OfflineProposer
from .policy import Policy, PolicyInvalid, Rule, parse_policy
from .profiles import (
    DEFAULT_PROFILE,
    DEMO_PROFILE,
    TargetProfile,
    demo_profile,
    profile_name,
)
from .proposal import (
    ColumnValue,
    Op,
    Proposal,
    RowChange,
    Scalar,
    proposal_json_schema,
    proposal_response_format,
)
from .proposer import (
    ProposalSession,
    Proposer,
    ProposerFailed,
    ReadTools,
    Recorder,
    ToolError,
)
from .reads import Read, ReliedOn, relied_on
from .revert import RevertRefused, RevertState, revert, revert_state
from .review import (
    APPLY_MODES,
    OUTCOMES,
    PROPOSE_STEP,
    TASK_NAME,
    ApplyMode,
    Decision,
    DecisionInvalid,
    Edit,
    Outcome,
    OutcomeKind,
    Part,
    PartOutcome,
    Review,
    parse_edits,
    review_from_steps,
)
from .targets import ProfileUnavailable, Target, Targets
from .validation import (
    DEFAULT_MAX_ROWS,
    ValidatedChange,
    ValidatedProposal,
    validate,
    validate_async,
)


def __getattr__(name: str) -> object:
    # The openai client costs a few hundred ms to import: load it when a model is used.
    if name == "OpenAIProposer":
        from .llm import OpenAIProposer

        return OpenAIProposer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "APPLY_MODES",
    "COLUMN_KINDS",
    "DEFAULT_DENY",
    "DEFAULT_MAX_ROWS",
    "DEFAULT_PROFILE",
    "DEMO_ALLOW",
    "DEMO_CHANGE_SET",
    "DEMO_PROFILE",
    "DEMO_REQUESTS",
    "MARKERS",
    "OUTCOMES",
    "PROPOSE_STEP",
    "SHAPES",
    "TASK_NAME",
    "AgentError",
    "ApplyFailed",
    "ApplyMode",
    "Catalogue",
    "CatalogueError",
    "ChangeRequest",
    "ChangeSet",
    "CoercionError",
    "ColumnInfo",
    "ColumnKind",
    "ColumnValue",
    "Conflict",
    "Decision",
    "DecisionInvalid",
    "Diff",
    "Edit",
    "EditRefused",
    "ForeignKeyInfo",
    "OfflineProposer",
    "Op",
    "OpenAIProposer",
    "Outcome",
    "OutcomeKind",
    "Part",
    "PartOutcome",
    "PartState",
    "Policy",
    "PolicyInvalid",
    "Problem",
    "ProblemCode",
    "ProfileUnavailable",
    "Proposal",
    "ProposalInvalid",
    "ProposalSession",
    "Proposer",
    "ProposerFailed",
    "Read",
    "ReadTools",
    "Recorder",
    "ReliedOn",
    "RequestInvalid",
    "RevertRefused",
    "RevertState",
    "Review",
    "RowChange",
    "Rule",
    "Scalar",
    "TableInfo",
    "Target",
    "TargetProfile",
    "Targets",
    "ToolError",
    "ValidatedChange",
    "ValidatedProposal",
    "change_set",
    "check_edits",
    "coerce_value",
    "column_kind",
    "create_demo_db",
    "db_change_task",
    "decide",
    "demo_profile",
    "demo_rows",
    "diff_conn",
    "diff_proposal",
    "diff_proposal_async",
    "diffs_from_json",
    "diffs_to_json",
    "find_conflicts",
    "fingerprint",
    "parse_edits",
    "parse_policy",
    "part_review",
    "profile_name",
    "proposal_json_schema",
    "proposal_response_format",
    "read_change_set",
    "read_rows",
    "reflect_catalogue",
    "reflect_catalogue_async",
    "reflect_catalogue_conn",
    "relied_on",
    "request_change",
    "revert",
    "revert_state",
    "review_from_steps",
    "to_json_value",
    "validate",
    "validate_async",
    "value_text",
    "write_demo",
]
