"""The noise schedule: start, end, shape and bad values."""
from __future__ import annotations

import numpy as np
import pytest

from whaleflow.errors import ConfigError
from whaleflow.mining import NoiseSchedule


def test_linear_values():
    s = NoiseSchedule(1.0, 0.0, 10)
    assert s(0) == 1.0
    assert s.noise(5) == pytest.approx(0.5)
    assert s(2.5) == pytest.approx(0.75)
    assert s(10) == 0.0 and s(99) == 0.0


def test_cosine_values():
    s = NoiseSchedule(2.0, 0.5, 8, shape="cosine")
    assert s(0) == pytest.approx(2.0)
    assert s(4) == pytest.approx(1.25)  # half way at half time
    assert s(2) == pytest.approx(0.5 + 1.5 * (1 + np.cos(np.pi / 4)) / 2)
    assert s(8) == 0.5


@pytest.mark.parametrize("shape", ["linear", "cosine"])
def test_monotone_and_increasing_schedules_work(shape):
    down = [NoiseSchedule(3.0, 0.0, 12, shape)(e) for e in range(15)]
    assert all(a >= b for a, b in zip(down, down[1:]))
    up = [NoiseSchedule(0.0, 1.0, 4, shape)(e) for e in range(6)]
    assert all(a <= b for a, b in zip(up, up[1:])) and up[-1] == 1.0


def test_zero_epochs_is_constant_end():
    assert NoiseSchedule(5.0, 0.25, 0)(0) == 0.25


def test_bad_values():
    with pytest.raises(ConfigError):
        NoiseSchedule(-1.0, 0.0, 3)
    with pytest.raises(ConfigError):
        NoiseSchedule(1.0, 0.0, -1)
    with pytest.raises(ConfigError):
        NoiseSchedule(1.0, 0.0, 3, shape="exp")
    with pytest.raises(ValueError):
        NoiseSchedule()(-1)


def test_floor_and_offset():
    s = NoiseSchedule(2.0, 0.0, 10, floor=0.5, offset=4)
    assert s(0) == s(4) == 2.0  # before and at the first round: start
    assert s(9) == pytest.approx(1.0)  # half way, counted from the offset
    assert s(14) == s(100) == 0.5  # the floor, never the bare argmax
    assert min(s(e) for e in range(0, 40)) == 0.5
    with pytest.raises(ConfigError):
        NoiseSchedule(floor=-0.1)
    with pytest.raises(ConfigError):
        NoiseSchedule(offset=-1)
