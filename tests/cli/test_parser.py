"""The argument tree names one command object per command, and preparing a command checks its
inputs without writing into the parsed arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hitl_desktop.cli import USAGE, CliError
from hitl_desktop.cli.command import Command, StoreCommand
from hitl_desktop.cli.parser import build_parser
from hitl_desktop.cli.store import Complete, Runs


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield path, parser
        return
    for name, child in subs[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_every_command_line_names_a_command_object():
    leaves = dict(_leaves(build_parser()))
    assert {"runs", "complete", "approve", "reject", "demo-db"} <= {p[0] for p in leaves}
    assert ("profile", "add") in leaves
    for path, parser in leaves.items():
        command_type = parser.get_default("command_type")
        assert isinstance(command_type, type) and issubclass(command_type, Command), path


def test_preparing_leaves_the_parsed_arguments_alone(tmp_path: Path):
    store = tmp_path / "runs.db"
    store.touch()
    args = build_parser().parse_args(["runs", "--store", str(store), "--limit", "5"])
    before = dict(vars(args))
    command = args.command_type.prepare(args)
    assert vars(args) == before
    assert isinstance(command, Runs) and isinstance(command, StoreCommand)
    assert command.limit == 5 and command.store.endswith("runs.db")


def test_a_commands_inputs_are_checked_before_the_store_is_opened(tmp_path: Path):
    store = tmp_path / "runs.db"
    store.touch()  # not a store: opening it would fail differently
    args = build_parser().parse_args(["complete", "t1", "--store", str(store), "--data", "{"])
    with pytest.raises(CliError) as caught:
        Complete.prepare(args)
    assert caught.value.code == USAGE and "is not valid JSON" in str(caught.value)
