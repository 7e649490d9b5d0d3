"""The life of a run, one module per concern.

    publish      hand a run's id to the broker (``BrokerUnavailable`` when it is down)
    transitions  every change of a run's status: one conditional UPDATE each
    watch        the heartbeat of every run a process executes, its cancels and losses
    execute      a run executed on the event loop: claimed, run, recorded
    cancel       cancel and retry
    sweep        runs whose worker died, and queued runs nobody took

States: ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``; a queued run may be
cancelled or fail (the broker refused it), and a running one whose worker died goes back to
``queued``. Because every change is one conditional ``UPDATE`` (``WHERE status = …``), two
workers, a worker and the sweeper, or a worker and a cancel never both win.
"""
