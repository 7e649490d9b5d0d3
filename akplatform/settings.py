"""Settings. The environment is read here and only here (akplatform.env); what each variable
means: the README's Configuration."""

from __future__ import annotations

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from akplatform.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_mapping,
    env_optional,
    env_str,
    env_tenants_of,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("AK_VAR_DIR", str(BASE_DIR / "var")))  # local state: SQLite files, the embedded broker
VAR_DIR.mkdir(parents=True, exist_ok=True)

_DEV_SECRET = "dev-insecure-secret-key-change-me-in-production"  # noqa: S105 - the development default, named as such
SECRET_KEY = env_str("DJANGO_SECRET_KEY", _DEV_SECRET)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
if not DEBUG and SECRET_KEY == _DEV_SECRET:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off (the default): the development key "
        "signs sessions and tokens anyone can forge. For development, set DJANGO_DEBUG=1."
    )

_DEV_SECRETS_KEY = "dev-insecure-secrets-key-change-me-in-production"  # the development default, named as such
AK_SECRETS_KEY = env_str("AK_SECRETS_KEY", _DEV_SECRETS_KEY if DEBUG else "")
AK_SECRETS_OLD_KEYS = env_list("AK_SECRETS_OLD_KEYS", [])
if not DEBUG and AK_SECRETS_KEY in ("", _DEV_SECRETS_KEY):
    raise ImproperlyConfigured(
        "AK_SECRETS_KEY must be set when DJANGO_DEBUG is off (the default): it encrypts the tenants' "
        "secrets, and the development key is public. Use 32 or more random characters; for "
        "development, set DJANGO_DEBUG=1."
    )
if len(AK_SECRETS_KEY) < 32:
    raise ImproperlyConfigured(f"AK_SECRETS_KEY must be at least 32 characters long, got {len(AK_SECRETS_KEY)}.")
if any(len(key) < 32 for key in AK_SECRETS_OLD_KEYS):
    raise ImproperlyConfigured("AK_SECRETS_OLD_KEYS: each key (comma-separated) must be at least 32 characters long.")

# HTTPS behind TLS: the README's production environment sets them all (`check --deploy` is silent).
SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", False)
# Behind a proxy that terminates TLS and sets X-Forwarded-Proto (and strips it from clients).
if env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

INSTALLED_APPS = [
    "console.apps.ConsoleAdminConfig",  # django.contrib.admin with the console's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "sessions_app",
    "agents_app",
    "console.apps.ConsoleConfig",
]

