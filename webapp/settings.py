"""Django settings, read from the environment that ``jianfu serve`` / ``jianfu users`` set up:

- ``JIANFU_STORE``: the store directory, or a PostgreSQL store URL with ``?files=DIR`` (required;
  the app's files — its SQLite database, secret, plan — then go in that shared file directory);
- ``JIANFU_WEB_DB``: a database URL for the app's own tables (``postgresql://…``); default the
  SQLite file ``<store>/webapp.sqlite3``;
- ``JIANFU_ES_URL`` / ``JIANFU_ES_INDEX``: search Elasticsearch instead of the store's FTS5 index;
- ``JIANFU_PLAN``: the scan plan file (default ``<store>/plans.toml``);
- ``JIANFU_WEB_HOSTS``: host names the app answers to (default: localhost and the ``--host`` address;
  ``*`` for any, e.g. behind a proxy that checks them).

The secret key is made once per store and kept in ``<store>/webapp.secret`` (mode 0600), or taken
from ``JIANFU_WEB_SECRET``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url

from store.backends import split_location

BASE_DIR = Path(__file__).resolve().parent
STORE_LOCATION = os.environ.get("JIANFU_STORE", ".")       # what Store() opens
STORE_DIR = split_location(STORE_LOCATION)[1].resolve()    # the store's files
ES_URL = os.environ.get("JIANFU_ES_URL") or None
ES_INDEX = os.environ.get("JIANFU_ES_INDEX") or None
PLAN_FILE = Path(os.environ.get("JIANFU_PLAN") or STORE_DIR / "plans.toml")


def _secret_key() -> str:
    if os.environ.get("JIANFU_WEB_SECRET"):
        return os.environ["JIANFU_WEB_SECRET"]
    path = STORE_DIR / "webapp.secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        STORE_DIR.mkdir(parents=True, exist_ok=True)
        key = secrets.token_urlsafe(50)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(key)
        return key


SECRET_KEY = _secret_key()
DEBUG = False
# the names the app answers to (DNS rebinding): JIANFU_WEB_HOSTS, set by `jianfu serve` from --host
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("JIANFU_WEB_HOSTS", "localhost,127.0.0.1,[::1]").split(",")
                 if h.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "webapp.apps.WebappConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "webapp.middleware.SecurityHeaders",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "webapp.urls"
WSGI_APPLICATION = "webapp.wsgi.application"

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
                "webapp.access.nav_context",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(os.environ["JIANFU_WEB_DB"], conn_max_age=60)
    if os.environ.get("JIANFU_WEB_DB")
    else {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(STORE_DIR / "webapp.sqlite3"),
        # one writer at a time, taken at BEGIN: the audit chain never forks between processes
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 30,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Login rate limiting (django-axes): 5 failures per user name and address → 15 minutes locked.
AXES_FAILURE_LIMIT = int(os.environ.get("JIANFU_WEB_LOGIN_LIMIT", "5"))
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_LOCKOUT_TEMPLATE = "webapp/locked.html"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 12 * 3600
SESSION_COOKIE_SECURE = os.environ.get("JIANFU_WEB_HTTPS") == "1"
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
CSRF_COOKIE_SAMESITE = "Strict"
CSRF_FAILURE_VIEW = "webapp.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", "简体中文")]
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = None  # nothing collected: WhiteNoise serves the apps' static/ folders through the finders
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True  # serve from the app's static/ directly: nothing to collect
WHITENOISE_AUTOREFRESH = False

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"},
                "axes": {"handlers": ["stderr"], "level": "WARNING"}},
}
