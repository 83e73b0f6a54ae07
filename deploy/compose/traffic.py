"""The compose stack's traffic generator: driftloop's example dataset, replayed.

``prepare --out DIR`` writes the seeded "carloan" example (``reference.csv``,
``current.csv``, ``labels.csv``; six windows with drift in windows 3 and 5) and
its baseline (``driftloop baseline build``) into DIR, once: driftloop loads
``DIR/baseline.json`` at start.

``replay --data DIR --bootstrap HOST:PORT [--rate N] [--loop]`` produces the
monitoring rows as native prediction events (design 3.1) at about N per second
and each chunk's labels (3.2) one chunk later, as a label source that lags the
predictions would. ``--loop`` starts over when the data is done, with request
ids prefixed by the pass number so labels join the predictions of their pass.

It runs from driftloop's image, which has the ``monitor`` package installed.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from monitor.cli import examples, replay  # the one import of driftloop's example modules

__all__ = ["Chunk", "chunks", "main", "prepare", "replay_forever"]

log = logging.getLogger("driftloop.traffic")

MODEL = "carloan"
VERSION = "1"
FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def _driftloop() -> str:
    found = shutil.which("driftloop") or str(Path(sys.executable).with_name("driftloop"))
    if not Path(found).exists():
        raise FileNotFoundError(f"driftloop command: not on PATH nor at {found}")
    return found


def prepare(out: Path, seed: int = 7) -> Path:
    """Write the example data and its baseline into ``out``; a no-op when the baseline exists
    (written last, so its presence means the directory is complete)."""
    baseline = out / "baseline.json"
    if baseline.exists():
        log.info("%s exists: the example data is ready", baseline)
        return baseline
    files = examples.write_example(out, seed=seed)
    subprocess.run(
        [_driftloop(), "baseline", "build", "--data", str(files.reference), "--model", MODEL,
         "--target", "repaid", "--prediction", "prediction", "--score", "score",
         "--id", "request_id", "--timestamp", "timestamp", "--sample-rows", "5000",
         "--out", str(out / "baseline.tmp.json")],
        check=True)
    # the reference sample (for HTML reports) is named after its baseline; the baseline
    # moves last, so a baseline.json is only ever seen with its sample next to it
    (out / "baseline.tmp.reference.parquet").replace(out / "baseline.reference.parquet")
    (out / "baseline.tmp.json").replace(baseline)
    log.info("wrote the example data and %s", baseline)
    return baseline


@dataclass(frozen=True)
class Chunk:
    """The events to produce in one step: predictions of this chunk, labels of the last."""

    predictions: list[tuple[bytes, bytes]]
    labels: list[tuple[bytes, bytes]]


def _labelled(frame: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    return labels[labels["request_id"].isin(frame["request_id"])]


def chunks(current: pd.DataFrame, labels: pd.DataFrame, rows: int, run: int) -> Iterator[Chunk]:
    """One pass over the data in chunks of ``rows`` predictions; request ids get the
    prefix ``r<run>-`` so that passes never share an id."""
    current = current.assign(request_id=f"r{run}-" + current["request_id"].astype(str))
    labels = labels.assign(request_id=f"r{run}-" + labels["request_id"].astype(str))
    features = list(examples.FEATURES)
    previous: pd.DataFrame | None = None
    for start in range(0, len(current), rows):
        frame = current.iloc[start:start + rows]
        predictions = list(replay.prediction_events(
            frame, model=MODEL, version=VERSION, features=features, prediction="prediction",
            score="score"))
        late = [] if previous is None else list(replay.label_events(
            _labelled(previous, labels), model=MODEL, label="repaid"))
        yield Chunk(predictions, late)
        previous = frame
    if previous is not None:
        yield Chunk([], list(replay.label_events(_labelled(previous, labels), model=MODEL,
                                                 label="repaid")))


def replay_forever(data: Path, bootstrap: Sequence[str], rate: int, loop: bool,
                   predictions_topic: str = "predictions", labels_topic: str = "labels") -> int:
    """Produce the example stream at about ``rate`` predictions per second; returns the
    number of predictions sent (never returns with ``loop``)."""
    from kafka import KafkaProducer

    current = pd.read_csv(data / "current.csv")
    labels = pd.read_csv(data / "labels.csv")
    producer = KafkaProducer(bootstrap_servers=list(bootstrap), acks=1, linger_ms=20,
                             batch_size=256 * 1024)
    sent, run = 0, 0
    try:
        while True:
            run += 1
            log.info("pass %d: %d predictions at %d/s", run, len(current), rate)
            for chunk in chunks(current, labels, rate, run):
                started = time.monotonic()
                for key, value in chunk.predictions:
                    producer.send(predictions_topic, key=key, value=value)
                for key, value in chunk.labels:
                    producer.send(labels_topic, key=key, value=value)
                producer.flush(30)
                sent += len(chunk.predictions)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - started)))
            if not loop:
                return sent
    finally:
        producer.close(10)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser("prepare", help="write the example data and its baseline")
    prep.add_argument("--out", type=Path, required=True)
    prep.add_argument("--seed", type=int, default=7)
    play = commands.add_parser("replay", help="produce the example stream to Kafka")
    play.add_argument("--data", type=Path, required=True, help="the directory prepare wrote")
    play.add_argument("--bootstrap", required=True, help="host:port[,host:port...]")
    play.add_argument("--rate", type=int, default=200, help="prediction events per second")
    play.add_argument("--loop", action="store_true", help="start over when the data is done")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        prepare(args.out, args.seed)
        return 0
    if args.rate <= 0:
        parser.error(f"--rate: got {args.rate}, expected a positive number of events per second")
    replay_forever(args.data, args.bootstrap.split(","), args.rate, args.loop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