MIDDLEWARE = [
    "infra.request_id.RequestIdMiddleware",  # first: every answer has its X-Request-ID and is counted
    "django.middleware.security.SecurityMiddleware",
    "infra.static_files.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "akplatform.urls"
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "akplatform.wsgi.application"
ASGI_APPLICATION = "akplatform.asgi.application"

# Connections are given back after each blocking call (infra.io_threads), never held while a run
# awaits its model: on PostgreSQL to psycopg's pool, at most DATABASE_POOL_SIZE per process.
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"))}
DATABASE_POOL_SIZE = env_int("DATABASE_POOL_SIZE", 10, minimum=1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["OPTIONS"] = {
        "pool": {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 30},
        # Parameters bound by the server: psycopg prepares the statements a connection runs often.
        "server_side_binding": True,
    }
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 600
    # WAL and a busy timeout let a web process and a worker share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not shared memory, so that tests with threads see real concurrent connections; one
    # per database file, so that suites run at once on different DATABASE_URLs do not collide.
    _db_stem = Path(DATABASES["default"]["NAME"]).stem
    DATABASES["default"]["TEST"] = {
        "NAME": str(VAR_DIR / ("test.sqlite3" if _db_stem == "db" else f"test-{_db_stem}.sqlite3"))
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# WhiteNoise serves the admin's and the API docs' assets from gunicorn too: no internet, no CDN.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- The session store (AK_SESSION__*) -----------------------------------------------------
# A registry of dotted paths, like Django's cache backends; a deployment may add its own.
AK_SESSION_BACKENDS = {
    "in_memory": "sessions_app.stores.memory.InMemoryStore",
    "redis": "sessions_app.stores.redis.RedisStore",
    "dynamodb": "sessions_app.stores.dynamodb.DynamoDBStore",
}
AK_SESSION = {
    "TYPE": env_choice("AK_SESSION__TYPE", "in_memory", AK_SESSION_BACKENDS),
    "TTL": env_int("AK_SESSION__TTL", 604800, minimum=0),
    "LOCK_LEASE": env_float("AK_SESSION__LOCK_LEASE", 30.0, minimum=0.1),
    "LOCK_WAIT": env_float("AK_SESSION__LOCK_WAIT", 120.0, minimum=0.0),
    "WINDOW": env_int("AK_SESSION__WINDOW", 50, minimum=0),
    "IN_MEMORY": {
        "MAX_SESSIONS": env_int("AK_SESSION__IN_MEMORY__MAX_SESSIONS", 10000, minimum=1),
        "SOCKET": env_optional("AK_SESSION__IN_MEMORY__SOCKET"),
    },
    "REDIS": {"URL": env_str("AK_SESSION__REDIS__URL", "redis://localhost:6379")},
    "DYNAMODB": {
        "TABLE_NAME": env_str("AK_SESSION__DYNAMODB__TABLE_NAME", "agent-kernel-sessions"),
        "ENDPOINT_URL": env_optional("AK_SESSION__DYNAMODB__ENDPOINT_URL"),
        "REGION": env_str("AK_SESSION__DYNAMODB__REGION", "us-east-1"),
    },
    # Encryption at rest (sessions_app/stores/sealing.py): the first key encrypts, every one decrypts.
    "ENCRYPTION_KEYS": env_list("AK_SESSION__ENCRYPTION_KEY", []),
}
if any(len(key) < 32 for key in AK_SESSION["ENCRYPTION_KEYS"]):
    raise ImproperlyConfigured("AK_SESSION__ENCRYPTION_KEY: each key (comma-separated) must be 32 characters or more.")
if len(set(AK_SESSION["ENCRYPTION_KEYS"])) != len(AK_SESSION["ENCRYPTION_KEYS"]):
    raise ImproperlyConfigured("AK_SESSION__ENCRYPTION_KEY: a key is listed twice.")

# The default cache keeps rate limits and failed-authentication counts: shared when it is Redis
# (AK_CACHE__URL, or the session store's Redis), else per process. JSON, never pickle.
_CACHE_URL = env_optional("AK_CACHE__URL") or (AK_SESSION["REDIS"]["URL"] if AK_SESSION["TYPE"] == "redis" else None)
CACHES = {
    "default": (
        {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": _CACHE_URL,
            "KEY_PREFIX": env_str("AK_CACHE__PREFIX", "ak:cache"),
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                "SOCKET_CONNECT_TIMEOUT": 2.0,
                "SOCKET_TIMEOUT": 2.0,
                # Limits fail open while the cache's Redis is down (logged), rather than a 500.
                "IGNORE_EXCEPTIONS": True,
            },
        }
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    ),
    "ak_sessions": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": AK_SESSION["REDIS"]["URL"],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.DefaultClient",
            "SOCKET_CONNECT_TIMEOUT": env_float("AK_SESSION__REDIS__CONNECT_TIMEOUT", 2.0, minimum=0.1),
            "SOCKET_TIMEOUT": env_float("AK_SESSION__REDIS__TIMEOUT", 5.0, minimum=0.1),
            "CONNECTION_POOL_KWARGS": {"max_connections": 200, "health_check_interval": 30},
        },
    },
}

