"""One environment-driven settings module. Every knob an operator turns is an environment variable.

DATABASE_URL       default sqlite:///var/db.sqlite3; production: postgres://...
CELERY_BROKER_URL  default filesystem:// (folders under var/broker/); production: redis://...
SECRET_KEY         required when DEBUG is off; generated into var/secret_key for local use
DEBUG              default on (a local, single-machine install); set DEBUG=0 in production
ALLOWED_HOSTS      comma-separated; default localhost names
MEDIA_ROOT         where uploaded images and weights are stored (default var/media)
MEDIA_STORAGE      s3://bucket[/prefix] to store media in an S3-compatible bucket instead (boto3's AWS_*
                   variables give credentials, region and endpoint); checked by `manage.py check --deploy`
VAR_DIR            where the embedded defaults live (default ./var)
IMPORT_BUCKETS     s3://bucket/prefix URLs (comma-separated) that imports may read, for frames a deployment
                   drops into a bucket
COCO_WEIGHTS_DIR   where torchvision's COCO weights files lie, for a project's first model (default
                   torch.hub's cache: $TORCH_HOME/hub/checkpoints, else ~/.cache/torch/hub/checkpoints)
EMAIL_HOST         an SMTP server: members are e-mailed about mentions, send-backs and assignments
                   (EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD, DEFAULT_FROM_EMAIL; SITE_URL for links)
"""
import os
from datetime import timedelta
from pathlib import Path

from kombu import Queue

from project.env import (
    broker_config, broker_transport, database_config, env_bool, env_list, import_buckets, media_storage, secret_key,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var")).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# --- Core -------------------------------------------------------------------------------------
DEBUG = env_bool(os.environ, "DEBUG", default=True)
SECRET_KEY = secret_key(os.environ, DEBUG, VAR_DIR)
ALLOWED_HOSTS = env_list(os.environ, "ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list(os.environ, "CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "workers",
    "review",
    "inference",
    "training",
    "datasets",
    "webhooks",
]

MIDDLEWARE = [
    "project.middleware.RequestSizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

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
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {"default": database_config(os.environ.get("DATABASE_URL"), VAR_DIR)}

# --- Auth -------------------------------------------------------------------------------------
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "review:project_list"
LOGOUT_REDIRECT_URL = "login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Files ------------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", BASE_DIR / "staticfiles"))
# Locally (DEBUG) WhiteNoise serves straight from static/ without collectstatic.
WHITENOISE_USE_FINDERS = DEBUG
# Media is never served by URL: review.views streams it to project members only.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", VAR_DIR / "media"))
MEDIA_URL = None
STORAGES = {
    "default": media_storage(os.environ.get("MEDIA_STORAGE")),
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads: one request never holds more than this in memory; larger parts spill to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
MAX_IMAGE_BYTES = int(os.environ.get("MAX_IMAGE_BYTES", 50 * 1024 * 1024))
# Refuse decompression bombs before decoding: 100 megapixels is far above any camera frame we expect.
MAX_IMAGE_PIXELS = int(os.environ.get("MAX_IMAGE_PIXELS", 100_000_000))

MAX_WEIGHTS_BYTES = int(os.environ.get("MAX_WEIGHTS_BYTES", 2 * 1024**3))
# Zip uploads: refused from the archive's directory, before anything is read, when over these.
MAX_ARCHIVE_ENTRIES = int(os.environ.get("MAX_ARCHIVE_ENTRIES", 20_000))
MAX_ARCHIVE_BYTES = int(os.environ.get("MAX_ARCHIVE_BYTES", 4 * 1024**3))
# Any request body: the largest archive plus room for the form around it.
MAX_REQUEST_BYTES = int(os.environ.get("MAX_REQUEST_BYTES", MAX_ARCHIVE_BYTES + 64 * 1024**2))
# A COCO file uploaded on its own is parsed in memory.
# Bucket prefixes that imports may read (s3://bucket/prefix, comma-separated); none by default. The
# workers' credentials may reach more than that (the media bucket), which no manager should copy from.
IMPORT_BUCKETS = import_buckets(env_list(os.environ, "IMPORT_BUCKETS", []))
MAX_LABEL_FILE_BYTES = int(os.environ.get("MAX_LABEL_FILE_BYTES", 256 * 1024**2))
# How long an image opened in the editor stays out of other reviewers' "next image" (review/services.py).
REVIEW_HOLD_SECONDS = int(os.environ.get("REVIEW_HOLD_SECONDS", 600))
# "Next image" passes over images that look like one reviewed lately or open in another reviewer's editor
# (a fixed camera's unchanged frames: review/look_alikes.py) until nothing else is left; 0 turns it off.
REVIEW_PASS_LOOK_ALIKES = os.environ.get("REVIEW_PASS_LOOK_ALIKES", "1") == "1"

# --- Login throttling (django-axes) --------------------------------------------------------------
# After AXES_FAILURE_LIMIT wrong passwords for one username from one address, that pair is refused
# (429) for AXES_COOLOFF_MINUTES; attempts are kept in the database, so every web process agrees.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = int(os.environ.get("AXES_FAILURE_LIMIT", 5))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AXES_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# Forgot-your-password e-mails (review/password_resets.py): per client address and per e-mail
# address, within a window of minutes.
PASSWORD_RESET_WINDOW_MINUTES = int(os.environ.get("PASSWORD_RESET_WINDOW_MINUTES", 60))
PASSWORD_RESETS_PER_CLIENT = int(os.environ.get("PASSWORD_RESETS_PER_CLIENT", 10))
PASSWORD_RESETS_PER_ADDRESS = int(os.environ.get("PASSWORD_RESETS_PER_ADDRESS", 3))

# --- REST API ---------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous request then gets 401 with a WWW-Authenticate header, not 403.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "review.api_tokens.ApiTokenAuthentication",  # DRF's Token header; keys stored hashed
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "project.api.PagePagination",
    "EXCEPTION_HANDLER": "project.api.exception_handler",
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Detector review API",
    "DESCRIPTION": "Review a detector's predictions, correct them, fine-tune on the corrections and compare "
                   "versions. Authenticate with `Authorization: Token <key>` (make a key at /account/token/).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from our own static files: the app works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "ReviewStatusEnum": "review.models.ReviewStatus",
        "JobStatusEnum": "project.jobs.JobStatus",
        "ImportFormatEnum": "datasets.models.ImportFormat",
        "ExportFormatEnum": "datasets.models.ExportFormat",
        "ExportSourceEnum": "datasets.models.ExportSource",
        "AnnotationSourceEnum": "review.models.AnnotationSource",
        "ModelSourceEnum": "inference.models.ModelSource",
        "ModelExportFormatEnum": "inference.models.ModelExportFormat",
    },
}

