"""``ProbeOptions``: the options ``attach`` takes, checked before anything is hooked."""

from __future__ import annotations

import math

import pytest
from probe_models import llama_like

import synapse_probe
from synapse_native.protocol import ThresholdMode
from synapse_probe import ProbeOptions


def test_keywords_override_a_reused_options_object(server) -> None:
    shared = ProbeOptions(rate_hz=math.inf, top_k=7, threshold_mode="top", name="exp1")
    with synapse_probe.attach(llama_like(), options=shared, server=server, top_k=3) as probe:
        assert probe.options.top_k == 3 and probe.options.name == "exp1"
        assert probe.control.top_k == 3
        assert probe.control.threshold_mode == ThresholdMode.TOP_FRACTION
        assert probe.control.threshold == pytest.approx(0.01)  # the top mode's default
    assert server.metas[0].model_name == "exp1"
    assert shared.top_k == 7  # the shared options are not changed


def test_a_misspelt_option_names_the_real_ones(server) -> None:
    model = llama_like()
    with pytest.raises(TypeError, match=r"'rate_hzz'.*rate_hz"):
        synapse_probe.attach(model, server=server, rate_hzz=5.0)
    assert not any(m._forward_hooks for m in model.modules())  # nothing was hooked


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"sample_fraction": 0.0}, "sample_fraction"),
        ({"sample_tokens": 0}, "sample_tokens"),
        ({"pattern_hz": -1.0}, "pattern_hz"),
        ({"backlog_mb": -1}, "backlog_mb"),
        ({"budget": 2.0}, "budget"),
        ({"budget": math.nan}, "budget"),
        ({"threshold_mode": "loud"}, "threshold mode"),
    ],
)
def test_a_value_out_of_range_is_refused_before_anything_is_hooked(
    server, option: dict, message: str
) -> None:
    model = llama_like()
    with pytest.raises(ValueError, match=message):
        synapse_probe.attach(model, server=server, **option)
    assert not any(m._forward_hooks for m in model.modules())
