"""The life of a run, one module per concern.

    submit       what a caller asks (``RunRequest``) and the one service that submits it
    publish      hand a run's id to the broker (``BrokerUnavailable`` when it is down)
    publish_new  a new queued run published, or failed when the broker refuses it
    dispatch     the tenants' queue: a tenant's queued runs over its cap wait, released oldest first
    transitions  every change of a run's status: one conditional UPDATE each
    watch        the heartbeat of every run a process executes, its cancels and losses
    execute      a run executed on the event loop: claimed, run, recorded
    events, ends a run's events in the store's log, and its end as its row records it
    output       a run as its tenant sees it (the API's answer, a webhook's body)
    cancel       cancel and retry (a paused run's cancel clears its session's pause marker)
    resume       a paused run goes on with a person's answer (sync, streamed or queued)
    sweep        runs whose worker died, queued runs nobody took, paused runs past their TTL

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``, and ``running`` →
``paused`` → (resumed) ``running`` | ``queued`` or ``cancelled``. Every change is one
conditional ``UPDATE`` (``WHERE status = …``), so two workers, a worker and the sweeper, or a
worker and a cancel never both win.

A sync ``POST /run``: ``api.views.runs.RunView.post`` (body checked by ``api.serializers.RunInput``)
→ ``RunRequest`` → ``submit.run_submit`` → ``run_record`` (the Run row inserted ``running``, in an
I/O thread) → ``execute.execute_claimed`` (a task on the process's loop; ``watch`` beats its
heartbeat) → ``agents_app.runner.Runner.execute`` (the session's lock and window, the adapter, the
store's commit) → ``execute._record_success`` → ``transitions.finish`` → ``200``.

A queued run (``"async": true``): the row inserted ``queued`` and, once committed, published
(``publish_new.publish_or_fail``), or held until its tenant's turn (``dispatch``); the view answers
``202``. A worker's ``agents_app.tasks.execute_run`` → ``execute.run_execute`` → ``run_claim``
(``transitions.claim``) → as above. A busy session or a store that is down sends it back to the
queue (``publish.run_republish``). Its end (every end) releases its tenant's next held run.

A run whose adapter returns a ``Pause``: the runner commits it with the session's pause marker
(``agents_app.pauses``), ``execute`` records it (``transitions.pause``) and ends its events with
``paused``; ``resume.run_resume`` (``transitions.resume``) → ``execute.execute_claimed`` →
``Runner.execute_resume`` goes on from it.
"""
