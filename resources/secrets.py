"""Credentials in connection URIs stay in the environment: never shown, logged or stored.

A team's tracking server is often given as ``MLFLOW_TRACKING_URI=https://user:password@host``. A URI
travels far: into MLflow's error messages ("API request to https://user:password@host/... failed"), the
Dagster event log and compute logs, the terminal, and the resource config the UI shows. So the
credentials are taken out of it as the definitions load: MLflow gets them from its own basic-auth
variables (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, see MLflow's "Authentication" docs)
and every URI it builds and reports is free of them. Plain Python: no dagster.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit, urlunsplit

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
USERNAME_ENV = "MLFLOW_TRACKING_USERNAME"
PASSWORD_ENV = "MLFLOW_TRACKING_PASSWORD"
# scheme://userinfo@ : the userinfo of any URL in a text.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def redact(text: str) -> str:
    """``text`` with the credentials of every URL in it replaced: ``https://user:pw@h`` becomes
    ``https://user:***@h``, a bare token ``https://tok@h`` becomes ``https://***@h``."""

    def hide(match: re.Match[str]) -> str:
        user, colon, _ = match["userinfo"].partition(":")
        return f"{match['scheme']}{user}:***@" if colon else f"{match['scheme']}***@"

    return _USERINFO.sub(hide, text)


def split_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``uri`` without its userinfo, and the (URL-decoded) user name and password it held."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port is not None else "")
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    user = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    return clean, user, password


def move_tracking_credentials() -> None:
    """Take the credentials out of an http(s) MLFLOW_TRACKING_URI into MLflow's basic-auth variables,
    leaving the URI without them, in this process's environment (and so its children's). Other schemes
    (a database URI such as ``postgresql://user:pw@db/mlflow``) need the credentials in the URI; the
    resource shows them only as the variable's name, and SQLAlchemy masks passwords in its messages."""
    uri = os.environ.get(TRACKING_URI_ENV, "")
    if not uri.lower().startswith(("http://", "https://")):
        return
    clean, user, password = split_credentials(uri)
    if clean == uri:
        return
    if user:
        os.environ[USERNAME_ENV] = user
    if password is not None:
        os.environ[PASSWORD_ENV] = password
    elif user:
        # A bare token as user name (https://token@host) is how some servers take a bearer token.
        os.environ.pop(USERNAME_ENV)
        os.environ["MLFLOW_TRACKING_TOKEN"] = user
    os.environ[TRACKING_URI_ENV] = clean
