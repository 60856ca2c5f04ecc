"""MiningSchedule: warm-up, every K epochs, never on a stage change, disabled for solver none."""
from __future__ import annotations

import pytest

from whaleflow.errors import ConfigError
from whaleflow.mining import MiningSchedule


def brute_rounds(start, every, stage_starts, epochs):
    """Rounds on the grid start + k·every; one on a stage start moves to the next epoch."""
    out = set()
    for e in range(start, epochs, every):
        out.add(e + 1 if e in stage_starts and e > 0 else e)
    return sorted(e for e in out if e < epochs and e not in stage_starts)


def test_demo_like_schedule_skips_the_stage_change():
    s = MiningSchedule.for_stages(start=10, every=3, stage_epochs=[10, 14])
    assert s.stage_starts == (10,)
    assert s.rounds(24) == [11, 13, 16, 19, 22]
    assert not s.due(10) and s.due(11)


@pytest.mark.parametrize("start", [0, 1, 3, 4])
@pytest.mark.parametrize("every", [1, 2, 3])
def test_matches_brute_force(start, every):
    stages = [4, 3, 5]
    s = MiningSchedule.for_stages(start, every, stages)
    stage_starts = {4, 7}
    assert s.rounds(12) == brute_rounds(start, every, stage_starts, 12)
    assert not any(s.due(e) for e in range(start))  # warm-up: random pairs only
    assert not any(s.due(e) for e in stage_starts)


def test_disabled_never_mines_and_bad_values():
    assert MiningSchedule.for_stages(0, 1, [5, 5], enabled=False).rounds(10) == []
    with pytest.raises(ConfigError):
        MiningSchedule(start=-1)
    with pytest.raises(ConfigError):
        MiningSchedule(every=0)
