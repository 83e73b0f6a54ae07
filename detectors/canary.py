"""The canary judge: challenger against champion on the same interval's traffic.

``judge(champion, challenger, settings) -> CanaryVerdict``. Both arms are
``ArmStats`` of the same interval, so both saw the same traffic conditions.
Checks, in order:

1. ``traffic``: each arm has at least ``min_events`` events; otherwise the verdict
   is ``inconclusive`` right away and this check says which arm fell short (too
   little data is never a pass, nor a failure of the challenger).
2. ``performance`` (critical by default): non-inferiority with margin
   ``max_performance_drop`` at ``confidence``: Agresti-Caffo difference of
   accuracies for classification, Welch t on the per-row loss otherwise. With
   fewer than ``min_labels`` joined rows in an arm and an estimate in both, the
   estimates (of the judged metric, see ``judged_metric``) are compared instead
   (verdict ``estimated=True``).
3. ``invalid_rate`` (critical): the challenger's invalid/quality-violation rate is
   not shown above the champion's by more than ``max_invalid_increase``.
4. ``prediction_divergence``: Jensen-Shannon distance (natural log) between the
   arms' prediction histograms below ``max_divergence``; run when both arms have
   histograms.
5. ``latency``: the challenger's mean latency not shown above the champion's by
   more than ``max_latency_increase`` (relative); run when both arms carry latency.

A failing critical check gives ``fail`` with score 0 (Kayenta); an inconclusive
critical check gives ``inconclusive``. Otherwise the score is the weighted share
of passing checks among the conclusive ones, read against ``pass_score`` and
``marginal_score``.

>>> from detectors.canary_stats import Moments
>>> champion = ArmStats(n_events=3000, loss=Moments(3000, 300.0, 300.0))
>>> challenger = ArmStats(n_events=3000, loss=Moments(3000, 150.0, 150.0))
>>> verdict = judge(champion, challenger, JudgeSettings(min_events=1000))
>>> verdict.outcome, verdict.score
('pass', 100.0)
"""

from __future__ import annotations

import numpy as np

from detectors.binned import jensenshannon
from detectors.canary_results import CanaryVerdict, CheckResult, JudgeSettings, Outcome
from detectors.canary_stats import ArmStats, judged_metric
from detectors.twosample import Difference, Want, normal_difference, two_proportions, welch

Direction = Want

__all__ = ["judge"]


def judge(champion: ArmStats, challenger: ArmStats, settings: JudgeSettings) -> CanaryVerdict:
    metric = judged_metric(settings.metric)
    n_cp, n_ch = champion.n_events, challenger.n_events
    traffic = _traffic(n_cp, n_ch, settings)
    if traffic.outcome != "pass":
        return CanaryVerdict("inconclusive", None, traffic.sentence, (traffic,), n_cp, n_ch,
                             metric)
    performance, estimated = _performance(champion, challenger, settings, metric)
    checks = [traffic, performance, _invalid(champion, challenger, settings)]
    if champion.prediction_counts or challenger.prediction_counts:
        checks.append(_divergence(champion, challenger, settings))
    if champion.latency.n or challenger.latency.n:
        checks.append(_latency(champion, challenger, settings))
    outcome, score, reason = _combine(checks, settings)
    return CanaryVerdict(outcome, score, reason, tuple(checks), n_cp, n_ch, metric, estimated)