# --- Agents and runs (AK_RUN__*, AK_API__*) ------------------------------------------------
# Adapters by name; AK_FRAMEWORKS="name=dotted.Path,..." adds a deployment's own.
AK_FRAMEWORKS = {
    "echo": "agents_app.frameworks.echo.EchoFramework",
    "openai_chat": "agents_app.frameworks.openai_chat.OpenAIChatFramework",
    # Optional libraries (requirements/<framework>.txt): imported by a run, not at start-up.
    "openai_agents": "agents_app.frameworks.openai_agents.OpenAIAgentsFramework",
    "langgraph": "agents_app.frameworks.langgraph.LangGraphFramework",
    "google_adk": "agents_app.frameworks.google_adk.GoogleADKFramework",
    "crewai": "agents_app.frameworks.crewai_framework.CrewAIFramework",
    "pydantic_ai": "agents_app.frameworks.pydantic_ai.PydanticAIFramework",
    "smolagents": "agents_app.frameworks.smolagents.SmolagentsFramework",
    **env_mapping("AK_FRAMEWORKS"),
}
_TOOLS, _GRAPHS = env_mapping("AK_AGENTS__TOOLS"), env_mapping("AK_AGENTS__GRAPHS")
AK_AGENTS = {
    "ALLOW_PRIVATE_URLS": env_bool("AK_AGENTS__ALLOW_PRIVATE_URLS", DEBUG),
    "TIMEOUT": env_float("AK_AGENTS__TIMEOUT", 120.0, minimum=0.1),
    "MAX_CONNECTIONS_PER_TENANT": env_int("AK_AGENTS__MAX_CONNECTIONS_PER_TENANT", 100, minimum=1, maximum=1000),
    "TOOLS": _TOOLS,
    "TOOL_TENANTS": env_tenants_of("AK_AGENTS__TOOL_TENANTS", declared=_TOOLS, declared_in="AK_AGENTS__TOOLS"),
    "GRAPHS": _GRAPHS,
    "GRAPH_TENANTS": env_tenants_of("AK_AGENTS__GRAPH_TENANTS", declared=_GRAPHS, declared_in="AK_AGENTS__GRAPHS"),
    "OPENAI_TRACING": env_bool("AK_AGENTS__OPENAI_TRACING", False),
    # smolagents' CodeAgent runs the Python its model writes: refused unless the deployment names a
    # sandbox, one of smolagents' remote executors (never "local": nothing runs on our machines).
    "SMOLAGENTS_SANDBOX": env_choice("AK_AGENTS__SMOLAGENTS_SANDBOX", "", ("", "blaxel", "docker", "e2b", "modal")),
    # Frameworks whose libraries a process imports as it starts; another's, at its first run there.
    "PRELOAD": env_list("AK_AGENTS__PRELOAD", list(AK_FRAMEWORKS), choices=AK_FRAMEWORKS),
}
AK_RUN = {
    "MAX_MESSAGE_BYTES": env_int("AK_RUN__MAX_MESSAGE_BYTES", 64 * 1024, minimum=1),
    "SESSION_ID_MAX_LENGTH": env_int("AK_RUN__SESSION_ID_MAX_LENGTH", 128, minimum=8, maximum=200),
    "TIME_LIMIT": env_float("AK_RUN__TIME_LIMIT", 600.0, minimum=0.1),
    "HEARTBEAT": env_float("AK_RUN__HEARTBEAT", 5.0, minimum=0.05),
    "HEARTBEAT_TIMEOUT": env_float("AK_RUN__HEARTBEAT_TIMEOUT", 30.0, minimum=0.1),
    "SWEEP_INTERVAL": env_float("AK_RUN__SWEEP_INTERVAL", 10.0, minimum=0.1),
    "MAX_ATTEMPTS": env_int("AK_RUN__MAX_ATTEMPTS", 3, minimum=1),
    "BUSY_RETRY": env_float("AK_RUN__BUSY_RETRY", 0.5, minimum=0.01),
    "UNAVAILABLE_RETRIES": env_int("AK_RUN__UNAVAILABLE_RETRIES", 8, minimum=0),
    "REQUEUE_AFTER": env_float("AK_RUN__REQUEUE_AFTER", 300.0, minimum=1.0),
    "STREAM_CHECK": env_float("AK_RUN__STREAM_CHECK", 60.0, minimum=0.1),
    "WEBHOOK_TIMEOUT": env_float("AK_RUN__WEBHOOK_TIMEOUT", 10.0, minimum=0.1),
    "WEBHOOK_MAX_ATTEMPTS": env_int("AK_RUN__WEBHOOK_MAX_ATTEMPTS", 8, minimum=1),
    "WEBHOOK_RETRY": env_float("AK_RUN__WEBHOOK_RETRY", 2.0, minimum=0.01),
    "WEBHOOK_ALLOW_PRIVATE": env_bool("AK_RUN__WEBHOOK_ALLOW_PRIVATE", DEBUG),
    "PAUSE_TTL": env_float("AK_RUN__PAUSE_TTL", 86400.0, minimum=1.0),
}
# Scheduled runs (agents_app.schedules): how often celery beat looks for due schedules, in seconds.
AK_SCHEDULES = {"CHECK_INTERVAL": env_float("AK_SCHEDULES__CHECK_INTERVAL", 1.0, minimum=0.1)}
# Limits per tenant (infra.limits): the defaults; a tenant's own, set in the admin, win. 0 = unlimited.
AK_LIMITS = {
    "AGENTS": env_int("AK_LIMITS__AGENTS", 100, minimum=0),
    "SECRETS": env_int("AK_LIMITS__SECRETS", 100, minimum=0),
    "SCHEDULES": env_int("AK_LIMITS__SCHEDULES", 100, minimum=0),
    "SESSIONS": env_int("AK_LIMITS__SESSIONS", 100000, minimum=0),
    "CONCURRENT_RUNS": env_int("AK_LIMITS__CONCURRENT_RUNS", 1000, minimum=0),
    "EVENT_STREAMS": env_int("AK_LIMITS__EVENT_STREAMS", 50, minimum=0),
    # Queued runs a tenant has handed to the broker and not ended (agents_app.runs.dispatch): its
    # other queued runs wait in the database, so that no tenant's backlog is ahead of another's.
    # 500: one worker's concurrency (CELERY_WORKER_CONCURRENCY), so one tenant's burst still fills a worker.
    "RUNS_IN_FLIGHT": env_int("AK_LIMITS__RUNS_IN_FLIGHT", 500, minimum=0),
    "RETRY_AFTER": env_int("AK_LIMITS__RETRY_AFTER", 1, minimum=1),
    "STREAM_LEASE": env_int("AK_LIMITS__STREAM_LEASE", 60, minimum=5),
}
# Threads per process for blocking calls (the ORM, the store's clients): infra.io_threads.
AK_IO_THREADS = env_int("AK_IO_THREADS", 16, minimum=1, maximum=200)

