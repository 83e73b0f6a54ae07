"""What keeping realized performance at the model's owner costs (issue 15, ``kafka.partials``).

With ``kafka.partials``, the pairs a replica joins for an event-time model are shipped to
the model's owner through the store (:mod:`monitor.stream.shipping`): packed into one
``shipped_pairs`` row per model and persist, taken back (``DELETE ... RETURNING``) and
unpacked by the owner. This measures that round trip per pair against the step it
rides on, the label join of the same pairs in the same persist
(:meth:`monitor.stream.label_join.JoinBuffer.join`, here with every prediction and its
label arriving between two persists, its cheapest case), on SQLite and PostgreSQL, for
persists of several sizes; and the payload bytes per pair against one JSON object per
pair.

Run: ``python benchmarks/bench_shipping.py [--pairs 50000] [--repeat 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from monitor.ingest import Prediction  # noqa: E402
from monitor.ingest.batch import LabelBatch  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.stream.label_join import JoinBuffer, JoinedPairs  # noqa: E402
from monitor.stream.shipping import joined, pack_pairs, unpack_pairs  # noqa: E402

ADMIN_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
MODEL = "carloan"


def buffer_of(start: int, n: int) -> JoinBuffer:
    """Predictions ``start..start+n`` and their labels, as one persist holds them."""
    buffer = JoinBuffer()
    ids = [f"req-{i:09d}" for i in range(start, start + n)]
    buffer.add_predictions(MODEL, "3", [
        Prediction(MODEL, "3", rid, 1_700_000_000_000 + i, {}, i % 2, score=(i % 97) / 97)
        for i, rid in enumerate(ids)], ttl_seconds=86_400)
    buffer.add_labels(LabelBatch(MODEL, ids, [(i // 3) % 2 for i in range(n)],
                                 [1_700_000_060_000 + i for i in range(n)]), ttl_seconds=86_400)
    return buffer


@contextmanager
def sqlite_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp, Store(f"sqlite:///{Path(tmp) / 's.db'}") as store:
        yield store


@contextmanager
def postgres_store() -> Iterator[Store]:
    import psycopg
    from psycopg import sql

    name = f"driftloop_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        with Store(f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}") as store:
            yield store
    finally:
        with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                          .format(sql.Identifier(name)))


def run(store: Store, total: int, per_persist: int) -> tuple[float, float, float]:
    """(join µs/pair, ship+take µs/pair, payload bytes/pair) over ``total`` pairs."""
    join_s = ship_s = 0.0
    payload = 0
    for start in range(0, total, per_persist):
        buffer = buffer_of(start, per_persist)
        t0 = time.perf_counter()
        with store.transaction() as tx:
            pairs = buffer.join(tx, {})[MODEL]
        t1 = time.perf_counter()
        with store.transaction() as tx:  # the joining replica's side, in its persist
            packed = pack_pairs(pairs)
            tx.ship_pairs(MODEL, packed, len(pairs))
        with store.transaction() as tx:  # the owner's side, in its persist
            taken = joined(MODEL, (unpack_pairs(m, p) for m, p in tx.take_shipped([MODEL])))
        t2 = time.perf_counter()
        assert len(taken) == len(pairs) == per_persist
        join_s += t1 - t0
        ship_s += t2 - t1
        payload += len(packed)
    return 1e6 * join_s / total, 1e6 * ship_s / total, payload / total


def json_bytes(pairs: JoinedPairs) -> float:
    """One JSON object per pair (what shipping row by row would carry)."""
    return sum(len(orjson.dumps(p._asdict())) for p in pairs) / len(pairs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=50_000, help="pairs per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per setting (median)")
    args = parser.parse_args(argv)
    stores: dict[str, Callable[[], object]] = {"sqlite": sqlite_store,
                                               "postgresql": postgres_store}
    print(f"{args.pairs:,} pairs per run, median of {args.repeat} runs")
    print(f"{'store':<11}{'pairs/persist':>14}{'join µs/pair':>14}{'ship µs/pair':>14}"
          f"{'ship/join':>11}{'B/pair':>8}{'JSON B/pair':>13}")
    with sqlite_store() as probe:
        sample = buffer_of(0, 1000)
        with probe.transaction() as tx:
            json_per_pair = json_bytes(sample.join(tx, {})[MODEL])
    for name, opener in stores.items():
        for per_persist in (1_000, 10_000):
            runs = []
            for _ in range(args.repeat):
                with opener() as store:  # type: ignore[attr-defined]
                    runs.append(run(store, args.pairs, per_persist))
            join_us, ship_us, per_pair = (statistics.median(r[i] for r in runs)
                                          for i in range(3))
            print(f"{name:<11}{per_persist:>14,}{join_us:>14.2f}{ship_us:>14.2f}"
                  f"{ship_us / join_us:>10.0%}{per_pair:>8.1f}{json_per_pair:>13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
