"""Budgets: caps on what a tenant's runs use (tokens, spend) per UTC day or month.

``use`` reads a budget's use in its current window from the ``UsageDaily`` rows (never the runs),
priced as ``GET /usage`` prices them; ``check`` refuses a run that starts over a budget
(``BudgetExceeded``, 429 ``budget_exceeded`` with ``Retry-After``); ``alerts`` logs, records and
POSTs an event when a run's end makes a budget cross 80 % and 100 % of a cap.
"""
