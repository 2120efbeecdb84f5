"""The one settings module: daphne, the Celery worker, beat and manage.py all load it.

Everything that differs between a laptop and production comes from environment variables. With
none set, the project runs embedded: SQLite under var/, kombu's filesystem broker, an in-memory
channel layer, and secrets generated once into var/.
"""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import environ
import structlog
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    env_bool,
    env_float,
    env_int,
    env_list,
    env_mapping,
    env_stdio_servers,
    env_str,
    env_url,
)
from config.logfilters import redact_secrets

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _persisted_secret(filename: str, make: Callable[[], str]) -> str:
    """Generate a secret on first use and keep it in var/, so restarts keep sessions and data.

    Opened with O_EXCL so that web, worker and beat starting together agree on one value.
    """
    path = VAR_DIR / filename
    try:
        with path.open("x") as handle:
            handle.write(make())
    except FileExistsError:
        pass
    return path.read_text().strip()


DEBUG = env_bool("DEBUG", default=False)
SECRET_KEY = env_str("SECRET_KEY") or _persisted_secret(
    "secret_key", lambda: secrets.token_urlsafe(50)
)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# Credentials are encrypted with keys of their own, not derived from SECRET_KEY, so either can
# be rotated without the other. The first key encrypts; all of them decrypt.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", []) or [
    _persisted_secret("field_encryption_key", lambda: Fernet.generate_key().decode())
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "django_htmx",
    "csp",
    "axes",
    "core",
    "orchestrator",
    "runs",
    "approvals",
    "gallery",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "orchestrator.middleware.BodySizeLimitMiddleware",
    "orchestrator.middleware.NulInUrlMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Sends the Content-Security-Policy the public pages set (gallery.content_policy).
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",  # last: it turns a refused sign-in into the lockout page
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.pages.workspace",
                "approvals.pages.open_approvals",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------------------
# SQLite is shared by three processes in the embedded profile: WAL lets readers run beside the
# writer, IMMEDIATE takes the write lock at BEGIN (no upgrade deadlocks), and the busy timeout
# makes a writer wait instead of failing with "database is locked".
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}")
try:
    _db = environ.Env.db_url_config(DATABASE_URL)
except Exception as exc:  # environ raises several types for a malformed URL
    raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from exc
# django-environ passes an unknown scheme through as the engine's name, and Django's own error
# for it does not name the variable; only the two databases the project runs on are accepted.
if _db["ENGINE"] not in ("django.db.backends.sqlite3", "django.db.backends.postgresql"):
    raise ImproperlyConfigured(
        "DATABASE_URL must be sqlite:///<path> or postgres://user:password@host:port/name, "
        f"not {DATABASE_URL!r}"
    )
if _db["ENGINE"] == "django.db.backends.sqlite3":
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # A file, not memory, so a Celery worker started by a test shares the test database.
    _db["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:
    _db["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 0, minimum=0)
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis, Celery, Channels ---------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://")):
    # Celery, Channels and the cache each read it; any other scheme failed only at first use.
    raise ImproperlyConfigured(
        f"REDIS_URL must be redis://host:port/db or rediss://..., not {REDIS_URL!r}"
    )

if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1500, "expiry": 30},
        }
    }
    # Rate limits and the reaper's resend marks must hold across processes (gunicorn workers,
    # worker pool children): in each process's memory, a limit of N became N per process.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "orchestrator"),
        }
    }
else:
    _broker_dir = VAR_DIR / "broker"
    (_broker_dir / "queue").mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT = "config.broker:Transport"  # writes each message atomically
    # The default 1 s polling ran ~3 tasks/s; 50 ms keeps the embedded profile responsive.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.05,
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    # This transport has no event loop, so prefork would run billiard's threaded pool, whose
    # children share one lock on the task queue: a child killed while holding it (the OOM
    # killer, a SIGKILL) left the other children waiting on it for good, and the worker took
    # no task again (tests/fault/test_killed_workers.py). A thread pool has no such lock.
    CELERY_WORKER_POOL = "threads"

CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup would close every database connection around every task, so each task
# opened a new PostgreSQL session; config/celery.py recycles them by CONN_MAX_AGE instead.
CELERY_DB_REUSE_MAX = 1_000_000_000
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
REAPER_INTERVAL_S = env_float("REAPER_INTERVAL_S", 5.0)
# How often beat prunes finished runs past their retention (runs.services.retention).
RETENTION_INTERVAL_S = env_float("RETENTION_INTERVAL_S", 3600.0)
CELERY_BEAT_SCHEDULE = {
    "reap-runs": {"task": "runs.tasks.reap", "schedule": REAPER_INTERVAL_S},
    "prune-runs": {"task": "runs.tasks.prune_runs", "schedule": RETENTION_INTERVAL_S},
}
CELERY_TIMEZONE = "UTC"

