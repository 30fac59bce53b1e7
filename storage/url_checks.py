"""Checks of the URLs in the settings, made when the settings load.

A URL that cannot work is refused there, with what is wrong and what to write instead, rather
than half a minute later in a worker or a sweep. Each check returns the URL unchanged or raises
``ValueError`` (pydantic turns it into the setting's error). Whether the server behind a URL
answers is not checked here: that is for the first use (``BrokerUnavailable``,
``DatabaseUnavailable``).
"""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qs, urlsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

# kombu's Redis transports, and its in-process one (tests and single-process use); RabbitMQ
# through py-amqp. Other brokers (SQS, ...) are not supported (see bus.brokers).
REDIS_SCHEMES = ("redis", "rediss", "unix")
AMQP_SCHEMES = ("amqp", "amqps", "pyamqp")
BROKER_SCHEMES = ("redis", "rediss", "redis+socket", "memory", *AMQP_SCHEMES)
SHARED_STATE_SCHEMES = (*REDIS_SCHEMES, "memory")
DATABASE_DRIVERS = (
    "postgres",
    "postgresql",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "sqlite",
)


def _split(url: str, schemes: tuple[str, ...], example: str) -> SplitResult:
    if "://" not in url:
        raise ValueError(f"{url!r} is not a URL: write it as {example}")
    parts = urlsplit(url)
    if parts.scheme not in schemes:
        raise ValueError(
            f"the scheme {parts.scheme!r} of {_shown(url)} is not one of "
            f"{', '.join(s + '://' for s in schemes)}; write it as {example}"
        )
    try:
        parts.port  # noqa: B018 - reading it is the check: it raises on a port that is no number
    except ValueError:
        raise ValueError(
            f"the port of {_shown(url)} is not a number 0..65535; write it as {example}"
        ) from None
    return parts


def check_redis_url(url: str, schemes: tuple[str, ...] = SHARED_STATE_SCHEMES) -> str:
    """A Redis URL: ``redis://[:password@]host[:port][/db]``, ``rediss://`` (TLS),
    ``unix:///path.sock[?db=N]``; ``memory://`` where the caller allows it."""
    example = "redis://host:6379/0"
    parts = _split(url, schemes, example)
    if parts.scheme in ("memory",):
        return url
    db_text = parts.path.strip("/") if parts.scheme in ("redis", "rediss") else ""
    db_values = parse_qs(parts.query).get("db", [])
    for given in ([db_text] if db_text else []) + db_values:
        if not given.isdigit():
            raise ValueError(
                f"the database number {given!r} of {_shown(url)} is not a whole number; "
                f"write it as {example} (0 is Redis's default)"
            )
    if parts.scheme in ("redis", "rediss") and not parts.hostname:
        raise ValueError(f"{_shown(url)} names no host; write it as {example}")
    return url


def check_broker_url(url: str) -> str:
    """A Redis URL (as ``check_redis_url``) or a RabbitMQ one:
    ``amqp://user:password@host[:port]/[vhost]`` (``amqps://`` with TLS)."""
    example = "amqp://user:password@host:5672/vhost"
    if url.split("://", 1)[0] not in AMQP_SCHEMES:
        return check_redis_url(url, BROKER_SCHEMES)
    parts = _split(url, BROKER_SCHEMES, example)
    if not parts.hostname:
        raise ValueError(f"{_shown(url)} names no host; write it as {example}")
    return url


def check_database_url(url: str) -> str:
    """A SQLAlchemy URL of PostgreSQL (any spelling; psycopg 3 is used) or SQLite."""
    example = "postgresql://user@host:5432/dbname"
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ValueError(
            f"{_shown(url)} is not a database URL; write it as {example} or sqlite:///path.db"
        ) from None
    if parsed.drivername not in DATABASE_DRIVERS:
        raise ValueError(
            f"the database {parsed.drivername!r} of {_shown(url)} is not supported: write "
            f"{example} (PostgreSQL, in production) or sqlite:///path.db"
        )
    if parsed.drivername != "sqlite" and not parsed.database:
        raise ValueError(f"{_shown(url)} names no database; write it as {example}")
    return url


def check_http_url(url: str) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    example = "https://host[:port][/path]"
    parts = _split(url, ("http", "https"), example)
    if not parts.hostname:
        raise ValueError(f"{_shown(url)} names no host; write it as {example}")
    return url


def without_password(url: str) -> str:
    """``url`` with any password in it replaced by ``***``, to be shown or logged."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, _, host = rest.rpartition("@")
        user, has_password, _ = credentials.partition(":")
        return f"{scheme}://{user}{':***' if has_password else ''}@{host}"
    return url


def _shown(url: str) -> str:
    return repr(without_password(url))
