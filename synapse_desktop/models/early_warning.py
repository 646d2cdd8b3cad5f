"""Rolling baselines of scalar signals and the tests that say a signal left its baseline.

Each ``Series`` holds the last ``window`` finite samples of ``n`` signals of one kind (one row
per block, per layer or a single row) with the steps they came at. ``check`` compares the new
samples with the baseline of the samples before them, opens an episode per row that crosses its
limit (one finding per episode), closes it once the row is back under the re-arm level, and then
adds the samples. A sample over the limit that still awaits its confirmation is kept for the
evidence but not learnt: an outlier that the next samples do not confirm (one odd batch) never
enters the baseline, so it neither raises the spread that later spikes are judged by nor moves
the median. Everything is a pure function of the samples fed, in order, so a recording's
replay raises the same findings as the live stream.
"""

from __future__ import annotations

import enum
import warnings
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class Check(enum.Enum):
    """How a sample is judged against its row's baseline.

    - ``SCORE``: spike score ``(x - mean) / std`` above ``limit`` (OLMo-core), and ``x`` at
      least ``floor`` times the mean (a flat signal's tiny std does not make noise a spike);
    - ``RATIO``: ``x`` above ``limit`` times the median;
    - ``RISE``: ``x`` above ``floor`` and above the median plus ``limit`` (fractions);
    - ``LEVEL``: ``x`` above ``limit`` whatever the baseline.
    """

    SCORE = "score"
    RATIO = "ratio"
    RISE = "rise"
    LEVEL = "level"


@dataclass(frozen=True, slots=True)
class Rule:
    """One test and its numbers; ``rearm``: the episode ends once the test's measure is back
    under ``rearm`` (same unit as ``limit``); ``confirm``: consecutive samples over the limit
    that open an episode (one outlier of a noisy statistic is not a trend)."""

    test: Check
    limit: float
    rearm: float
    floor: float = 0.0
    window: int = 64
    min_samples: int = 16
    confirm: int = 1

    def __post_init__(self) -> None:
        if not self.rearm <= self.limit:
            raise ValueError(f"{self.test.value} rule: need rearm <= limit")
        if not 1 <= self.min_samples <= self.window:
            raise ValueError(f"{self.test.value} rule: need 1 <= min_samples <= window")
        if self.confirm < 1:
            raise ValueError(f"{self.test.value} rule: need confirm >= 1")


@dataclass(frozen=True, slots=True)
class Evidence:
    """What an alert saw: the signal's samples up to the alert (steps, values, oldest first),
    the baseline it was judged against, and the limit it crossed (in the signal's unit)."""

    label: str
    steps: tuple[int, ...]
    values: tuple[float, ...]
    baseline: float
    limit: float


@dataclass(frozen=True, slots=True)
class Finding:
    row: int
    value: float
    baseline: float
    limit: float  # the value the sample had to pass, in the signal's unit
    rows: int  # rows that opened an episode with this sample (this one included)
    evidence: Evidence


