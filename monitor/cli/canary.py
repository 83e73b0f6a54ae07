"""``driftloop canary status|promote|rollback|abort --model NAME``: a canary, for operators.

Talks to a running service's HTTP API (``--url``, default ``http://127.0.0.1:8080``)
with the bearer token read from the variable ``--token-env`` names (default
``DRIFTLOOP_TOKEN``; unset: no token is sent). ``status`` prints the canary as
tables (``--format json``: the API's answer as is); an action prints the decision
sentence. Exit codes: 0 done (or already done), 1 refused by the canary's state
machine (HTTP 409), 2 any other error (unreachable, 401, 404...), as one line.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.table import Table

from monitor.config import read_secret
from monitor.errors import InputError

__all__ = ["ACTIONS", "add_canary_parser", "run_canary"]

ACTIONS = ("status", "promote", "rollback", "abort")
DEFAULT_URL = "http://127.0.0.1:8080"


def add_canary_parser(commands: Any) -> None:
    canary = commands.add_parser("canary", help="a model's canary: status, promote, rollback, "
                                                "abort (through the service's API)")
    canary.add_argument("action", choices=ACTIONS, help="what to do")
    canary.add_argument("--model", required=True, help="model name (as in the config)")
    canary.add_argument("--url", default=DEFAULT_URL,
                        help=f"the service's HTTP API (default {DEFAULT_URL})")
    canary.add_argument("--token-env", default="DRIFTLOOP_TOKEN", metavar="VAR",
                        help="environment variable holding the API token "
                             "(default DRIFTLOOP_TOKEN)")
    canary.add_argument("--note", default="", help="promote/rollback/abort: why (logged)")
    canary.add_argument("--request-id", help="promote/rollback/abort: makes a retry "
                                             "idempotent (default: a new id)")
    canary.add_argument("--format", choices=("table", "json"), default="table",
                        help="status: tables for people (default) or the API's JSON")


def run_canary(args: argparse.Namespace, client: httpx.Client | None = None) -> int:
    token = read_secret(args.token_env)
    headers = {} if token is None else {"Authorization": f"Bearer {token.get_secret_value()}"}
    http = client or httpx.Client(base_url=args.url.rstrip("/"), timeout=30.0)
    path = f"/api/v1/models/{args.model}/canary"
    console = Console(soft_wrap=True, highlight=False)
    try:
        if args.action == "status":
            response = http.get(path, headers=headers)
        else:
            body = {"request_id": args.request_id or uuid.uuid4().hex,
                    "requested_by": "driftloop canary CLI", "note": args.note}
            response = http.post(f"{path}/{args.action}", json=body, headers=headers)
    except httpx.HTTPError as exc:
        raise InputError(f"canary: cannot reach the service at {args.url} ({exc}); "
                         "expected driftloop serve there (--url)") from None
    answer = _json(response)
    if args.action != "status" and response.status_code == 409:
        console.print(f"refused: {answer.get('detail') or answer.get('sentence')}")
        return 1
    if response.status_code >= 300:
        raise InputError(f"canary {args.action} {args.model}: HTTP {response.status_code}: "
                         f"{answer.get('detail') or response.text[:200]}")
    if args.action != "status":
        console.print(answer.get("sentence", ""))
        if not answer.get("changed"):
            console.print("(already handled: nothing changed)")
        return 0
    if args.format == "json":
        print(orjson.dumps(answer, option=orjson.OPT_INDENT_2).decode())
        return 0
    for table in status_tables(answer):
        console.print(table)
    return 0


def status_tables(answer: dict[str, Any]) -> list[Table]:
    """The canary as tables: the summary, the last verdict's checks, pending steps."""
    summary = Table(title=f"canary of {answer.get('model')}", show_header=False)
    summary.add_column("", style="bold")
    summary.add_column("")
    counters = answer.get("counters") or {}
    last = answer.get("last_check") or {}
    rows = [
        ("verdict", answer.get("verdict")), ("phase", answer.get("phase") or "none"),
        ("champion", _v(answer.get("champion"))), ("challenger", _v(answer.get("challenger"))),
        ("passing in a row", _of(counters, "passed", "iterations")),
        ("failed checks", _of(counters, "failed_checks", "threshold")),
        ("inconclusive in a row", _of(counters, "inconclusive_in_a_row", "max_inconclusive")),
        ("last check", f"{last.get('outcome')} (score {_n(last.get('score'))})" if last else ""),
        ("registry", "ok" if (answer.get("registry") or {}).get("ok", True)
         else f"unavailable: {(answer.get('registry') or {}).get('error')}"),
        ("", answer.get("sentence")),
    ]
    for arm in answer.get("interval") or []:
        rows.append((f"this interval v{arm['version']}",
                     f"{arm['events']} events, {arm['labeled']} labeled, {arm['invalid']} invalid"))
    for name, value in rows:
        if value not in (None, ""):
            summary.add_row(name, str(value))
    tables = [summary]
    checks = (answer.get("evidence") or {}).get("checks") or []
    if checks:
        table = Table(title="last verdict's checks")
        for column in ("check", "outcome", "statistic", "threshold", "why"):
            table.add_column(column)
        for check in checks:
            table.add_row(str(check.get("name")), str(check.get("outcome")),
                          _n(check.get("statistic")), _n(check.get("threshold")),
                          str(check.get("sentence", "")))
        tables.append(table)
    pending = answer.get("pending")
    if pending:
        table = Table(title=f"pending: {pending.get('sentence')}")
        table.add_column("step still to apply")
        for item in pending.get("remaining") or []:
            table.add_row(str(item))
        tables.append(table)
    return tables


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        found = response.json()
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def _v(version: Any) -> str:
    return "" if version is None else f"v{version}"


def _of(counters: dict[str, Any], value: str, limit: str) -> str:
    return "" if value not in counters else f"{counters[value]} of {counters.get(limit)}"


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
