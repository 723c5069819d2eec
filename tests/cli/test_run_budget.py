"""`tokenomics run --max-cost/--max-tokens/--max-requests/--max-duration` (issue 20, part 1).

The capped runs are real: `python -m tokenomics run` with a child that uses the `openai` SDK
against the proxy of `run`, answered by the built-in mock provider. The model is `gpt-4`
(priced in the embedded table) so that the mock's usage has a cost.
"""

from __future__ import annotations

import json
import os
import re
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.cli.test_run import MOCK_POLICY, PY, summary, tokenomics
from tests.conftest import Result

from tokenomics.config.prices import load_prices

# Makes up to 50 requests of 20 words each (the mock answers 15 words), stopping at the first
# refusal; prints one JSON line: the replies received, the status and message of the refusal,
# and the `x-should-retry` header the SDK saw (its default retries are left on).
LOOP_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import openai

    client = openai.OpenAI()
    words = " ".join(["hello"] * 20)  # 20 tokens for tiktoken as for the mock
    done, refusal = 0, None
    for _ in range(int(sys.argv[1])):
        try:
            client.chat.completions.create(
                model=sys.argv[2], messages=[{"role": "user", "content": words}], max_tokens=50
            )
        except openai.APIStatusError as exc:
            refusal = {"status": exc.status_code, "message": exc.body["message"],
                       "retry": exc.response.headers.get("x-should-retry")}
            break
        done += 1
    print(json.dumps({"done": done, "refusal": refusal}), flush=True)
    """
)
COST = re.compile(r"\$([0-9.]+)")


@pytest.fixture
def token(cli: Callable[..., Result]) -> str:
    created = cli("token", "create", "--policy", MOCK_POLICY, "--json")
    assert created.code == 0, created.err
    return str(json.loads(created.out)["token"])


def run_loop(work: Path, token: str, *flags: str, model: str = "gpt-4", count: int = 50):
    (work / "loop.py").write_text(LOOP_SCRIPT)
    env = {"TOKENOMICS_KEY": token, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"}
    result = tokenomics("run", *flags, "--", "python3", "loop.py", str(count), model, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]), summary(result.stderr)


def test_a_cost_capped_run_stops_at_the_cap_within_one_output(token: str, work: Path) -> None:
    price = load_prices({}).lookup("gpt-4")
    assert price is not None
    cap = 0.01
    outcome, line = run_loop(work, token, "--max-cost", str(cap))
    per_request = (23 * price.input + 15 * price.output) / 1e6  # the mock: 20 words + 3 in, 15 out
    done = outcome["done"]
    spent = float(COST.search(line).group(1))  # type: ignore[union-attr]
    assert spent == pytest.approx(done * per_request, rel=0.01)
    refusal = outcome["refusal"]
    assert refusal["status"] == 429
    found = re.fullmatch(
        r"run budget exceeded: \$0\.0100 max cost for this run "
        r"\(used \$([0-9.]+) \+ estimated \$([0-9.]+)\)",
        refusal["message"],
    )
    assert found is not None, refusal
    used, estimated = float(found.group(1)), float(found.group(2))
    assert used == pytest.approx(spent, rel=0.01)
    # it stopped because the next request would have passed the cap, not earlier ...
    assert used + estimated > cap
    assert done == 6 and (done - 1) * per_request + estimated <= cap
    # ... and the overshoot rule holds: never past the cap by more than one request's output
    assert spent <= cap + 15 * price.output / 1e6
    assert refusal["retry"] == "false"  # the SDK did not retry it: one refusal
    assert line.endswith(", capped by the run budget ($0.0100 max cost; 1 request refused)")
    assert line.startswith(f"tokenomics: {done + 1} requests, ")


def test_max_requests(token: str, work: Path) -> None:
    outcome, line = run_loop(work, token, "--max-requests", "3", model="mock-gpt")
    assert outcome["done"] == 3
    assert outcome["refusal"]["status"] == 429
    assert outcome["refusal"]["message"] == (
        "run budget exceeded: 3 max requests for this run (3 made)"
    )
    assert line == (
        "tokenomics: 4 requests, 114 tokens, $0.0000, "
        "capped by the run budget (3 max requests; 1 request refused)"
    )


def test_max_tokens(token: str, work: Path) -> None:
    # each request: 38 tokens (23 in, 15 out); our estimate of its input is 26 (tiktoken's 20 +
    # 3 per message + 3 for the reply). The third is admitted at 76 + 26 <= 110 and takes the
    # run to 114: past the limit by less than its output, as the overshoot rule allows.
    outcome, line = run_loop(work, token, "--max-tokens", "110", model="mock-gpt")
    assert outcome["done"] == 3
    assert outcome["refusal"]["message"] == (
        "run budget exceeded: 110 max tokens for this run (used 114 + input 26)"
    )
    assert line == (
        "tokenomics: 4 requests, 114 tokens, $0.0000, "
        "capped by the run budget (110 max tokens; 1 request refused)"
    )


def test_a_run_within_its_budget_is_not_capped(token: str, work: Path) -> None:
    outcome, line = run_loop(work, token, "--max-cost", "1", count=2)
    assert outcome == {"done": 2, "refusal": None}
    assert "capped" not in line


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-cost", "-1"], "--max-cost -1.0: use an amount of US dollars above 0"),
        (["--max-requests", "-2"], "--max-requests -2: use a whole number above 0"),
        (["--max-duration", "soon"], '--max-duration "soon": use a duration such as 90s'),
        (
            ["--max-cost", "2", "--proxy-url", "http://127.0.0.1:9"],
            "run budgets ($2.00 max cost) are enforced by the proxy `run` starts itself; "
            "they cannot apply to --proxy-url",
        ),
    ],
)
def test_bad_limits_are_errors(token: str, flags: list[str], message: str) -> None:
    result = tokenomics("run", *flags, "--", "true", env={"TOKENOMICS_KEY": token})
    assert result.returncode != 0
    assert message in result.stderr


# Two requests with the standard library, the second one 2.5 s after the child started.
LATE_SCRIPT = textwrap.dedent(
    """
    import json, os, time, urllib.error, urllib.request

    started = time.monotonic()

    def ask():
        request = urllib.request.Request(
            os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions",
            data=json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}).encode(),
            headers={"authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                     "content-type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request) as reply:
                return reply.status, ""
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())["error"]["message"]

    first = ask()
    time.sleep(max(0.0, 2.5 - (time.monotonic() - started)))
    print(json.dumps([first, ask()]), flush=True)
    """
)


def test_max_duration_counts_from_the_childs_start_and_leaves_it_running(
    token: str, work: Path
) -> None:
    # a real child cannot run on a mock clock: 2.5 s of real time (the proxy side of the
    # duration is tested on the autojump clock in tests/e2e/test_run_budget.py)
    (work / "late.py").write_text(LATE_SCRIPT)
    env = {"TOKENOMICS_KEY": token}
    result = tokenomics("run", "--max-duration", "2s", "--", PY, "late.py", env=env)
    assert result.returncode == 0, result.stderr  # not signalled: it finished on its own
    first, second = json.loads(result.stdout.strip().splitlines()[-1])
    assert first == [200, ""]
    assert second == [
        429,
        "run budget exceeded: 2s max duration for this run (no more requests after that time)",
    ]
    assert summary(result.stderr).endswith(
        ", capped by the run budget (2s max duration; 1 request refused)"
    )