@dataclass(slots=True)
class Series:
    """The last ``rule.window`` finite samples of ``n`` rows, and their episodes."""

    rule: Rule
    label: str
    n: int = 0
    values: F64 = field(init=False)
    steps: I64 = field(init=False)
    filled: I64 = field(init=False)
    active: npt.NDArray[np.bool_] = field(init=False)
    run: I64 = field(init=False)  # consecutive samples over the limit
    learnt: npt.NDArray[np.bool_] = field(init=False)  # samples in the baseline
    last_step: int = -1

    def __post_init__(self) -> None:
        w = self.rule.window
        self.values = np.full((self.n, w), np.nan)
        self.steps = np.full((self.n, w), -1, np.int64)
        self.filled = np.zeros(self.n, np.int64)
        self.active = np.zeros(self.n, bool)
        self.run = np.zeros(self.n, np.int64)
        self.learnt = np.zeros((self.n, w), bool)

    def fit(self, n: int) -> None:
        """Grow to ``n`` rows (rows keep their samples)."""
        if n <= self.n:
            return
        old = (self.values, self.steps, self.filled, self.active, self.run, self.learnt)
        k = self.n
        self.n = n
        self.__post_init__()
        (
            self.values[:k],
            self.steps[:k],
            self.filled[:k],
            self.active[:k],
            self.run[:k],
            self.learnt[:k],
        ) = old

    def check(self, step: int, samples: npt.ArrayLike, armed: bool = True) -> Finding | None:
        """Judge ``samples`` (one per row; NaN: none) of ``step``, then keep them. Returns the
        finding of the row that stands out most among those opening an episode, if any.
        Not ``armed`` (e.g. during warm-up), the samples only build the baseline. A step not
        newer than the last one checked is ignored."""
        x = np.asarray(samples, np.float64).ravel()
        if step <= self.last_step:
            return None
        self.last_step = step
        self.fit(len(x))
        x = np.concatenate([x, np.full(self.n - len(x), np.nan)])
        if not armed:
            self._push(step, x, np.isfinite(x))
            return None
        measure, baseline, limit_value, enough = self._judge(x)
        rule = self.rule
        with np.errstate(invalid="ignore"):
            over = enough & (measure > rule.limit)
            back = ~enough | (measure <= rule.rearm)
        self.run = np.where(over, self.run + 1, 0)
        new = (self.run >= rule.confirm) & ~self.active
        self.active = (self.active | new) & ~back
        finding = None
        if new.any():
            rows = np.flatnonzero(new)
            row = int(rows[np.argmax(measure[rows])])
            finding = Finding(
                row,
                float(x[row]),
                float(baseline[row]),
                float(limit_value[row]),
                len(rows),
                self._evidence(row, step, float(x[row]), baseline, limit_value),
            )
        pending = over & ~self.active  # over the limit, not confirmed yet
        self._push(step, x, np.isfinite(x) & ~pending)
        return finding

    def _judge(self, x: F64) -> tuple[F64, F64, F64, npt.NDArray[np.bool_]]:
        """(the test's measure, the baseline, the value the limit stands for, enough samples)."""
        rule = self.rule
        enough = (self.learnt.sum(axis=1) >= rule.min_samples) & np.isfinite(x)
        if rule.test is Check.LEVEL:
            return x, np.full_like(x, np.nan), np.full_like(x, rule.limit), np.isfinite(x)
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # rows without samples yet
            values = np.where(self.learnt, self.values, np.nan)
            if rule.test is Check.SCORE:
                mean = np.nanmean(values, axis=1)
                std = np.nanstd(values, axis=1)
                score = (x - mean) / std
                score[~(x >= rule.floor * mean)] = -np.inf
                score[(std == 0) & (x > mean) & (x >= rule.floor * mean)] = np.inf
                return score, mean, mean + rule.limit * std, enough & (std >= 0)
            median = np.nanmedian(values, axis=1)
            if rule.test is Check.RATIO:
                ratio = x / median
                return ratio, median, rule.limit * median, enough & (median > 0)
            rise = x - median
            rise[~(x > rule.floor)] = -np.inf
            return rise, median, np.maximum(median + rule.limit, rule.floor), enough

    def _push(self, step: int, x: F64, learn: npt.NDArray[np.bool_]) -> None:
        """Keep the finite samples; those in ``learn`` join the baseline."""
        rows = np.flatnonzero(np.isfinite(x))
        slots = self.filled[rows] % self.rule.window
        self.values[rows, slots] = x[rows]
        self.steps[rows, slots] = step
        self.learnt[rows, slots] = learn[rows]
        self.filled[rows] += 1

    def _evidence(self, row: int, step: int, value: float, baseline: F64, limit: F64) -> Evidence:
        order = np.argsort(self.steps[row])
        kept = order[self.steps[row][order] >= 0]
        steps = (*self.steps[row][kept].tolist(), step)
        values = (*self.values[row][kept].tolist(), value)
        return Evidence(self.label, steps, values, float(baseline[row]), float(limit[row]))


def evidence_of(label: str, steps: list[int], values: list[float], limit: float) -> Evidence:
    """Evidence for an alert that a baseline does not decide (e.g. a non-finite value)."""
    return Evidence(label, tuple(steps), tuple(values), float("nan"), limit)
