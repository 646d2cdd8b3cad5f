"""The package surface: lazy torch-side names, the sampler's rate rule."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from synapse_probe.sampling import Sampler

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_package_does_not_import_torch() -> None:
    code = (
        "import sys, synapse_probe; assert 'torch' not in sys.modules, 'torch imported'; "
        "synapse_probe.attach; assert 'torch' in sys.modules"
    )
    env_path = f"{ROOT / 'probe'}"
    result = subprocess.run(
        [sys.executable, "-c", f"import sys; sys.path[:0] = [{env_path!r}]; {code}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_sampler_measures_at_most_rate_hz_steps() -> None:
    sampler = Sampler(10.0)
    second = 1_000_000_000
    due = [sampler.due(t * second // 100) for t in range(100)]  # steps every 10 ms for 1 s
    assert sum(due) == 10 and due[0] and due[10]


def test_sampler_measures_every_slow_step_and_nothing_when_paused() -> None:
    sampler = Sampler(10.0)
    assert all(sampler.due(t * 200_000_000) for t in range(5))  # 200 ms steps
    sampler.paused = True
    assert not sampler.due(10**12)
    sampler.paused = False
    sampler.rate_hz = 0.0
    assert not sampler.due(2 * 10**12)
