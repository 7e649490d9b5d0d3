"""A session's compaction: a long history summarised, so that runs send the summary and the
recent entries instead of a window that forgets what came before it.

An agent's config asks for it (``"compaction": {"after": 40, "keep": 10, "agent": "summariser"}``):

- ``config``: the option's shape and bounds, checked for every framework when the agent is saved;
- ``window``: where the latest summary is kept (the runner's ``COMPACTION_SCOPE`` of the session's
  state, loaded with every run's window) and the window a run's adapter is given: the summary, then
  the entries it does not cover;
- ``queue``: a run that committed more than ``after`` entries past the summary queues a compaction;
- ``summarise``: the compaction itself (a Celery task's service), outside any run's request.

The history stays whole: a summary is one more entry (kind ``summary``), appended at the end.
"""
