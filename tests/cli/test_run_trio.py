"""`run_trio` (cli/serve.py): errors that leave a nursery together all reach the user, one
`Error:` line each, exit 1; a bug in the same group is never hidden behind them."""

from __future__ import annotations

import io

import pytest
import trio

from tokenomics.cli.main import report
from tokenomics.cli.serve import run_trio
from tokenomics.domain.errors import ErrorGroup, StartError, StoreError, TokenomicsError


async def _fail(error: BaseException) -> None:
    raise error  # at once, no checkpoint: every task of the nursery fails before any cancel


async def _together(*errors: BaseException) -> None:
    async with trio.open_nursery() as nursery:
        for error in errors:
            nursery.start_soon(_fail, error)


async def _nested(outer: BaseException, inner: BaseException) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_fail, outer)
        nursery.start_soon(_together, inner)


def test_two_errors_of_a_group_are_both_reported_with_exit_code_one() -> None:
    with pytest.raises(ErrorGroup) as caught:
        run_trio(_together, StartError("port 8080 is in use"), StoreError("database is locked"))
    messages = sorted(e.message for e in caught.value.errors)
    assert messages == ["database is locked", "port 8080 is in use"]
    stderr = io.StringIO()
    report(caught.value, stderr)
    assert sorted(stderr.getvalue().splitlines()) == [
        "Error: database is locked",
        "Error: port 8080 is in use",
    ]


def test_errors_of_nested_groups_are_flattened() -> None:
    with pytest.raises(ErrorGroup) as caught:
        run_trio(_nested, StartError("a"), StoreError("b"))
    assert sorted(e.message for e in caught.value.errors) == ["a", "b"]


def test_one_error_comes_out_as_itself() -> None:
    with pytest.raises(StartError, match="port 8080 is in use"):
        run_trio(_together, StartError("port 8080 is in use"))


def test_the_same_error_from_two_tasks_is_reported_once() -> None:
    with pytest.raises(StartError):
        run_trio(_together, StartError("no hash key"), StartError("no hash key"))


def test_a_bug_next_to_our_error_keeps_the_whole_group_for_its_traceback() -> None:
    with pytest.raises(BaseExceptionGroup) as caught:
        run_trio(_together, StartError("port in use"), KeyError("bug"))
    kinds = {type(e) for e in caught.value.exceptions}
    assert kinds == {StartError, KeyError}


def test_ctrl_c_in_a_group_is_an_interrupt() -> None:
    with pytest.raises(KeyboardInterrupt):
        run_trio(_together, StartError("port in use"), KeyboardInterrupt())


def test_a_single_error_is_reported_on_one_line() -> None:
    stderr = io.StringIO()
    report(TokenomicsError("the upstream is down"), stderr)
    assert stderr.getvalue() == "Error: the upstream is down\n"
