"""driftloop's service: Kafka in, windows against the training baseline, metrics and actions out.

Rooms (sub-packages), from the ground up; a room imports only rooms below it
(``tests/test_layering.py`` holds the code to this table):

=============  ===========================================================  =====================
room           holds                                                        may import
=============  ===========================================================  =====================
``errors``     user-facing exceptions (one module)                          nothing of monitor
``metrics``    the Prometheus metrics: specs, and objects on a registry     nothing of monitor
``tables``     reading CSV/Parquet and the canonical values of a column     ``errors``
``config``     the typed ``driftloop.yaml``, value types, error messages    ``errors``
``store``      the state store: schema, migrations, results, join, actions  nothing of monitor
``baseline``   the training baseline: model, build, performance, loading,   ``config`` and below
               baselines that follow an MLflow alias
``evaluate``   one window against a baseline; files in windows; reports     ``baseline`` and below
``ingest``     Kafka clients, dead letters, decoded events, codecs          ``config`` and below
``stream``     the consumer loop, recovery, per-model pipelines, windows    all of the above
``react``      the retrain reactor: evidence -> policy -> launch            ``stream`` and below
``api``        the HTTP API (FastAPI): health, reads, alerts, retrain       ``react`` and below
``runtime``    wiring: build the service, scheduled jobs, ``serve``         everything below
``cli``        the ``driftloop`` command, the demo, examples, replay        everything
=============  ===========================================================  =====================

``detectors`` (pure statistics) and ``triggers`` (policies and launchers) are
separate packages below all of these; neither imports ``monitor``.
"""