# Bodies a little over the message limit still parse, so the view can answer 413 itself.
DATA_UPLOAD_MAX_MEMORY_SIZE = AK_RUN["MAX_MESSAGE_BYTES"] * 6 + 64 * 1024

DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True

AK_API = {
    "AUTH_FAILURE_LIMIT": env_int("AK_API__AUTH_FAILURE_LIMIT", 20, minimum=1),
    "AUTH_FAILURE_WINDOW": env_int("AK_API__AUTH_FAILURE_WINDOW", 600, minimum=1),
    "KEY_CACHE_SECONDS": env_float("AK_API__KEY_CACHE_SECONDS", 10.0, minimum=0.0),
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["agents_app.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],  # a tenant's key
    "DEFAULT_THROTTLE_CLASSES": ["agents_app.api.throttling.TenantRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {"tenant": env_str("AK_API__THROTTLE_RATE", "6000/min")},
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["agents_app.api.parsers.JSONParser"],  # bounds the depth
    # drf-spectacular's, with every operation's errors documented.
    "DEFAULT_SCHEMA_CLASS": "agents_app.api.schema.AutoSchema",
    "EXCEPTION_HANDLER": "agents_app.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "AK Platform API",
    "DESCRIPTION": "Multi-tenant sessions and runs for AI agents.",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_AUTHENTICATION": [],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Request bodies get components of their own, where a string that may not be blank says minLength 1.
    "COMPONENT_SPLIT_REQUEST": True,
}

# --- Celery (CELERY_*) ---------------------------------------------------------------------
# Without CELERY_BROKER_URL: kombu's filesystem transport under var/, a queue that needs no server.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "infra.filesystem_broker:Transport"  # each message written whole
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_FOLDER / "queue"),
        "data_folder_out": str(CELERY_BROKER_FOLDER / "queue"),
        "processed_folder": str(CELERY_BROKER_FOLDER / "processed"),
        "control_folder": str(CELERY_BROKER_FOLDER / "control"),  # kombu's default is ./control
        "store_processed": False,
        "polling_interval": 0.1,  # the default 1 s would be most of a run's latency in `make run`
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Redis hands an unacked task to another worker after this long; it must outlast a run.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": int(AK_RUN["TIME_LIMIT"]) + 300}
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 2.0, minimum=0.1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publishing gives up quickly: POST /run answers 503 rather than hang on a broker that is down.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0.1, "interval_step": 0.2, "interval_max": 0.5}
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A plain `celery -A akplatform worker` carries many runs at once: Celery's threads pool, whose
# threads hand each run to the process's event loop and wait for its end (agents_app.tasks).
CELERY_WORKER_POOL = env_choice("CELERY_WORKER_POOL", "threads", ["threads", "prefork", "solo"])
CELERY_WORKER_CONCURRENCY = env_int("CELERY_WORKER_CONCURRENCY", 500, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-runs": {"task": "agents_app.tasks.sweep_runs", "schedule": AK_RUN["SWEEP_INTERVAL"]},
    # Every beat sends it (several may run): the firing's conditional UPDATE makes one run per due
    # time. One not taken within a few checks is dropped: the next one fires what it would have.
    "fire-schedules": {
        "task": "agents_app.tasks.fire_schedules",
        "schedule": AK_SCHEDULES["CHECK_INTERVAL"],
        "options": {"expires": max(5.0, AK_SCHEDULES["CHECK_INTERVAL"] * 5)},
    },
    "purge-expired-sessions": {
        "task": "sessions_app.tasks.purge_expired_sessions",
        "schedule": env_float("AK_SESSION__PURGE_INTERVAL", 3600.0, minimum=1.0),
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None

# --- Metrics and logs (AK_METRICS__*, AK_LOG_*) -------------------------------------------------
AK_METRICS = {
    "TOKEN": env_optional("AK_METRICS__TOKEN"),
    "MULTIPROC_DIR": env_optional("PROMETHEUS_MULTIPROC_DIR"),
}
if AK_METRICS["TOKEN"] is not None and len(AK_METRICS["TOKEN"]) < 32:  # the message says how long, never what
    raise ImproperlyConfigured(f"AK_METRICS__TOKEN must be at least 32 characters long, got {len(AK_METRICS['TOKEN'])}")
if AK_METRICS["MULTIPROC_DIR"] is not None:
    Path(AK_METRICS["MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)  # the metrics' files go there from import on

AK_LOG_CONTENT = env_bool("AK_LOG__CONTENT", False)
# The debug page and error reports mask the password of every URL (settings, local variables).
DEFAULT_EXCEPTION_REPORTER_FILTER = "infra.error_reports.ExceptionReporterFilter"
AK_LOG_FORMAT = env_choice("AK_LOG_FORMAT", "text", ["text", "json"])
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"()": "infra.logs.TextFormatter", "fmt": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "infra.logs.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": AK_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": env_str("AK_LOG_LEVEL", "INFO")},
    # httpx logs each model call, Celery each task received and done, at INFO: less than the
    # run's own line (runs.transitions) says. Their warnings and errors stay.
    "loggers": {
        name: {"level": "WARNING"}
        for name in ("django.db.backends", "httpx", "httpx2", "celery.worker.strategy", "celery.app.trace")
    },
}
# Django's lines go to the root's handler only: its default handler would repeat them unformatted.
LOGGING["loggers"]["django"] = {"level": "INFO"}
# Google ADK logs a failed run's exception whole, whose message may quote a model server's error (and
# the key it was sent) or a user's words; the run's own line (runs.execute) says it failed, message withheld.
LOGGING["loggers"]["google_adk"] = {"level": "CRITICAL"}
