"""Tests for the SLA clock."""
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.errors import ConfigError, HarnessBroken
from harness.sla import SlaClock, parse_time_scale


def started(scale: float = 60.0) -> SlaClock:
    clock = SlaClock(scale)
    clock.start()
    return clock


def test_nothing_seen_yet_reads_as_none():
    clock = started()
    assert (clock.ttd_wall, clock.ttr_wall, clock.ttd_aws, clock.ttr_aws) == (None, None, None, None)
    assert clock.skew_warning is None


def test_detection_and_remediation_come_from_external_timestamps():
    clock = started(60)
    clock.detected(clock.injected_at + 0.5)
    clock.remediated(clock.injected_at + 1.25)
    assert clock.ttd_wall == pytest.approx(0.5)
    assert clock.ttd_aws == pytest.approx(30)
    assert clock.ttr_wall == pytest.approx(1.25)
    assert clock.ttr_aws == pytest.approx(75)


def test_the_earliest_sighting_counts():
    clock = started(1)
    clock.detected(clock.injected_at + 3)
    clock.detected(clock.injected_at + 2)
    clock.detected(clock.injected_at + 4)
    assert clock.ttd_wall == pytest.approx(2)


def test_negative_time_to_detect_is_clamped_and_flagged():
    clock = started(10)
    clock.detected(clock.injected_at - 0.25)
    assert clock.ttd_wall == 0.0
    assert clock.ttd_aws == 0.0
    assert "0.250 s before injection" in clock.skew_warning
    clock.remediated(clock.injected_at - 1)
    assert clock.ttr_wall == 0.0
    assert clock.skew_warning.count("before injection") == 2


def test_restart_forgets_earlier_sightings():
    clock = started(1)
    clock.detected(clock.injected_at - 1)
    clock.start()
    assert clock.ttd_wall is None and clock.skew_warning is None


def test_limits_convert_between_aws_and_wall_time():
    clock = SlaClock(60)
    assert clock.wall_limit(60) == pytest.approx(1.0)
    assert clock.to_aws(2.5) == pytest.approx(150)


@given(st.floats(min_value=0.001, max_value=1e4), st.floats(min_value=0, max_value=1e5))
def test_wall_limit_and_to_aws_are_inverse(scale, aws_seconds):
    clock = SlaClock(scale)
    assert clock.to_aws(clock.wall_limit(aws_seconds)) == pytest.approx(aws_seconds, rel=1e-9, abs=1e-9)


def test_reading_before_start_is_a_harness_bug():
    clock = SlaClock(1)
    with pytest.raises(HarnessBroken, match="start"):
        clock.detected(0)
    with pytest.raises(HarnessBroken, match="start"):
        _ = clock.elapsed_wall


def test_elapsed_wall_is_monotonic():
    clock = started()
    first = clock.elapsed_wall
    assert 0 <= first <= clock.elapsed_wall < 5


def test_summary_reports_both_units_rounded_to_ms():
    clock = started(60)
    clock.detected(clock.injected_at + 0.123456)
    summary = clock.summary()
    assert summary["time_scale"] == 60.0
    assert datetime.fromisoformat(summary["injected_at"]).timestamp() == pytest.approx(clock.injected_at, abs=0.001)
    assert summary["ttd_wall_s"] == 0.123
    assert summary["ttd_aws_s"] == 7.407
    assert summary["ttr_wall_s"] is None and summary["ttr_aws_s"] is None
    assert summary["skew_warning"] is None


def test_summary_before_start():
    assert SlaClock(2).summary()["injected_at"] is None


@pytest.mark.parametrize(("raw", "scale"), [("60", 60.0), (1, 1.0), ("0.5", 0.5), (2.5, 2.5)])
def test_parse_time_scale_accepts_positive_numbers(raw, scale):
    assert parse_time_scale(raw) == scale


@pytest.mark.parametrize("raw", ["0", 0, -1, "fast", "", "nan", "inf", None, True])
def test_parse_time_scale_rejects_the_rest_in_one_line(raw):
    with pytest.raises(ConfigError) as caught:
        parse_time_scale(raw)
    message = str(caught.value)
    assert "time scale" in message and "\n" not in message


def test_clock_validates_its_scale():
    with pytest.raises(ConfigError):
        SlaClock(0)
    assert SlaClock("30").time_scale == 30.0
