"""scheduler/jobs.yaml: valid, DST-proof, consistent with topics and settings."""

from datetime import date, time

from spreadpilot.domain.calendar import NEW_YORK, ny_datetime
from spreadpilot.platform.schedules import jobs
from spreadpilot.platform.settings import load_settings
from spreadpilot.platform.topology import topology


def _ny_times(job: str, day: date) -> list[time]:
    start, end = ny_datetime(day, time(0)), ny_datetime(day, time(23, 59, 59))
    return [t.astimezone(NEW_YORK).time() for t in jobs()[job].fire_times(start, end)]


def test_signal_poll_fires_every_minute_0927_to_deadline_in_both_dst_regimes() -> None:
    deadline = load_settings().signal_deadline
    for day in (date(2026, 7, 14), date(2026, 11, 24)):
        times = _ny_times("signal-poll", day)
        assert times[0] == time(9, 27)
        assert times[-1] == deadline
        assert len(times) == 14


def test_eod_check_has_both_the_normal_and_the_early_close_time() -> None:
    assert _ny_times("eod-check", date(2026, 11, 27)) == [time(12, 45), time(15, 45)]


def test_commission_mail_is_monday_0900_utc() -> None:
    job = jobs()["commission-mail"]
    assert job.time_zone == "Etc/UTC" and job.schedules == ("0 9 * * 1",)


def test_every_job_publishes_to_a_declared_topic_with_a_subscription() -> None:
    topo = topology()
    for job in jobs().values():
        assert job.topic in topo.topics, job.name
        assert topo.subscriptions_of(job.topic), f"{job.topic} would drop {job.name}'s ticks"


def test_every_subscription_has_a_dead_letter_topic_that_is_retained() -> None:
    topo = topology()
    for sub in topo.subscriptions.values():
        if sub.name.endswith("-hold") and sub.topic.endswith("-dead-letter"):
            continue
        assert sub.dead_letter_topic in topo.topics
        assert topo.subscriptions_of(sub.dead_letter_topic), sub.name
