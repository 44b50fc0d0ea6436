"""The one back-off policy: exponential from `initial` up to `maximum`, the other side's wait wins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from monitor.retry import RetryPolicy

POLICY = RetryPolicy(initial=timedelta(seconds=5), maximum=timedelta(seconds=60))


class TestRetryPolicy:
    @pytest.mark.parametrize(
        ("attempts", "seconds"),
        [(1, 5), (2, 10), (3, 20), (4, 40), (5, 60), (50, 60), (10_000, 60)],
    )
    def test_exponential_back_off_up_to_the_maximum(self, attempts: int, seconds: float) -> None:
        assert POLICY.delay(attempts) == timedelta(seconds=seconds)

    def test_retry_after_wins_when_longer(self) -> None:
        assert POLICY.delay(1, retry_after=35) == timedelta(seconds=35)
        assert POLICY.delay(1, retry_after=600) == timedelta(seconds=600)

    def test_retry_after_shorter_than_back_off_keeps_the_back_off(self) -> None:
        assert POLICY.delay(3, retry_after=2) == timedelta(seconds=20)

    def test_sub_second_steps_stay_exact(self) -> None:
        fetch = RetryPolicy(initial=timedelta(seconds=0.5), maximum=timedelta(seconds=4))
        assert [fetch.delay(n).total_seconds() for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