def _combine(
    checks: list[CheckResult], settings: JudgeSettings
) -> tuple[Outcome, float | None, str]:
    scored = [c for c in checks if c.weight > 0 or c.critical]
    conclusive = [c for c in scored if c.outcome != "inconclusive"]
    total = sum(c.weight for c in conclusive)
    score = None if total == 0 else 100.0 * sum(
        c.weight for c in conclusive if c.outcome == "pass") / total
    passed = sum(c.outcome == "pass" for c in scored)
    tally = f"{passed} of {len(scored)} checks passed"
    failed_critical = [c for c in scored if c.critical and c.outcome == "fail"]
    if failed_critical:
        return "fail", 0.0, f"fail (score 0): critical check {failed_critical[0].sentence}"
    open_critical = [c for c in scored if c.critical and c.outcome == "inconclusive"]
    if open_critical:
        return "inconclusive", score, f"inconclusive: {open_critical[0].sentence}"
    if score is None:
        return "inconclusive", None, f"inconclusive: no check was conclusive ({tally})"
    shown = f"score {score:.0f}, {tally}"
    if score >= settings.pass_score:
        return "pass", score, f"pass ({shown})"
    failing = "; ".join(c.sentence for c in conclusive if c.outcome == "fail")
    if score < settings.marginal_score:
        return "fail", score, f"fail ({shown} < {settings.marginal_score:.0f}): {failing}"
    return "inconclusive", score, (
        f"inconclusive (marginal {shown}, pass at {settings.pass_score:.0f}): {failing}")


def _traffic(n_cp: int, n_ch: int, settings: JudgeSettings) -> CheckResult:
    need = settings.min_events
    short = [f"{arm} had {n}" for arm, n in (("challenger", n_ch), ("champion", n_cp)) if n < need]
    if short:
        sentence = f"too little traffic: {' and '.join(short)} events, need {need} per arm"
        outcome: Outcome = "inconclusive"
    else:
        sentence = f"traffic: {n_ch} challenger and {n_cp} champion events (>= {need} per arm)"
        outcome = "pass"
    return CheckResult("traffic", "min_events", outcome, float(min(n_cp, n_ch)), float(need),
                       "above", n_cp, n_ch, sentence, float(n_cp), float(n_ch), critical=True)


def _performance(champion: ArmStats, challenger: ArmStats, settings: JudgeSettings,
                 metric: str) -> tuple[CheckResult, bool]:
    margin = settings.max_performance_drop
    # accuracy: higher is better; the losses (mae, mape, log_loss): lower is better
    want: Direction = "above" if metric == "accuracy" else "below"
    threshold = -margin if want == "above" else margin
    lc, lh = champion.loss, challenger.loss
    critical, weight = "performance" in settings.critical, settings.weight("performance")
    if min(lc.n, lh.n) >= settings.min_labels:
        if metric == "accuracy":
            # correct rows: the loss total is the count of errors
            diff = two_proportions(lh.n - round(lh.total), lh.n, lc.n - round(lc.total), lc.n,
                                   confidence=settings.confidence)
            values = (1.0 - lc.mean, 1.0 - lh.mean)
        else:
            diff = welch(lh, lc, confidence=settings.confidence)
            values = (lc.mean, lh.mean)
        return _difference_check("performance", metric, diff, threshold, want, lc.n, lh.n,
                                 values, settings, critical=critical, weight=weight), False
    ec, eh = champion.estimated, challenger.estimated
    if ec is not None and eh is not None:
        diff = normal_difference(eh.value, eh.standard_error, ec.value, ec.standard_error,
                                 confidence=settings.confidence)
        check = _difference_check("performance", f"estimated {metric}", diff, threshold, want,
                                  ec.n, eh.n, (ec.value, eh.value), settings,
                                  critical=critical, weight=weight)
        return check, True
    sentence = (f"performance: {lh.n} challenger and {lc.n} champion labeled rows, need "
                f"{settings.min_labels} per arm, and no estimated {metric} for both arms")
    return CheckResult("performance", "none", "inconclusive", None, threshold, want, lc.n, lh.n,
                       sentence, critical=critical, weight=weight), False


def _invalid(champion: ArmStats, challenger: ArmStats, settings: JudgeSettings) -> CheckResult:
    diff = two_proportions(challenger.n_invalid, challenger.n_events, champion.n_invalid,
                           champion.n_events, confidence=settings.confidence)
    values = (champion.n_invalid / champion.n_events, challenger.n_invalid / challenger.n_events)
    return _difference_check("invalid_rate", "invalid rate", diff, settings.max_invalid_increase,
                             "below", champion.n_events, challenger.n_events, values, settings,
                             critical="invalid_rate" in settings.critical,
                             weight=settings.weight("invalid_rate"))


