import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsebert.pruning import CubicSchedule


def test_cubic_values_at_known_steps():
    s = CubicSchedule(final_sparsity=0.95, start_step=0, end_step=1000, num_events=100)
    # s_t = s_f (1 - (1 - t/T)^3)
    assert s.sparsity_at(0) == 0.0
    assert s.sparsity_at(500) == pytest.approx(0.95 * (1 - 0.5**3))  # 0.83125
    assert s.sparsity_at(500) == pytest.approx(0.83125)
    assert s.sparsity_at(100) == pytest.approx(0.95 * (1 - 0.9**3))  # 0.25745
    assert s.sparsity_at(900) == pytest.approx(0.95 * (1 - 0.1**3))  # 0.94905
    assert s.sparsity_at(1000) == 0.95
    assert s.sparsity_at(5000) == 0.95


def test_initial_sparsity_with_delayed_start():
    """Dense warm-up before t_0, a one-shot event to s_0 at t_0 (oBERT), then the cubic ramp."""
    s = CubicSchedule(final_sparsity=0.9, initial_sparsity=0.5, start_step=100, end_step=300, num_events=4)
    assert s.sparsity_at(50) == 0.0 and s.sparsity_at(99) == 0.0
    assert s.sparsity_at(100) == 0.5
    assert s.sparsity_at(200) == pytest.approx(0.9 + (0.5 - 0.9) * 0.5**3)  # 0.85
    assert s.event_steps == [100, 150, 200, 250, 300]
    assert not s.is_event(99) and s.is_event(100)
    # without s_0 the start is no event
    assert CubicSchedule(final_sparsity=0.9, start_step=100, end_step=300, num_events=4).event_steps == [150, 200, 250, 300]


def test_hundred_events_last_at_end():
    s = CubicSchedule(final_sparsity=0.95, end_step=1234, num_events=100)
    assert len(s.event_steps) == 100
    assert s.event_steps[-1] == 1234
    assert s.is_event(1234) and not s.is_event(0)


def test_fewer_steps_than_events_prunes_every_step():
    s = CubicSchedule(final_sparsity=0.5, end_step=7, num_events=100)
    assert s.event_steps == list(range(1, 8))


@pytest.mark.parametrize("kw", [dict(final_sparsity=1.0), dict(final_sparsity=-0.1),
                                dict(final_sparsity=0.5, initial_sparsity=0.6),
                                dict(final_sparsity=0.5, start_step=10, end_step=10),
                                dict(final_sparsity=0.5, num_events=0)])
def test_rejects_bad_arguments(kw):
    with pytest.raises(ValueError):
        CubicSchedule(**{"end_step": 100, **kw})


@given(sf=st.floats(0.0, 0.999), s0frac=st.floats(0.0, 1.0), end=st.integers(1, 5000), n=st.integers(1, 300))
def test_schedule_properties(sf, s0frac, end, n):
    s = CubicSchedule(final_sparsity=sf, initial_sparsity=sf * s0frac, end_step=end, num_events=n)
    values = [s.sparsity_at(t) for t in range(0, end + 1, max(1, end // 50))] + [s.sparsity_at(end)]
    assert all(a <= b + 1e-12 for a, b in zip(values, values[1:]))  # monotone non-decreasing
    assert all(sf * s0frac - 1e-12 <= v <= sf + 1e-12 for v in values)
    assert s.sparsity_at(end) == sf
    assert len(s.event_steps) == min(n, end) and s.event_steps[-1] == end
