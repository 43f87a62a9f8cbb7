"""Cron schedules: fire times (``cron``), the scheduler service (``scheduler``) and what starts a
scheduled execution on each runtime (``starters``)."""
