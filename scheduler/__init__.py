"""scheduler — *when* jianfu scans, and what it tells investigators afterwards.

It owns:

- scan plans (``plans``): one TOML file of targets (seed URLs, render mode, depth/page limits,
  a cron expression or interval in China time by default), validated with one-line errors;
- the service (``service``): APScheduler 3 with a persistent SQLAlchemy job store (the store's
  SQLite file by default, any SQLAlchemy URL such as PostgreSQL in production), coalesced
  catch-up of runs missed while it was down, recovery of runs interrupted by a crash;
- the job (``jobs.run_target``): one run of one target = one ``jianfu scan ... --target NAME
  --json`` subprocess with a timeout (Twisted's reactor cannot restart), never two at once per
  target;
- run history (``runs``): start, end, outcome, pages, images, errors and findings new / returned /
  still present / gone, per target; ``jianfu runs``;
- alerts (``alerts``): a durable outbox filled in the same transaction as the run's outcome, only
  for findings that are new or came back and were not dismissed, delivered by e-mail (SMTP)
  and webhook (JSON POST) with retry and backoff, outside the scan path;
- the ``jianfu schedule`` and ``jianfu runs`` commands (``command``).

See docs/scheduler.md and docs/plans.example.toml.
"""
