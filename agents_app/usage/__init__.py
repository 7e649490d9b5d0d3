"""Usage and spend: kept per tenant, day, agent, session and model as each run ends (``record``),
read and priced for ``GET /usage`` and the console (``report``, ``prices``)."""
