"""Bad configuration fails at start with one line naming the key, the value and what was
expected; good values (durations, environment overrides) are read as documented."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.config import CommandLauncher, ConfigError, load_config, parse_duration

KNOWN_LAUNCHERS = "command, webhook, kfp, argo, github, airflow"


def model(**sections: Any) -> dict[str, Any]:
    return {"models": {"carloan": {"baseline": "baseline.json", **sections}}}


def launcher(**fields: Any) -> dict[str, Any]:
    return model(retrain={"launcher": fields})


BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("negative rows", model(window={"rows": -5}),
     "config models.carloan.window.rows: got -5, expected a positive integer"),
    ("zero rows", model(window={"rows": 0}),
     "config models.carloan.window.rows: got 0, expected a positive integer"),
    ("fractional rows", model(window={"rows": 1.5}),
     "config models.carloan.window.rows: got 1.5, expected a positive integer"),
    ("boolean rows", model(window={"rows": True}),
     "config models.carloan.window.rows: got True, expected a positive integer"),
    ("rows and duration", model(window={"rows": 10, "duration": "1h"}),
     "config models.carloan.window: got {'rows': 10, 'duration': '1h'}, expected either rows "
     "(a count window) or duration (an event-time window), not both"),
    ("unknown duration unit", model(window={"duration": "1x"}),
     "config models.carloan.window.duration: got '1x', expected a duration like 90s, 30m, 1h, "
     "30d or a number of seconds"),
    ("negative snapshot interval", {"kafka": {"snapshot_interval_seconds": -1}},
     "config kafka.snapshot_interval_seconds: got -1, expected a non-negative duration"),
    ("negative duration", model(window={"duration": "-5m"}),
     "config models.carloan.window.duration: got '-5m', expected a duration like 90s, 30m, "
     "1h, 30d or a number of seconds"),
    ("kserve split without kserve", {"kafka": {"kserve_split": True}},
     "config kafka: got {'kserve_split': True}, expected kserve or oip among the formats "
     "with kserve_split (it forwards KServe halves)"),
    ("kserve split without ordered retries",
     {"kafka": {"kserve_split": True, "formats": ["kserve"],
                "producer": {"enable_idempotence": False}}},
     "config kafka: got {'kserve_split': True, 'formats': ['kserve'], 'producer': "
     "{'enable_idempotenc..., expected producer.enable_idempotence true or "
     "producer.max_in_flight_requests_per_connection 1 with kserve_split (the forwards of "
     "one partition must keep their order through retries)"),
    ("negative label alignment", {"kafka": {"label_alignment_seconds": -1}},
     "config kafka.label_alignment_seconds: got -1, expected a non-negative duration"),
    ("boolean duration", model(window={"duration": True}),
     "config models.carloan.window.duration: got True, expected a duration like 90s, 30m, "
     "1h, 30d or a number of seconds"),
    ("zero duration", model(window={"duration": 0}),
     "config models.carloan.window.duration: got 0, expected a positive duration like 90s, "
     "30m, 1h or 30d"),
    ("bad cooldown", model(retrain={"cooldown": "soon"}),
     "config models.carloan.retrain.cooldown: got 'soon', expected a duration like 90s, 30m, "
     "1h, 30d or a number of seconds"),
    ("zero share", model(drift={"share": 0}),
     "config models.carloan.drift.share: got 0, expected a number in (0, 1]"),
    ("share above one", model(drift={"share": 1.5}),
     "config models.carloan.drift.share: got 1.5, expected a number in (0, 1]"),
    ("alpha of one", model(drift={"alpha": 1}),
     "config models.carloan.drift.alpha: got 1, expected a number in (0, 1)"),
    ("unknown top-level key", {"kafak": {}},
     "config kafak: got an unknown key (a typo?), expected one of kafka, state, mlflow, "
     "server, jobs, reports, models"),
    ("unknown section key", {"kafka": {"group": "x"}},
     "config kafka.group: got an unknown key (a typo?), expected one of bootstrap_servers, "
     "group_id, predictions_topic, labels_topic, dead_letter_topic, formats, consumer, "
     "producer, max_record_bytes, poll_max_records, commit_interval_seconds, "
     "snapshot_interval_seconds, endpoint_versions, max_future_skew, min_event_time, "
     "max_rows_per_record, label_alignment_seconds, max_persist_attempts, partials, "
     "partials_topic, partials_partitions, partials_heartbeat_seconds, kserve_split, "
     "kserve_topic, kserve_partitions"),
    ("unknown model key", model(windw={}),
     "config models.carloan.windw: got an unknown key (a typo?), expected one of baseline, "
     "window, drift, quality, performance, retrain, canary, max_versions"),
    ("unknown model subsection key", model(window={"row": 5}),
     "config models.carloan.window.row: got an unknown key (a typo?), expected one of rows, "
     "duration, allowed_lateness, buffer_rows, idle_timeout, retire_after"),
    ("unknown feature key", model(drift={"features": {"age": {"metod": "ks"}}}),
     "config models.carloan.drift.features.age.metod: got an unknown key (a typo?), "
     "expected one of method, threshold, min_effect"),
    ("unknown launcher key", launcher(type="command", argv=["train"], bogus=1),
     "config models.carloan.retrain.launcher.bogus: got an unknown key (a typo?), expected "
     "one of type, argv, timeout, cwd, env"),
    ("unknown launcher type", launcher(type="slurm"),
     "config models.carloan.retrain.launcher.type: got 'slurm', expected a launcher type, "
     f"one of {KNOWN_LAUNCHERS}"),
    ("launcher without type", launcher(argv=["train"]),
     "config models.carloan.retrain.launcher: got {'argv': ['train']}, expected a mapping "
     f"with a type key, one of {KNOWN_LAUNCHERS}"),
    ("command without argv", launcher(type="command"),
     "config models.carloan.retrain.launcher.argv: got nothing, expected a value (required "
     "by a command launcher)"),
    ("command with empty argv", launcher(type="command", argv=[]),
     "config models.carloan.retrain.launcher.argv: got [], expected a non-empty list"),
    ("kfp without host", launcher(type="kfp", pipeline_id="p", pipeline_version_id="v"),
     "config models.carloan.retrain.launcher.host: got nothing, expected a value (required "
     "by a kfp launcher)"),
    ("launcher as a string", model(retrain={"launcher": "command"}),
     "config models.carloan.retrain.launcher: got 'command', expected a mapping"),
    ("model without baseline", {"models": {"carloan": {}}},
     "config models.carloan.baseline: got nothing, expected a value (this key is required)"),
    ("string for a list", {"kafka": {"bootstrap_servers": "a:9092"}},
     "config kafka.bootstrap_servers: got 'a:9092', expected a list"),
    ("list for a mapping", {"models": ["carloan"]},
     "config models: got ['carloan'], expected a mapping"),
    ("list for a section", {"kafka": []}, "config kafka: got [], expected a mapping"),
    ("unknown format", {"kafka": {"formats": ["avro"]}},
     "config kafka.formats.0: got 'avro', expected one of 'native', 'kserve' or 'oip'"),
    ("threshold typo", model(drift={"threshold": "autox"}),
     "config models.carloan.drift.threshold: got 'autox', expected auto or a positive number"),
    ("negative threshold", model(drift={"threshold": -1}),
     "config models.carloan.drift.threshold: got -1, expected auto or a positive number"),
    ("feature threshold", model(drift={"features": {"age": {"threshold": "x"}}}),
     "config models.carloan.drift.features.age.threshold: got 'x', expected auto or a "
     "positive number"),
    ("min_effect of a p-value method", model(drift={"min_effect": {"ks": 0.1}}),
     "config models.carloan.drift.min_effect.ks: got 'ks', expected one of 'wasserstein', "
     "'jensenshannon', 'psi' or 'linf'"),
    ("negative min_effect", model(drift={"min_effect": {"psi": -1}}),
     "config models.carloan.drift.min_effect.psi: got -1, expected a non-negative number"),
    ("feature min_effect", model(drift={"features": {"age": {"min_effect": "big"}}}),
     "config models.carloan.drift.features.age.min_effect: got 'big', expected a "
     "non-negative number"),
    ("bad max_drop", model(performance={"max_drop": -0.1}),
     "config models.carloan.performance.max_drop: got -0.1, expected auto or a non-negative "
     "number"),
    ("bad metric", model(performance={"metric": "auc"}),
     "config models.carloan.performance.metric: got 'auc', expected one of 'accuracy', "
     "'precision', 'recall', 'f1', 'roc_auc', 'log_loss', 'mae', 'rmse' or 'mape'"),
    ("bad retrain reason", model(retrain={"on": ["drift"]}),
     "config models.carloan.retrain.on.0: got 'drift', expected one of 'dataset_drift', "
     "'performance_drop', 'estimated_performance_drop', 'quality', 'alert' or 'manual'"),
    ("port too large", {"server": {"port": 70000}},
     "config server.port: got 70000, expected a port number from 0 to 65535"),
    ("port not a number", {"server": {"port": "http"}},
     "config server.port: got 'http', expected a port number from 0 to 65535"),
    ("host not a string", {"server": {"host": ["0.0.0.0"]}},
     "config server.host: got ['0.0.0.0'], expected a string"),
    ("origin with a path", {"server": {"allowed_origins": ["https://ops.example/app"]}},
     "config server.allowed_origins.0: got 'https://ops.example/app', expected an origin: "
     "http(s)://host[:port], no path"),
    ("origin wildcard", {"server": {"allowed_origins": ["*"]}},
     "config server.allowed_origins.0: got '*', expected an origin: http(s)://host[:port], "
     "no path"),
    ("keep_runs zero", model(retrain={"keep_runs": 0}),
     "config models.carloan.retrain.keep_runs: got 0, expected a positive integer"),
    ("github repository", launcher(type="github", repository="not a repo"),
     "config models.carloan.retrain.launcher.repository: got 'not a repo', expected text "
     "matching ^[\\w.-]+/[\\w.-]+$"),
]


@pytest.mark.parametrize("data, message", [(d, m) for _, d, m in BAD_CONFIGS],
                         ids=[name for name, _, _ in BAD_CONFIGS])
def test_bad_config_is_one_line_naming_key_value_and_expectation(
        data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data=data, environ={})
    assert str(caught.value) == message


def test_each_problem_gets_its_own_line() -> None:
    data = {"server": {"port": -1}, "kafka": {"group": "x"}}
    with pytest.raises(ConfigError) as caught:
        load_config(data=data, environ={})
    assert str(caught.value).splitlines() == [
        "config kafka.group: got an unknown key (a typo?), expected one of bootstrap_servers, "
        "group_id, predictions_topic, labels_topic, dead_letter_topic, formats, consumer, "
        "producer, max_record_bytes, poll_max_records, commit_interval_seconds, "
        "snapshot_interval_seconds, endpoint_versions, max_future_skew, min_event_time, "
        "max_rows_per_record, label_alignment_seconds, max_persist_attempts, partials, "
        "partials_topic, partials_partitions, partials_heartbeat_seconds, kserve_split, "
        "kserve_topic, kserve_partitions",
        "config server.port: got -1, expected a port number from 0 to 65535",
    ]


@pytest.mark.parametrize("text, kind", [("- kafka\n- models\n", "list"),
                                        ("just words\n", "str"), ("42\n", "int")])
def test_yaml_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str, kind: str) -> None:
    path = tmp_path / "driftloop.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == (
        f"config {path}: got a {kind}, expected a mapping of sections "
        "(kafka, state, mlflow, server, jobs, reports, models)")


def test_unparsable_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "driftloop.yaml"
    path.write_text("kafka:\n  group_id: a\n  topics: [unclosed\nmodels: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    message = str(caught.value)
    assert message.startswith(f"config {path} line 4, column ")
    assert "not valid YAML" in message and "\n" not in message


def test_missing_file_and_unreadable_path_are_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^config .*nope\.yaml: file not found$"):
        load_config(tmp_path / "nope.yaml", environ={})
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path, environ={})  # a directory
    assert str(caught.value).startswith(f"config {tmp_path}: cannot be read (")


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "driftloop.yaml"
    path.write_text("# nothing yet\n")
    config = load_config(path, environ={})
    assert config.server.port == 8080 and config.models == {}


@pytest.mark.parametrize("text, seconds", [
    ("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0), ("30d", 2_592_000.0), ("1.5h", 5400.0),
    ("250ms", 0.25), ("2w", 1_209_600.0), (" 45 ", 45.0), (60, 60.0), (0.5, 0.5),
])
def test_durations_parse_to_seconds(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


def test_window_duration_is_held_in_seconds() -> None:
    config = load_config(data=model(window={"duration": "1.5h"}), environ={})
    assert config.models["carloan"].window.duration == 5400.0
    assert config.models["carloan"].window.rows is None


def test_env_overrides_a_scalar() -> None:
    config = load_config(data={}, environ={"DRIFTLOOP__KAFKA__GROUP_ID": "driftloop-b",
                                           "OTHER__KAFKA__GROUP_ID": "ignored"})
    assert config.kafka.group_id == "driftloop-b"


def test_env_overrides_nested_model_keys_as_yaml_scalars() -> None:
    environ = {"DRIFTLOOP__MODELS__CARLOAN__WINDOW__ROWS": "1000",
               "DRIFTLOOP__MODELS__CARLOAN__DRIFT__SHARE": "0.25",
               "DRIFTLOOP__MODELS__CARLOAN__RETRAIN__LAUNCHER__TYPE": "command",
               "DRIFTLOOP__MODELS__CARLOAN__RETRAIN__LAUNCHER__ARGV": "[python, train.py]"}
    config = load_config(data=model(window={"rows": 5}), environ=environ)
    carloan = config.models["carloan"]
    assert carloan.window.rows == 1000 and carloan.drift.share == 0.25
    assert isinstance(carloan.retrain.launcher, CommandLauncher)
    assert carloan.retrain.launcher.argv == ["python", "train.py"]


def test_env_list_from_yaml_flow_syntax() -> None:
    config = load_config(data={}, environ={
        "DRIFTLOOP__KAFKA__BOOTSTRAP_SERVERS": "[b1:9092, b2:9092]",
        "DRIFTLOOP__KAFKA__FORMATS": "[native, kserve]"})
    assert config.kafka.bootstrap_servers == ["b1:9092", "b2:9092"]
    assert config.kafka.formats == ["native", "kserve"]


def test_bad_env_override_names_the_key_and_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data=model(), environ={"DRIFTLOOP__MODELS__CARLOAN__WINDOW__ROWS": "-3"})
    assert str(caught.value) == (
        "config models.carloan.window.rows: got -3, expected a positive integer "
        "(set by DRIFTLOOP__MODELS__CARLOAN__WINDOW__ROWS)")
    with pytest.raises(ConfigError) as unknown:
        load_config(data={}, environ={"DRIFTLOOP__KAFKA__GROUPID": "x"})
    assert str(unknown.value).startswith(
        "config kafka.groupid: got an unknown key (a typo?), expected one of bootstrap_servers,")
    assert str(unknown.value).endswith("(set by DRIFTLOOP__KAFKA__GROUPID)")


def test_env_override_that_is_not_yaml_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(data={}, environ={"DRIFTLOOP__KAFKA__GROUP_ID": "[unclosed"})
    assert str(caught.value) == ("config kafka.group_id: got '[unclosed' from "
                                 "DRIFTLOOP__KAFKA__GROUP_ID, expected a YAML value (quote it "
                                 "if it is text)")


def test_retrain_on_is_a_key_not_a_yaml_1_1_boolean(tmp_path: Path) -> None:
    # PyYAML reads YAML 1.1, where a bare `on` is True: the documented key must survive
    path = tmp_path / "driftloop.yaml"
    path.write_text(
        "models:\n"
        "  carloan:\n"
        "    baseline: b.json\n"
        "    retrain:\n"
        "      on: [dataset_drift, alert]\n"
        "      launcher: {type: command, argv: [train, 'yes', no, off]}\n"
        "kafka:\n"
        "  consumer: {check_crcs: true}\n"
    )
    config = load_config(path, environ={})
    retrain = config.models["carloan"].retrain
    assert retrain.on == ["dataset_drift", "alert"]
    assert retrain.launcher is not None and retrain.launcher.argv == ["train", "yes", "no", "off"]
    assert config.kafka.consumer == {"check_crcs": True}


def test_env_override_keeps_yes_as_text() -> None:
    config = load_config(data={}, environ={"DRIFTLOOP__KAFKA__GROUP_ID": "yes"})
    assert config.kafka.group_id == "yes"


# design.md section 5, verbatim (long comment lines and all): the contract's own example
# must load as written
DESIGN_EXAMPLE = """
kafka:
  bootstrap_servers: ["127.0.0.1:9092"]
  group_id: driftloop
  predictions_topic: predictions
  labels_topic: labels
  dead_letter_topic: driftloop-dlq
  formats: [native]                 # native, kserve, oip
  consumer: {}                      # passed to kafka-python's KafkaConsumer (e.g. max_poll_interval_ms)
  producer: {}                      # passed to KafkaProducer (dead letters)
