"""Settings of the pgregion ORM driver suite's Django project (issue 18).

The database is pgregion, given by the environment:
  PGREGION_HOST (127.0.0.1), PGREGION_PORT (required), PGREGION_USER (app),
  PGREGION_PASSWORD (secret), PGREGION_DB (appdb),
  PGREGION_OPTIMISTIC=off  adds startup options=-c pgregion.optimistic=off.
Everything else is what a Django 3.2 application on PostgreSQL uses by default, plus
ATOMIC_REQUESTS: each request runs in one transaction, reads included.
"""

import os

SECRET_KEY = "pgregion-orm-driver-suite-not-secret"
DEBUG = False  # DEBUG would keep every query in memory
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = ["shop"]
MIDDLEWARE = []
ROOT_URLCONF = "pgr_site.urls"

_options = {"connect_timeout": 10}
if os.environ.get("PGREGION_OPTIMISTIC") == "off":
    _options["options"] = "-c pgregion.optimistic=off"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",  # psycopg2
        "HOST": os.environ.get("PGREGION_HOST", "127.0.0.1"),
        "PORT": os.environ["PGREGION_PORT"],
        "USER": os.environ.get("PGREGION_USER", "app"),
        "PASSWORD": os.environ.get("PGREGION_PASSWORD", "secret"),
        "NAME": os.environ.get("PGREGION_DB", "appdb"),
        "ATOMIC_REQUESTS": True,
        # One connection per thread for its whole life: the request runner's threads are
        # the "users", each in one pgregion session (its read-your-writes token).
        "CONN_MAX_AGE": None,
        "OPTIONS": _options,
    }
}

LOGGING = {"version": 1, "disable_existing_loggers": False}
