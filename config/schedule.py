"""The beat schedule (settings `CELERY_BEAT_SCHEDULE`) said in words, as beat reads it: printed by
`make run` (config/run.py) and `manage.py beat_schedule`, and shown on the status page (`/status/`),
so an operator sees when the nightly audit and the annual reset run without reading the settings."""

from dataclasses import dataclass


@dataclass(frozen=True)
class Job:
    name: str  # The schedule's entry, e.g. "nightly-audit".
    task: str  # The Celery task it sends.
    when: str  # "every 5 s", "daily at 02:30 Asia/Shanghai".


def schedule_jobs() -> list[Job]:
    from django.conf import settings

    jobs = []
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        every = entry["schedule"]
        if isinstance(every, (int, float)):
            when = f"every {every:g} s"
        elif len(every.hour) == 1 and len(every.minute) == 1 and len(every.day_of_week) == 7:
            when = f"daily at {min(every.hour):02d}:{min(every.minute):02d} {settings.CELERY_TIMEZONE}"
        else:
            when = f"{every} {settings.CELERY_TIMEZONE}"
        jobs.append(Job(name=name, task=entry["task"], when=when))
    return jobs


def schedule_lines() -> list[str]:
    return [f"  {job.name:<22} {job.task:<38} {job.when}" for job in schedule_jobs()]