state:
  url: sqlite:///driftloop.db       # or postgresql+psycopg://user@host/db
mlflow:
  tracking_uri: null                # null: registry features off
server:
  host: 127.0.0.1
  port: 8080
  auth_token_env: DRIFTLOOP_TOKEN   # bearer token for mutating endpoints
models:
  carloan:
    baseline: ./baseline.json       # or "mlflow:champion": the artifact of the version behind that alias
    window:
      rows: 5000                    # tumbling count window; or `duration: 1h` (event time)
    drift:
      share: 0.5                    # dataset drift when at least this share of features drift
    performance:
      metric: accuracy              # accuracy, f1, roc_auc, log_loss, mae, rmse
      max_drop: 0.02
      window_rows: 5000             # joined (prediction, label) pairs per performance window
    retrain:
      on: [dataset_drift, performance_drop, alert]
      consecutive_windows: 2
      cooldown: 1h
      launcher:
        type: command               # command, webhook, kfp, argo, github, airflow
        argv: ["python", "train.py", "--model", "{model}", "--reason", "{reason}"]
    canary:
      champion_alias: champion
      challenger_alias: challenger
      min_events: 2000              # per arm and interval before a check counts
      iterations: 3                 # passing checks in a row to promote
      threshold: 2                  # failed checks to roll back
      max_performance_drop: 0.0
