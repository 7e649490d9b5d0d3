"""The life of a run, one module per concern.

    submit       what a caller asks (``RunRequest``) and the one service that submits it
    publish      hand a run's id to the broker (``BrokerUnavailable`` when it is down)
    transitions  every change of a run's status: one conditional UPDATE each
    watch        the heartbeat of every run a process executes, its cancels and losses
    execute      a run executed on the event loop: claimed, run, recorded
    events, ends a run's events in the store's log, and its end as its row records it
    output       a run as its tenant sees it (the API's answer, a webhook's body)
    cancel       cancel and retry
    sweep        runs whose worker died, and queued runs nobody took

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``; a queued run may be
cancelled or fail (the broker refused it), and a running one whose worker died goes back to
``queued``. Because every change is one conditional ``UPDATE`` (``WHERE status = …``), two
workers, a worker and the sweeper, or a worker and a cancel never both win.

A sync ``POST /run``, hop by hop:

1. ``akplatform.asgi`` → ``agents_app.api.urls`` → ``agents_app.api.views.runs.RunView.post``: the
   body checked by ``agents_app.api.serializers.RunInput``, made a ``runs.submit.RunRequest``.
2. ``runs.submit.run_submit`` → ``run_record`` (in an I/O thread, ``infra.io_threads.db``):
   ``agents_app.services.agent_get``, ``agents_app.limits.concurrent_runs_check``,
   ``sessions_app.services.session_open``; the Run row inserted ``running``.
3. ``runs.execute.execute_claimed``, a task on the process's loop: ``runs.watch`` beats its
   heartbeat, ``runs.events.RunEvents`` takes its events.
4. ``agents_app.runner.Runner.execute``: the session's lock and window from the store
   (``sessions_app.stores``), the adapter (``agents_app.frameworks``), the store's commit.
5. ``runs.execute._record_success``: ``sessions_app.services.session_record_commit``, then
   ``runs.transitions.finish`` (which queues a webhook, ``agents_app.webhooks``); then
   ``RunEvents.end``: the last events to the store's log.
6. Back in ``RunView.post``: ``200 {"result", "session_id", "run_id"}``.

A queued run (``"async": true``):

1. As 1-2 above, the row inserted ``queued``; once it is committed, ``runs.publish.publish_or_fail``
   sends ``agents_app.tasks.execute_run`` to the broker; the view answers ``202``.
2. A worker: ``agents_app.tasks.execute_run`` → ``infra.io_threads.loop_thread`` →
   ``runs.execute.run_execute`` → ``run_claim`` (``runs.transitions.claim``, one
   ``UPDATE … RETURNING``; ``agents_app.limits.claim_over_limit``) → steps 3-5 above. A busy
   session or a store that is down sends it back to the queue (``runs.publish.run_republish``).
3. The client reads it: ``GET /runs/<id>`` (``RunDetailView`` → ``agents_app.selectors.run_get``
   → ``runs.output.RunOutput``), ``GET /runs/<id>/events`` (``RunEventsView`` →
   ``agents_app.selectors.run_events``, ``runs.ends``), or its webhook
   (``agents_app.tasks.deliver_webhook`` → ``agents_app.webhooks.webhook_deliver``).
"""
