"""gunicorn's settings for the web tier: `gunicorn akplatform.asgi:application [-b HOST:PORT] [-w N]`.

ASGI on uvicorn's workers: each process serves its requests on one event loop, so a sync
`POST /run` awaits its model without holding a thread (see akplatform/aio.py). One process per
core is enough to carry hundreds of runs at once; `-w` (or WEB_CONCURRENCY) changes it.
"""

import os

worker_class = "uvicorn_worker.UvicornWorker"
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 1))
bind = ["127.0.0.1:8000"]
# A worker that does not answer gunicorn's heartbeat for this long is restarted. Requests
# themselves are not timed here: a sync run ends by AK_RUN__TIME_LIMIT.
timeout = 60
graceful_timeout = 30
keepalive = 75  # past common load balancers' idle timeouts, so they close first
backlog = 2048
