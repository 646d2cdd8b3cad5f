"""Checking and applying a viewer's CONTROL request: pure functions, no I/O, no torch.

A request is judged field by field before anything changes; one bad field rejects the whole
request, so a CONTROL is applied entirely or not at all.
"""

from __future__ import annotations

import math

from synapse_native.protocol import NO_FULL_RANK, Control, ControlState, SiteKind, ThresholdMode

THRESHOLD_MAX = 3.0e38  # finite float32
RATE_MAX_HZ = 1000.0
TOP_K_MIN = 1
TOP_K_MAX = 65536
BUDGET_MAX = 1.0  # the probe's own cost, as a share of the step time
DEFAULT_BUDGET = 0.01


def budget_errors(value: object) -> list[str]:
    """Why ``value`` is not a budget (a share of the step time in (0, 1])."""
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= BUDGET_MAX
    ):
        return []
    return [f"budget must be a share of the step time in (0, {BUDGET_MAX:g}], got {value!r}"]


def kind_bit(kind: SiteKind | int) -> int:
    """The bit of ``kind`` in a ``site_kinds`` mask."""
    return 1 << int(kind)


KNOWN_KINDS = sum(kind_bit(kind) for kind in SiteKind)
ALL_KINDS = kind_bit(SiteKind.ATTN) | kind_bit(SiteKind.MLP) | kind_bit(SiteKind.RESIDUAL)

# Each mode's default: about 1 % of a site's neurons lit in the relative modes; a mean |x|
# above 1 in the absolute one (a unit-variance activation has a mean |x| of about 0.8).
DEFAULT_THRESHOLDS = {
    ThresholdMode.ABSOLUTE: 1.0,
    ThresholdMode.SIGMA: 2.5,
    ThresholdMode.TOP_FRACTION: 0.01,
}
MODE_NAMES = {
    "absolute": ThresholdMode.ABSOLUTE,
    "sigma": ThresholdMode.SIGMA,
    "top": ThresholdMode.TOP_FRACTION,
}

DEFAULT_STATE = ControlState(
    threshold=DEFAULT_THRESHOLDS[ThresholdMode.SIGMA],
    rate_hz=10.0,
    site_kinds=ALL_KINDS,
    paused=False,
    top_k=512,
    threshold_mode=ThresholdMode.SIGMA,
)


def parse_mode(mode: str | int) -> ThresholdMode:
    """A ``ThresholdMode`` from its number or name (absolute, sigma, top); ValueError else."""
    if isinstance(mode, str):
        if mode not in MODE_NAMES:
            raise ValueError(f"threshold mode must be one of {', '.join(MODE_NAMES)}, got {mode!r}")
        return MODE_NAMES[mode]
    return ThresholdMode(mode)


def request_errors(request: Control) -> list[str]:
    """Why ``request`` cannot be applied: one line per bad field; empty when it is valid."""
    errors: list[str] = []
    if request.unknown_fields:
        errors.append(f"unknown CONTROL field bits {request.unknown_fields:#x}")
    if request.threshold is not None:
        errors += _threshold_errors(request.threshold)
    if request.rate_hz is not None:
        errors += _rate_errors(request.rate_hz)
    if request.site_kinds is not None:
        errors += _kinds_errors(request.site_kinds)
    if request.paused is not None and not isinstance(request.paused, bool):
        errors.append(f"paused must be true or false, got {request.paused!r}")
    if request.top_k is not None:
        errors += _top_k_errors(request.top_k)
    if request.threshold_mode is not None and request.threshold_mode not in list(ThresholdMode):
        errors.append(f"threshold_mode {request.threshold_mode!r} unknown (0, 1 or 2)")
    if request.budget is not None:
        errors += budget_errors(request.budget)
    return errors


def full_rank_errors(value: int, world_size: int) -> list[str]:
    """Why FULL_RANK ``value`` cannot be relayed by a job of ``world_size`` ranks (0: the
    trainer serves no job)."""
    if not world_size:
        return ["FULL_RANK needs a job's serving rank (capability RANK_RELAY)"]
    if value != NO_FULL_RANK and not 0 <= value < world_size:
        return [f"full_rank {value} is not a rank of this job (0..{world_size - 1}, or none)"]
    return []


def state_errors(state: ControlState) -> list[str]:
    """Why ``state`` is not a valid set of streaming settings; empty when it is."""
    request = Control(
        request_id=0,
        threshold=state.threshold,
        rate_hz=state.rate_hz,
        site_kinds=state.site_kinds,
        paused=state.paused,
        top_k=state.top_k,
        threshold_mode=state.threshold_mode,
    )
    return request_errors(request) or _fraction_errors(state)


def apply(state: ControlState, request: Control) -> ControlState:
    """``state`` with the request's present fields replaced; ValueError if the request is bad."""
    errors = request_errors(request)
    new = request.applied_to(state)
    errors = errors or _fraction_errors(new)
    if errors:
        raise ValueError("; ".join(errors))
    return new


def _fraction_errors(state: ControlState) -> list[str]:
    """A TOP_FRACTION threshold is a fraction of the neurons."""
    if state.threshold_mode == ThresholdMode.TOP_FRACTION and not 0 <= state.threshold <= 1:
        return [f"a top-fraction threshold must be in [0, 1], got {state.threshold!r}"]
    return []


def kinds_enabled(state: ControlState, kind: SiteKind | int) -> bool:
    """Whether sites of ``kind`` are streamed under ``state``."""
    return bool(state.site_kinds & kind_bit(kind))


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _threshold_errors(value: float) -> list[str]:
    if not _is_number(value) or not math.isfinite(value) or not 0 <= value <= THRESHOLD_MAX:
        return [f"threshold must be a finite number >= 0, got {value!r}"]
    return []


def _rate_errors(value: float) -> list[str]:
    if not _is_number(value) or not math.isfinite(value) or not 0 < value <= RATE_MAX_HZ:
        return [f"rate_hz must be in (0, {RATE_MAX_HZ:g}], got {value!r}"]
    return []


def _kinds_errors(value: int) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return [f"site_kinds must be a bit mask, got {value!r}"]
    if value & ~KNOWN_KINDS:
        return [f"site_kinds has unknown kind bits {value & ~KNOWN_KINDS:#x}"]
    if not value:
        return ["site_kinds must enable at least one site kind"]
    return []


def _top_k_errors(value: int) -> list[str]:
    if not isinstance(value, int) or isinstance(value, bool) or not TOP_K_MIN <= value <= TOP_K_MAX:
        return [f"top_k must be an integer in [{TOP_K_MIN}, {TOP_K_MAX}], got {value!r}"]
    return []