# --- Internationalisation ---------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Security (production) --------------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool(os.environ, "SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Celery -----------------------------------------------------------------------------------
CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = broker_config(os.environ.get("CELERY_BROKER_URL"), VAR_DIR)
CELERY_BROKER_TRANSPORT = broker_transport(CELERY_BROKER_URL)
# Job state lives in our own run rows (InferenceRun, TrainingRun), not in a result backend.
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = [Queue("default"), Queue("inference"), Queue("training")]
CELERY_TASK_ROUTES = {
    # Error review's bookkeeping after a saved review: CPU work for any worker, not a GPU one.
    "inference.tasks.box_outcomes_refresh": {"queue": "default"},
    "inference.tasks.rerank_run_execute": {"queue": "default"},  # the same, for a whole project
    "inference.tasks.model_version_deletion_execute": {"queue": "default"},  # rows only, no torch
    "inference.tasks.*": {"queue": "inference"},
    "training.tasks.*": {"queue": "training"},
}
# A task is acknowledged only when it finished, and requeued if its worker process died, so no
# work is lost; the run rows count attempts so a task that kills its worker is failed, not looped.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 3600
CELERY_TASK_TIME_LIMIT = 3660
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
JOB_MAX_ATTEMPTS = int(os.environ.get("JOB_MAX_ATTEMPTS", 3))
# A running job whose worker gave no sign of life for this long is resumed (or failed after
# JOB_MAX_ATTEMPTS) by the stale-run sweeper, which Celery beat runs every JOB_SWEEP_SECONDS.
JOB_STALE_MINUTES = int(os.environ.get("JOB_STALE_MINUTES", 30))
# A job queued this long says what it waits for (project/jobs.py JobRun.waiting): a worker of its queue.
JOB_WAIT_NOTICE_SECONDS = int(os.environ.get("JOB_WAIT_NOTICE_SECONDS", 60))
JOB_SWEEP_SECONDS = int(os.environ.get("JOB_SWEEP_SECONDS", 300))
# Each Celery worker writes its row (queues, running tasks) this often (workers/presence.py); a job that
# waits says from those rows whether its queue has a worker at all. Unseen for 3 beats: stopped.
WORKER_BEAT_SECONDS = float(os.environ.get("WORKER_BEAT_SECONDS", 20))
# A running job's worker process marks it alive this often, however quiet the job itself is
# (project/jobs.py job_heartbeat); keep it well under JOB_STALE_MINUTES.
JOB_HEARTBEAT_SECONDS = float(os.environ.get("JOB_HEARTBEAT_SECONDS", 60))
# Each sweep expires when the next is sent: behind a long import on a busy `default` queue, the
# waiting sweeps are dropped unrun instead of piling up and delaying the jobs queued after them.
_SWEEP = {"schedule": JOB_SWEEP_SECONDS, "options": {"expires": JOB_SWEEP_SECONDS}}
CELERY_BEAT_SCHEDULE = {
    "stale-runs-sweep": {"task": "project.stale_runs_sweep", **_SWEEP},
    "webhook-deliveries-sweep": {"task": "webhooks.tasks.webhook_deliveries_sweep", **_SWEEP},
    "bucket-watches-run": {"task": "datasets.tasks.bucket_watches_run", **_SWEEP},
}
# Images per chunk task of a new inference run. Smaller chunks spread a run over more workers;
# larger ones pay each chunk's start and finish (about 0.1 s of the model's time) less often.
INFERENCE_CHUNK_SIZE = int(os.environ.get("INFERENCE_CHUNK_SIZE", 512))
# Images per model call on CPU workers (GPU workers use each architecture's own default).
INFERENCE_CPU_BATCH_SIZE = int(os.environ.get("INFERENCE_CPU_BATCH_SIZE", 4))
# What runs the model on a CPU worker: "onnxruntime" (the model's ONNX file, made when the worker loads a
# version; 2.7x torch's images/s for SSDlite on 2 cores, bench/onnx_vs_torch.py) or "torch". GPU workers run torch.
INFERENCE_CPU_RUNTIME = os.environ.get("INFERENCE_CPU_RUNTIME", "onnxruntime")
# On a GPU, decode plain JPEGs there with nvjpeg (docs/inference.md); 0 decodes every image with Pillow.
INFERENCE_GPU_DECODE = os.environ.get("INFERENCE_GPU_DECODE", "1") == "1"
# The architecture of a project's first trained model when nobody names one (later runs keep the
# active model's). Empty: Faster R-CNN where this machine has an NVIDIA GPU, SSDlite on a CPU. Set it
# where the web servers that start training runs have no GPU but the workers that train do.
DEFAULT_ARCHITECTURE = os.environ.get("DEFAULT_ARCHITECTURE", "")
# torchvision's COCO weights, where a project's first model can start from (docs/training.md). Never
# downloaded by the app: the folder torchvision itself downloads them to, or where an operator put them.
COCO_WEIGHTS_DIR = Path(os.environ.get("COCO_WEIGHTS_DIR") or Path(
    os.environ.get("TORCH_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch")
    / "hub" / "checkpoints")
# Webhooks may POST to private, loopback and link-local addresses (your own network) only when this
# is on; off, a manager's webhook cannot make the workers call internal services. On by default
# for a local install (DEBUG), off in production unless set.
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool(os.environ, "WEBHOOK_ALLOW_PRIVATE_ADDRESSES", DEBUG)

# --- E-mail -----------------------------------------------------------------------------------
# Members hear of work that waits for them (review/notifications.py): with EMAIL_HOST by SMTP; on a
# local install without it, printed by the worker (console backend); in production without it, off.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", 587))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_SSL = env_bool(os.environ, "EMAIL_USE_SSL", EMAIL_PORT == 465)
EMAIL_USE_TLS = env_bool(os.environ, "EMAIL_USE_TLS", EMAIL_PORT == 587 and not EMAIL_USE_SSL)
EMAIL_TIMEOUT = 30
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend" if DEBUG else "django.core.mail.backends.dummy.EmailBackend"))
EMAIL_FILE_PATH = os.environ.get("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))  # for EMAIL_BACKEND=...filebased...
EMAIL_NOTIFICATIONS = env_bool(os.environ, "EMAIL_NOTIFICATIONS", bool(EMAIL_HOST) or DEBUG)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Detector review <noreply@localhost>")
# The address people open the app at, for the links in e-mails (workers have no request to read it from).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000" if DEBUG else "").rstrip("/")

# --- Logging ----------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}
