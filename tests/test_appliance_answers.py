"""Appliance-side bad input: NITRO answers the client did not expect.

A proxy's HTML error page, an empty body, truncated JSON, HTTP 200 carrying an error, an
errorcode nobody documented, a 207 partial bulk failure: each must end the run through the CLI
with a clear one-line error and a documented exit status (never 1, the internal-error status,
and never a traceback), or, where the answer is harmless, with the job really done. The site
keeps serving a verifying certificate, and the next ordinary run converges.
"""

from __future__ import annotations

from typing import Any, Optional

import pytest

from ns_letsencrypt.naming import short_hash
from tests.test_fault_matrix import (
    FLOWS_BY_NAME,
    PASSWORD,
    TOKENS,
    Result,
    Stage,
    challenge_args,
    hierarchy,
    served_certificate,
    staged,
)

DOCUMENTED = {0, 2, 3, 4, 5, 6, 7, 8}  # README exit codes; 1 means a bug

# flow -> calls whose answer is spoiled: (method, resource, action)
TARGETS: dict[str, list[tuple[str, str, Optional[str]]]] = {
    "startup": [("POST", "login", None), ("GET", "nsversion", None), ("GET", "hanode", None)],
    "challenge-deploy": [("GET", "lbvserver_responderpolicy_binding", None),
                         ("POST", "responderaction", None)],
    "renewal-deploy": [("GET", "sslcertkey", None), ("POST", "sslcertkey", "update")],
    "config-save": [("POST", "nsconfig", "save")],
}
ANSWERS: dict[str, dict[str, Any]] = {
    "html-error-page": {"kind": "html"},
    "html-with-200": {"kind": "html", "status": 200},
    "empty-body-500": {"kind": "empty", "status": 500},
    # The reference: some operations succeed with an empty body; the appliance did the work.
    "empty-body-200": {"kind": "empty", "status": 200, "after": True},
    "invalid-json": {"kind": "badjson"},
    "error-with-200": {"kind": "error200", "errorcode": 1097, "message": "Invalid argument value"},
    "unknown-errorcode": {"kind": "error", "status": 599, "errorcode": 99123,
                          "message": "Something the documentation never mentions"},
}
CASES = [(flow, call, answer) for flow, calls in TARGETS.items() for call in calls
         for answer in ANSWERS]


def check_outcome(stage: Stage, flow_name: str, result: Result) -> None:
    """A documented exit status with one clear line, or the job really done."""
    text = result.out + result.err
    assert "Traceback" not in text and PASSWORD not in text
    assert result.status in DOCUMENTED, text
    flow = FLOWS_BY_NAME[flow_name]
    if result.status == 0:
        assert flow.done(stage), f"exit 0 but the job is not done:\n{text}"
    else:
        lines = result.error_lines
        assert lines, f"no error line:\n{text}"
        assert all(len(line) < 2000 for line in lines)
    if flow.serves_tls:
        assert served_certificate(stage, stage.memo["hostname"]) in (
            stage.memo["serials"]["A"], stage.memo["serials"]["B"])


@pytest.mark.parametrize(("flow_name", "call", "answer"), CASES,
                         ids=[f"{f}-{c[0]}-{c[1]}{'-' + c[2] if c[2] else ''}-{a}"
                              for f, c, a in CASES])
def test_unexpected_answer(flow_name: str, call: tuple[str, str, Optional[str]],
                           answer: str) -> None:
    flow = FLOWS_BY_NAME[flow_name]
    method, resource, action = call
    with staged(hierarchy()) as stage:
        flow.prepare(stage)
        stage.fake.inject(method=method, resource=resource, action=action, **ANSWERS[answer])
        result = stage.run(*flow.argv(stage))
        stage.fake.clear_faults()
        check_outcome(stage, flow_name, result)
        again = stage.run(*flow.argv(stage))
        assert again.status == 0 and flow.done(stage), again.err


def test_unexpected_answer_reads_clearly() -> None:
    """The message of an HTML page says what came back, not a JSON decoder's complaint."""
    with staged(hierarchy()) as stage:
        # the first request of a challenge hook call: it reads the bindings to pick priorities
        stage.fake.inject(method="GET", resource="lbvserver_responderpolicy_binding",
                          kind="html")
        result = stage.run("hook", "deploy_challenge", *challenge_args())
    assert result.status == 5
    line = result.error_lines[-1]
    assert "text/html" in line and "Bad Gateway" in line
    assert "lbvserver_responderpolicy_binding" in line
    assert "Expecting value" not in line


def test_partial_bulk_failure_207() -> None:
    """One of two challenges is refused inside a bulk add: 207 + 1243 + per-item answers."""
    with staged(hierarchy()) as stage:
        denied = f"le-acme-{short_hash(TOKENS[1][1], 16)}-act"
        stage.fake.add_user("acme", "Pw-acme-207", policies=[
            ("DENY", rf"^add responder action {denied}\b"), ("ALLOW", r".*")])
        stage.env.update(NS_USER="acme", NS_PASSWORD="Pw-acme-207")
        result = stage.run("hook", "deploy_challenge", *challenge_args())
        statuses = [r.status for r in stage.fake.requests if r.resource == "responderaction"
                    and r.method == "POST"]
        assert 207 in statuses, statuses
        text = result.out + result.err
        assert "Traceback" not in text and "Pw-acme-207" not in text
        assert result.status in DOCUMENTED - {0}, text
        assert result.error_lines and denied in result.error_lines[-1], text
        stage.run("hook", "exit_hook", "")
        assert stage.challenge_objects() == []
