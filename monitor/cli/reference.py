"""``docs/reference/``: the contract as built, generated from the code.

``python -m monitor.cli.reference [--out DIR] [--check]`` (``make reference``) writes:

- ``configuration.md``: every key of ``driftloop.yaml`` from the pydantic models (type,
  default, meaning: the attribute docstrings of :mod:`monitor.config`);
- ``events.md``: the event formats, the dead-letter headers and reason slugs;
- ``window-result.md``: the window result, from :class:`monitor.api.views.WindowResult`;
- ``http-api.md`` and ``openapi.json``: the HTTP API, from the app's OpenAPI document;
- ``metrics.md``: every metric from :data:`monitor.metrics.METRICS`;
- ``cli.md``: every command and option, from the argument parser;
- ``README.md``: the index.

``differences.md`` (where the product deliberately differs from the founders'
``design.md``) is written by hand. ``tests/test_reference.py`` regenerates everything
into a temporary folder and fails when a committed file differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from monitor.cli.reference_config import (
    GENERATED,
    annotation_of,
    cell,
    configuration_page,
    markdown,
    type_text,
)

__all__ = ["PAGES", "build_reference", "main"]


def events_page() -> str:
    from monitor.ingest import HEADERS, KNOWN_FORMATS, REASONS
    from monitor.ingest.events import LABEL_FIELDS, PREDICTION_FIELDS

    def table(fields: tuple[tuple[str, bool, str, str], ...]) -> list[str]:
        rows = ["| field | required | type | meaning |", "|---|---|---|---|"]
        rows += [f"| `{name}` | {'yes' if required else 'no'} | {kind} | {cell(meaning)} |"
                 for name, required, kind, meaning in fields]
        return [*rows, ""]

    lines = [
        "# Events reference", "", GENERATED, "",
        f"Formats (`kafka.formats`): {', '.join(f'`{f}`' for f in KNOWN_FORMATS)}. Unknown "
        "top-level keys are ignored; a feature absent from the baseline is reported as a "
        "data-quality finding (`extra_columns`), never a crash.", "",
        "## Prediction event (native, topic `kafka.predictions_topic`)", "",
        "One UTF-8 JSON object per record; the key is optional (the request id is a good key).",
        "", *table(PREDICTION_FIELDS),
        "## Label event (topic `kafka.labels_topic`)", "",
        "Labels join predictions on (`model`, `request_id`) within `performance.label_ttl`, "
        "before or after their prediction; joins survive restarts.", "",
        *table(LABEL_FIELDS),
        "## KServe inference-logger CloudEvents (`kserve`, `oip`)", "",
        "Binary mode (`ce_*` Kafka headers, the HTTP body as value) or structured mode "
        "(`content-type: application/cloudevents+json`). Request and response events share the "
        "CloudEvents `id` and are joined; V1 (`instances` / `predictions`) and Open Inference "
        "Protocol (`inputs` / `outputs`) bodies. A batch of k rows gives k predictions with "
        "request ids `<ce_id>:<index>`. Positional instances take their names from the "
        "baseline's feature order. The version is `kafka.endpoint_versions[ce_endpoint]`, else "
        "the OIP `model_version`.", "",
        "## Dead letters (topic `kafka.dead_letter_topic`)", "",
        "A record that cannot be decoded or validated is produced unchanged (key, value and its "
        "own headers) with these headers added:", "",
    ]
    meanings = {
        "driftloop_error": "`<reason>: <one line naming the field, what was seen and expected>`",
        "driftloop_source_topic": "the topic the record was read from",
        "driftloop_source_partition": "its partition",
        "driftloop_source_offset": "its offset",
    }
    lines += [f"- `{header}`: {meanings.get(header, '')}" for header in HEADERS]
    lines += ["", "Each is counted in `driftloop_events_invalid_total{reason}` and "
              "`driftloop_dead_letters_total`. Reasons:", "",
              "| reason | meaning |", "|---|---|"]
    lines += [f"| `{slug}` | {cell(meaning)} |" for slug, meaning in sorted(REASONS.items())]
    return "\n".join(lines).rstrip() + "\n"


def _model_table(model: type[BaseModel], title: str) -> list[str]:
    lines = [f"## {title}", ""]
    if model.__doc__:
        lines += [markdown(" ".join(model.__doc__.split())), ""]
    lines += ["| key | type | meaning |", "|---|---|---|"]
    for name, field in model.model_fields.items():
        kind = type_text(annotation_of(model, name))
        lines.append(f"| `{name}` | {cell(kind)} | {cell(field.description or '')} |")
    return [*lines, ""]


def window_result_page() -> str:
    from monitor.api.views import (
        EstimatedPerformanceView,
        FeatureDrift,
        PerformanceView,
        QualityView,
        WindowResult,
    )

    example = {
        "model": "carloan", "version": "3", "window": 7, "first_offset": None,
        "start": "2019-05-01T00:00:00Z", "end": "2019-05-31T08:00:00Z", "rows": 5000,
        "dataset_drift": True, "drift_share": 0.57, "drift_share_threshold": 0.5,
        "features": {"car_value": {"method": "wasserstein", "score": 0.41, "threshold": 0.1,
                                   "drift": True, "status": "drift", "direction": "above",
                                   "n": 5000}},
        "prediction_drift": {"method": "jensenshannon", "score": 0.22, "threshold": 0.1,
                             "drift": True, "status": "drift", "direction": "above", "n": 5000},
        "quality": {"missing": {"salary_range": 0.22},
                    "unseen_categories": {"size_of_downpayment": ["50%"]},
                    "violations": ["salary_range missing in 22% of rows (reference 0%)"],
                    "status": "violation"},
        "performance": {"metric": "accuracy", "value": 0.915, "baseline": 0.944,
                        "max_drop": 0.02, "degraded": True, "labeled_rows": 5000,
                        "status": "degraded"},
        "estimated_performance": {"metric": "accuracy", "value": 0.912, "lower": 0.899,
                                  "upper": 0.925, "baseline": 0.943, "threshold": 0.933,
                                  "degraded": True, "status": "degraded", "n": 5000},
    }
    WindowResult.model_validate(example)
    lines = ["# Window result reference", "", GENERATED, "",
             "One JSON object per window: a line of `driftloop evaluate`, an item of "
             "`GET /api/v1/models/{model}/windows`. Every score carries its method and the "
             "threshold actually used.", "", "```json",
             json.dumps(example, indent=1), "```", ""]
    lines += _model_table(WindowResult, "The window")
    lines += _model_table(FeatureDrift, "`features.<name>`, `prediction_drift`, `score_drift`")
    lines += _model_table(QualityView, "`quality`")
    lines += _model_table(PerformanceView, "`performance`")
    lines += _model_table(EstimatedPerformanceView, "`estimated_performance`")
    return "\n".join(lines).rstrip() + "\n"


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of the app ``driftloop serve`` runs, on a throwaway store."""
    from prometheus_client import CollectorRegistry

    from monitor.api import (
        ServiceStatus,
        create_app,
        create_canary_router,
        create_mlflow_webhook_router,
        create_trigger_router,
    )
    from monitor.config import Config
    from monitor.metrics import Metrics
    from monitor.react import RetrainReactor
    from monitor.store import Store

    store = Store("sqlite://")
    try:
        registry = CollectorRegistry()
        app = create_app(store, registry, status=lambda: ServiceStatus(()), auth_token=None,
                         models=["<model>"])
        reactor = RetrainReactor(Config(), store, Metrics(registry), {})
        app.include_router(create_trigger_router(store, reactor, models=["<model>"]))
        app.include_router(create_canary_router(None))
        app.include_router(create_mlflow_webhook_router(None, None))
        return app.openapi()
    finally:
        store.close()