# --- API ------------------------------------------------------------------------------------
# The tenancy models `core` authenticates and scopes by; named, like AUTH_USER_MODEL, because
# `core` imports no domain app (see core/tenancy.py).
ORGANIZATION_MODEL = "orchestrator.Organization"
MEMBERSHIP_MODEL = "orchestrator.Membership"
API_TOKEN_MODEL = "orchestrator.ApiToken"
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.BearerTokenAuthentication",
        "core.auth.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["core.permissions.HasTenantRole"],
    "DEFAULT_PARSER_CLASSES": ["orchestrator.parsers.LimitedJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.renderers.FastJSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.ItemsCursorPagination",
    "DEFAULT_FILTER_BACKENDS": ["core.api.filtering.StrictFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "core.api.schema.ErrorAutoSchema",
    "EXCEPTION_HANDLER": "core.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "core.throttling.AnonymousRateThrottle",
        "core.throttling.TokenRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("THROTTLE_ANON", "120/min"),
        "user": env_str("THROTTLE_USER", "6000/min"),
        "webhook": env_str("THROTTLE_WEBHOOK", "600/min"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "DATETIME_FORMAT": "%Y-%m-%dT%H:%M:%S.%fZ",
    "COERCE_DECIMAL_TO_STRING": False,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Orchestrator API",
    "DESCRIPTION": "Build, run and observe agent orchestrations. Errors always have the body "
    '`{"error": "<code>", "detail": "<sentence>", "fields": {...}}`.',
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": "/api/v1",
    "PREPROCESSING_HOOKS": ["core.api.schema.strip_trailing_slashes"],
    "ENUM_NAME_OVERRIDES": {
        "TriggerKindEnum": "orchestrator.choices.TRIGGER_ROW_CHOICES",
        "CredentialKindEnum": "orchestrator.choices.CredentialKind",
        "OrchestrationStatusEnum": "orchestrator.choices.OrchestrationStatus",
    },
}

# Bodies larger than this are refused with 413 before they are parsed.
API_MAX_BODY_BYTES = env_int("API_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1024)
WEBHOOK_MAX_BODY_BYTES = env_int("WEBHOOK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES

# --- Product settings --------------------------------------------------------------------
# The model of agents that say `model: default`; builtin/echo keeps the demo offline.
DEFAULT_MODEL = env_str("DEFAULT_MODEL", "builtin/echo")
# Short names a definition may use for a model (`model: sonnet`), resolved when the step runs.
# The environment (`name=provider/model,...`) adds to these or replaces some of them.
MODEL_ALIASES = env_mapping(
    "MODEL_ALIASES",
    {
        "sonnet": "anthropic/claude-sonnet-5-5",
        "opus": "anthropic/claude-opus-5-5",
        "haiku": "anthropic/claude-haiku-5-5",
        "gpt": "openai/gpt-5.5",
        "gpt-mini": "openai/gpt-5.4-mini",
        "gemini": "google/gemini-3.8-flash",
    },
)
SYNC_RUN_TIMEOUT_S = env_float("SYNC_RUN_TIMEOUT_S", 300.0)
HTTP_ALLOWED_NETWORKS = env_list("HTTP_ALLOWED_NETWORKS", [])
# The most of a response's body an http step or the http_get tool reads (see runs.engine.netguard).
HTTP_MAX_RESPONSE_BYTES = env_int("HTTP_MAX_RESPONSE_BYTES", 10 * 1024 * 1024, minimum=1024)
# MCP: how long listing or calling a registered server may take; how long a tools/call on /mcp
# waits for its run before it answers with a link to the run; the stdio servers the operator
# allows (a JSON object name -> {"command", "args", "env"}; none by default).
MCP_CLIENT_TIMEOUT_S = env_float("MCP_CLIENT_TIMEOUT_S", 20.0)
MCP_CALL_WAIT_S = env_float("MCP_CALL_WAIT_S", 60.0)
MCP_STDIO_SERVERS = env_stdio_servers("MCP_STDIO_SERVERS")
METRICS_TOKEN = env_str("METRICS_TOKEN")
# How many runs, and how many steps in all, one fired run and its subflows may create (an
# orchestration's max_runs_per_root / max_steps_per_root settings override them).
MAX_RUNS_PER_ROOT = env_int("MAX_RUNS_PER_ROOT", 100, minimum=1)
MAX_STEPS_PER_ROOT = env_int("MAX_STEPS_PER_ROOT", 1000, minimum=1)
# Days a finished run is kept (an organization's run_retention_days overrides it); 0 keeps all.
RUN_RETENTION_DAYS = env_int("RUN_RETENTION_DAYS", 30, minimum=0)
# Fired runs (each with its subflows) deleted per transaction: small, so no lock is held long.
RETENTION_BATCH_SIZE = env_int("RETENTION_BATCH_SIZE", 200, minimum=1)
# A claimed step whose worker has not reported back this long after its timeout is re-queued.
STEP_LEASE_GRACE_S = env_float("STEP_LEASE_GRACE_S", 30.0)
STEP_DEFAULT_LEASE_S = env_float("STEP_DEFAULT_LEASE_S", 3600.0)
OPENAI_API_KEY = env_str("OPENAI_API_KEY")
ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
GOOGLE_API_KEY = env_str("GOOGLE_API_KEY")

# Traces go out over OTLP/HTTP when an endpoint is set; the exporter reads these and the other
# standard OTEL_* variables (headers, timeout, compression) itself.
TRACING_ENABLED = bool(
    env_url("OTEL_EXPORTER_OTLP_ENDPOINT", schemes=("http", "https"))
    or env_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", schemes=("http", "https"))
) and not env_bool("OTEL_SDK_DISABLED", default=False)

# --- Auth, sessions, security --------------------------------------------------------------
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# HTTPS is opt-in: the embedded profile serves plain HTTP on 127.0.0.1 with DEBUG off. Trust
# X-Forwarded-Proto only behind a proxy that sets it; a client reaching the app directly could
# forge it and pass for https.
BEHIND_PROXY = env_bool("BEHIND_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=False)
# Load balancers probe over plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", default=not DEBUG and SECURE_SSL_REDIRECT)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Brute-force limit on /login/ and /admin/login/ (django-axes; see core.logins): after
# LOGIN_FAILURE_LIMIT failed sign-ins of one username from one address, that pair is refused,
# even with the right password, until LOGIN_LOCKOUT_MINUTES pass without another try. Counts
# live in the database, so they hold across processes and restarts; a success clears them.
LOGIN_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
LOGIN_LOCKOUT_MINUTES = env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1)
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_CALLABLE = "core.logins.username_key"
AXES_CLIENT_IP_CALLABLE = "core.logins.client_address"
AXES_LOCKOUT_CALLABLE = "core.logins.lockout_response"
AXES_RESET_ON_SUCCESS = True
# Its banner would open the output of every manage.py command, worker and beat start.
AXES_VERBOSE = False

# --- i18n, static -------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
# The editor's graph packages come from npm (package.json); `core.staticfinders` serves
# the few files the pages load, under /static/vendor/.
NODE_MODULES_DIR = Path(env_str("NODE_MODULES_DIR", str(BASE_DIR / "node_modules")))
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    "core.staticfinders.NpmFinder",
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": env_str(
            "STATICFILES_BACKEND", "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = True

# --- Logs -----------------------------------------------------------------------------------
# One line per record, JSON in production (LOG_FORMAT=json, the default with DEBUG off) or
# readable text (console). structlog loggers and plain `logging` ones (Django, Celery, httpx,
# runs.engine) all render through structlog's ProcessorFormatter. merge_contextvars runs when
# the record is formatted, in the thread that logged it, so the run_id and step_id that the tasks
# and runs.services.execution bind reach lines from code that knows nothing of them: the engine
# stays free of Django and structlog.
LOG_FORMAT = env_str("LOG_FORMAT", "console" if DEBUG else "json")
if LOG_FORMAT not in {"json", "console"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, not {LOG_FORMAT!r}")
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
if LOG_LEVEL not in logging.getLevelNamesMapping():
    raise ImproperlyConfigured(f"LOG_LEVEL must be a logging level name, not {LOG_LEVEL!r}")

_LOG_CHAIN = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.add_log_level,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]
structlog.configure(
    processors=[
        structlog.stdlib.filter_by_level,
        *_LOG_CHAIN,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    wrapper_class=structlog.stdlib.BoundLogger,
    cache_logger_on_first_use=True,
)


def _log_formatter(*renderers) -> dict:
    return {
        "()": structlog.stdlib.ProcessorFormatter,
        "foreign_pre_chain": [*_LOG_CHAIN, structlog.stdlib.ExtraAdder()],
        "processors": [
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_secrets,
            *renderers,
        ],
    }


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": _log_formatter(
            structlog.processors.format_exc_info, structlog.processors.JSONRenderer(default=str)
        ),
        # A plain traceback: structlog's default (rich, when installed) prints every frame's
        # local variables, which put credential values into the log, and took minutes and
        # ~90 MB of output for one error holding a large request, stalling the web process.
        "console": _log_formatter(
            structlog.dev.ConsoleRenderer(
                colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
            )
        ),
    },
    "filters": {"quiet_reaper": {"()": "config.logfilters.QuietReaper"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["quiet_reaper"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Django's default config gives "django" handlers of its own (plain text with DEBUG on):
        # drop them so its records reach the root handler once, structured like the rest.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
        "django.db.backends": {"level": "WARNING"},
    },
}
# Celery would otherwise replace the root handler with its own plain-text one in the worker.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