def _divergence(champion: ArmStats, challenger: ArmStats, settings: JudgeSettings) -> CheckResult:
    cp, ch = champion.prediction_counts, challenger.prediction_counts
    if len(cp) != len(ch):
        raise ValueError(f"canary prediction histograms: got {len(ch)} challenger and {len(cp)} "
                         "champion bins, expected the same shared bins")
    n_cp, n_ch = sum(cp), sum(ch)
    limit = settings.max_divergence
    critical = "prediction_divergence" in settings.critical
    weight = settings.weight("prediction_divergence")
    if n_cp == 0 or n_ch == 0:
        sentence = (f"prediction divergence: no binned predictions ({n_ch} challenger, "
                    f"{n_cp} champion)")
        return CheckResult("prediction_divergence", "jensenshannon", "inconclusive", None, limit,
                           "below", n_cp, n_ch, sentence, critical=critical, weight=weight)
    distance = jensenshannon(np.asarray(cp, np.float64), np.asarray(ch, np.float64))
    outcome: Outcome = "pass" if distance < limit else "fail"
    relation = "<" if outcome == "pass" else ">="
    sentence = f"prediction divergence: Jensen-Shannon {distance:.3f} {relation} {limit:.3f}"
    return CheckResult("prediction_divergence", "jensenshannon", outcome, distance, limit,
                       "below", n_cp, n_ch, sentence, critical=critical, weight=weight)


def _latency(champion: ArmStats, challenger: ArmStats, settings: JudgeSettings) -> CheckResult:
    lc, lh = champion.latency, challenger.latency
    threshold = settings.max_latency_increase * lc.mean if lc.n else 0.0
    diff = welch(lh, lc, confidence=settings.confidence)
    return _difference_check("latency", "mean latency", diff, threshold, "below", lc.n, lh.n,
                             (lc.mean, lh.mean), settings, critical="latency" in settings.critical,
                             weight=settings.weight("latency"))


def _difference_check(name: str, label: str, diff: Difference | None, threshold: float,
                      direction: Direction, n_cp: int, n_ch: int, values: tuple[float, float],
                      settings: JudgeSettings, *, critical: bool, weight: float) -> CheckResult:
    """A check on challenger minus champion against ``threshold`` (pass needs ``direction``)."""
    if diff is None:
        sentence = f"{label}: too few values ({n_ch} challenger, {n_cp} champion) for a test"
        return CheckResult(name, "none", "inconclusive", None, threshold, direction, n_cp, n_ch,
                           sentence, critical=critical, weight=weight)
    outcome = diff.classify(threshold, direction)
    threshold += 0.0  # a margin of 0 reads "+0", not "-0"
    pct = f"{settings.confidence:.0%}"
    bound, side = (diff.lower, "lower") if direction == "above" else (diff.upper, "upper")
    if outcome == "pass":
        relation = ">" if direction == "above" else "<"
        why = f"{pct} {side} bound {bound:+.4g} {relation} {threshold:+.4g}"
    elif outcome == "fail":
        other = diff.upper if direction == "above" else diff.lower
        relation = "<" if direction == "above" else ">"
        why = f"shown beyond the margin ({pct} bound {other:+.4g} {relation} {threshold:+.4g})"
    else:
        why = (f"not shown within the margin ({pct} bounds {diff.lower:+.4g} to "
               f"{diff.upper:+.4g} straddle {threshold:+.4g})")
    sentence = (f"{label} {values[1]:.4g} (challenger) vs {values[0]:.4g} (champion): "
                f"{diff.difference:+.4g}, {why}")
    return CheckResult(name, diff.method, outcome, diff.difference, threshold, direction, n_cp,
                       n_ch, sentence, values[0], values[1], diff.lower, diff.upper,
                       diff.p_value(threshold, direction), critical, weight)