"""


def test_the_design_example_config_loads(tmp_path: Path) -> None:
    path = tmp_path / "driftloop.yaml"
    path.write_text(DESIGN_EXAMPLE)
    config = load_config(path, environ={})
    model = config.models["carloan"]
    assert model.retrain.on == ["dataset_drift", "performance_drop", "alert"]
    assert model.retrain.cooldown == 3600.0
    assert model.performance.max_drop == 0.02
    assert model.canary is not None and model.canary.iterations == 3
    assert config.kafka.formats == ["native"]


def test_min_effect_defaults_are_the_detectors_and_a_partial_mapping_keeps_the_rest() -> None:
    from detectors import MIN_EFFECT
    from monitor.evaluate import drift_settings

    default = load_config(data={"models": {"m": {"baseline": "b"}}}).models["m"]
    assert default.drift.min_effect == dict(MIN_EFFECT)
    assert default.performance.use_estimate is True
    partial = load_config(data={"models": {"m": {"baseline": "b", "drift": {
        "min_effect": {"psi": 0.01}, "features": {"age": {"min_effect": 0.2}}}}}}).models["m"]
    settings = drift_settings(partial.drift)
    assert settings.effect_floor("car_value", "psi") == 0.01
    assert settings.effect_floor("car_value", "wasserstein") == MIN_EFFECT["wasserstein"]
    assert settings.effect_floor("age", "wasserstein") == 0.2