def http_api_page(document: dict[str, Any]) -> str:
    lines = ["# HTTP API reference", "", GENERATED, "",
             "The machine-readable document is [`openapi.json`](openapi.json) (also served at "
             "`/openapi.json`). Mutating routes need `Authorization: Bearer <token>` when "
             "`server.auth_token_env` names a set variable, and `Content-Type: "
             "application/json`; reads and the API docs need the token too under "
             "`server.protect_reads` ([security.md](../security.md)); errors answer "
             "`{\"detail\": \"<one sentence>\"}` with a 4xx, never a stack trace.", "",
             "| method | route | summary | answers |", "|---|---|---|---|"]
    for route, operations in document["paths"].items():
        for method, operation in operations.items():
            codes = ", ".join(sorted(operation.get("responses", {})))
            summary = operation.get("summary") or operation.get("operationId", "")
            lines.append(f"| {method.upper()} | `{route}` | {cell(summary)} | {codes} |")
    lines.append("")
    for route, operations in document["paths"].items():
        for method, operation in operations.items():
            description = operation.get("description")
            if not description:
                continue
            lines += [f"## {method.upper()} `{route}`", "", description.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def metrics_page() -> str:
    from monitor.metrics import DESIGN_METRICS, METRICS

    lines = ["# Metrics reference", "", GENERATED, "",
             "Exposed at `GET /metrics` (Prometheus text format). Names are fixed: the alert "
             "rules and dashboards depend on them. Labels are bounded (no ids); a model's "
             "versions are bounded by `models.<name>.max_versions` where that key exists.", "",
             "| metric | type | labels | help | in design.md |", "|---|---|---|---|---|"]
    for spec in METRICS:
        labels = ", ".join(f"`{label}`" for label in spec.labels) or "(none)"
        origin = "section 8" if spec.name in DESIGN_METRICS else "added"
        lines.append(f"| `{spec.name}` | {spec.type} | {labels} | {cell(spec.help)} | "
                     f"{origin} |")
    return "\n".join(lines).rstrip() + "\n"


def cli_page() -> str:
    from monitor.cli.main import build_parser

    # argparse wraps help to the terminal's width: fix it, or the page depends on who ran it
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        return _cli_text(parser)
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def _cli_text(parser: argparse.ArgumentParser) -> str:
    lines = ["# Command line reference", "", GENERATED, "",
             "A user error (a missing file or column, an unreadable value, a malformed baseline "
             "or config) prints one line, `driftloop: error: <what>`, and exits with code 2.", ""]

    def walk(node: argparse.ArgumentParser, name: str) -> None:
        actions = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        if not actions:
            help_text = node.format_help().replace(parser.prog + " ", "driftloop ", 1)
            lines.extend([f"## `{name}`", "", "```", help_text.rstrip(), "```", ""])
            return
        for action in actions:
            for sub_name, sub in action.choices.items():
                walk(sub, f"{name} {sub_name}")

    walk(parser, "driftloop")
    text = "\n".join(lines).rstrip() + "\n"
    return re.sub(r"usage: [^\n]*? driftloop", "usage: driftloop", text)


PAGES: dict[str, tuple[str, Callable[[], str]]] = {
    "configuration.md": ("every key of driftloop.yaml: type, default, meaning",
                         configuration_page),
    "events.md": ("prediction, label and KServe events; dead letters and their reasons",
                  events_page),
    "window-result.md": ("the window result of evaluate and the windows API", window_result_page),
    "http-api.md": ("routes, answers and authentication (with openapi.json)",
                    lambda: http_api_page(openapi_document())),
    "metrics.md": ("every Prometheus metric: type, labels, help", metrics_page),
    "cli.md": ("every command and option", cli_page),
}


def index_page() -> str:
    lines = ["# driftloop reference", "", GENERATED, "",
             "The contract as built, generated from the code. The founders' statement of "
             "intent is `../shared/docs/design.md`; where the product deliberately differs "
             "from it, [differences.md](differences.md) says so and why.", ""]
    lines += [f"- [{name}]({name}): {summary}" for name, (summary, _) in PAGES.items()]
    lines += ["- [openapi.json](openapi.json): the OpenAPI document of the HTTP API",
              "- [differences.md](differences.md): deliberate differences from design.md "
              "(written by hand)"]
    return "\n".join(lines) + "\n"


def build_reference(out: Path) -> list[Path]:
    """Write every generated page into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (_, render) in PAGES.items():
        path = out / name
        path.write_text(render(), encoding="utf-8")
        written.append(path)
    openapi = out / "openapi.json"
    openapi.write_text(json.dumps(openapi_document(), indent=1, sort_keys=True) + "\n",
                       encoding="utf-8")
    index = out / "README.md"
    index.write_text(index_page(), encoding="utf-8")
    return [*written, openapi, index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitor.cli.reference",
                                     description="regenerate docs/reference/ from the code")
    parser.add_argument("--out", type=Path, default=Path("docs/reference"))
    args = parser.parse_args(argv)
    for path in build_reference(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
