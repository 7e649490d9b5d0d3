"""Scheduled runs: a tenant's agent run on a cron expression (in a time zone) or once, at a time.

``timing`` computes when a schedule fires; ``services`` makes, changes and reads schedules (every
read scoped to the tenant); ``firing`` turns each due time into exactly one queued run, called every
``AK_SCHEDULES__CHECK_INTERVAL`` seconds by celery beat (``agents_app.tasks.fire_schedules``).
"""
