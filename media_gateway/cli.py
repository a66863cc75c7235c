"""The `media-gateway` command: serve, run a speech worker, migrate, and manage API keys."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from media_gateway import __version__
from media_gateway.credentials import (
    digests_match,
    display_prefix,
    generate_api_key,
    hash_credential,
    looks_like_api_key,
)
from media_gateway.observability.logging import configure_logging, get_logger
from media_gateway.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from media_gateway.persistence.repositories import ApiKeyRecord, ApiKeyRepository

DEFAULT_SCOPES = ("realtime",)
EXIT_USAGE = 2

log = get_logger("media_gateway.cli")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="media-gateway", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("serve", help="run the gateway (the database must be migrated)")
    commands.add_parser(
        "worker",
        help="run a speech worker on the Kafka bus (MEDIA_GATEWAY_BUS=kafka)",
        description="Run a speech pipeline worker: it joins the workers' consumer group on the Kafka input "
        "topic, answers the sessions of the partitions it owns on their gateways' reply topics, and serves "
        "/health, /ready and /metrics on MEDIA_GATEWAY_HOST:MEDIA_GATEWAY_WORKER_PORT. Start more workers "
        "for more capacity (up to MEDIA_GATEWAY_KAFKA_INPUT_PARTITIONS). Settings: MEDIA_GATEWAY_BUS=kafka, "
        "MEDIA_GATEWAY_KAFKA_BOOTSTRAP_SERVERS, MEDIA_GATEWAY_KAFKA_TOPIC_PREFIX and the other "
        "MEDIA_GATEWAY_KAFKA_* and MEDIA_GATEWAY_WORKER_* variables (see .env.example); no database.",
    )
    commands.add_parser("migrate", help="upgrade the database schema to the latest revision")

    keys = commands.add_parser("keys", help="manage server API keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = key_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="a label for the key, e.g. the backend that uses it")
    create.add_argument(
        "--scopes",
        default=",".join(DEFAULT_SCOPES),
        help="comma-separated policy scopes (default: %(default)s)",
    )
    create.add_argument(
        "--output-file",
        nargs="?",
        const="",
        help="write the key to this file (mode 0600) instead of printing it; without a value, to "
        "MEDIA_GATEWAY_DEV_KEY_FILE",
    )
    create.add_argument(
        "--if-missing",
        action="store_true",
        help="with --output-file: keep the key already in the file if it is still valid",
    )
    key_commands.add_parser("list", help="list keys (never their values)")
    revoke = key_commands.add_parser("revoke", help="revoke a key by id or display prefix")
    revoke.add_argument("key", help="the key id (key_…) or its display prefix (sk_…)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    if args.command in ("serve", "worker"):
        configure_logging(settings.log_level, settings.log_format)
    else:
        # One-shot commands print their results on stdout; keep logs out of that stream.
        configure_logging("warning", settings.log_format, sys.stderr)
    if args.command == "worker":
        return _worker(settings)
    # The database commands import SQLAlchemy here, not at start-up: the worker distribution
    # (ovos-media-gateway-worker) runs `worker` alone and installs no database driver.
    try:
        from media_gateway.persistence.migrate import DatabaseNotMigrated
    except ModuleNotFoundError as exc:
        print(
            f"media-gateway {args.command} needs the gateway's installation (ovos-media-gateway); "
            f"this one has no {exc.name!r}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        if args.command == "serve":
            return _serve(settings)
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
            print(f"database migrated ({settings.database_url.split('://', 1)[0]})")
            return 0
        return asyncio.run(_keys(settings, args))
    except DatabaseNotMigrated as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE


def _serve(settings: Settings) -> int:
    from media_gateway.app import build_app  # the app pulls in aiohttp routes; keep `keys` start-up fast

    tls = None
    if settings.tls_cert_file is not None and settings.tls_key_file is not None:
        from media_gateway.tls import ReloadableTls, TlsFileError

        try:
            tls = ReloadableTls(settings.tls_cert_file, settings.tls_key_file)
        except TlsFileError as exc:
            print(str(exc), file=sys.stderr)
            return EXIT_USAGE
    asyncio.run(_check_migrated(settings))
    app = build_app(settings, drain_on_sigterm=True)
    if tls is None:
        return _run(app, settings, "gateway", settings.port)
    app.cleanup_ctx.append(tls.sighup_context)  # SIGHUP re-reads the certificate and key
    return _run(app, settings, "gateway", settings.port, tls.context)


def _worker(settings: Settings) -> int:
    from media_gateway.worker_app import build_worker_app

    if settings.bus != "kafka":
        print("media-gateway worker needs MEDIA_GATEWAY_BUS=kafka", file=sys.stderr)
        return EXIT_USAGE
    return _run(build_worker_app(settings), settings, "worker", settings.worker_port)


def _run(
    app: web.Application, settings: Settings, name: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> int:
    """Serve `app` (https:// and wss:// with `ssl_context`) until SIGTERM/SIGINT, logging `<name>.starting`,
    `.listening` and `.stopped`."""
    scheme = "http" if ssl_context is None else "https"
    log.info(f"{name}.starting", host=settings.host, port=port, scheme=scheme, version=__version__)
    web.run_app(
        app,
        host=settings.host,
        port=port,
        ssl_context=ssl_context,
        shutdown_timeout=settings.shutdown_timeout_seconds,
        access_log=None,  # observe_middleware (the gateway's) writes one structured line per request
        print=lambda message: log.info(f"{name}.listening", detail=message.strip()),
        handle_signals=True,
    )
    log.info(f"{name}.stopped")
    return 0


async def _check_migrated(settings: Settings) -> None:
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.migrate import require_migrated

    database = Database(settings.database_url)
    try:
        await require_migrated(database)
    finally:
        await database.dispose()


async def _migrate(settings: Settings) -> None:
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.migrate import upgrade_to_head

    database = Database(settings.database_url)
    try:
        await upgrade_to_head(database)
    finally:
        await database.dispose()


async def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from media_gateway.persistence.database import Database
    from media_gateway.persistence.errors import AmbiguousRecord
    from media_gateway.persistence.migrate import require_migrated
    from media_gateway.persistence.repositories import Repositories

    database = Database(settings.database_url)
    try:
        await require_migrated(database)
        keys = Repositories.from_database(database).api_keys
        if args.keys_command == "create":
            output_file = None
            if args.output_file is not None:
                output_file = Path(args.output_file) if args.output_file else settings.dev_key_file
            scopes = [scope.strip() for scope in args.scopes.split(",") if scope.strip()]
            if output_file is not None and args.if_missing:
                existing = await _valid_key_in_file(output_file, keys)
                if existing is not None:
                    print(f"API key {existing.prefix}… kept in {output_file}")
                    return 0
            value = generate_api_key()
            record = await keys.create(
                name=args.name, scopes=scopes, key_hash=hash_credential(value), prefix=display_prefix(value)
            )
            if output_file is not None:
                _write_secret_file(output_file, value)
                print(f"created key {record.id} ({record.prefix}…) and stored it in {output_file}")
            else:
                print(value)
                print(f"created key {record.id}; it is shown once, store it now", file=sys.stderr)
            return 0
        if args.keys_command == "list":
            for record in await keys.list():
                print(json.dumps(_describe(record)))
            return 0
        try:
            record_or_none = await keys.revoke(args.key)
        except AmbiguousRecord:
            print(f"{args.key!r} matches several keys; revoke by id (key_…) instead", file=sys.stderr)
            return 1
        if record_or_none is None:
            print(f"no key {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked {record_or_none.id} ({record_or_none.prefix}…)")
        print(
            "its live sessions end within about "
            f"{settings.instance_heartbeat_seconds:g} s (each gateway checks once per heartbeat)",
            file=sys.stderr,
        )
        return 0
    finally:
        await database.dispose()


async def _valid_key_in_file(path: Path, keys: ApiKeyRepository) -> ApiKeyRecord | None:
    try:
        value = path.read_text(encoding="utf-8").strip()  # noqa: ASYNC240 - one small file, in a CLI
    except FileNotFoundError:
        return None
    if not looks_like_api_key(value):
        return None
    record = await keys.get_by_hash(hash_credential(value))
    if record is None or record.revoked_at is not None or not digests_match(record.key_hash, value):
        return None
    return record


def _write_secret_file(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)  # O_CREAT's mode does not apply to a file that already existed


def _describe(record: ApiKeyRecord) -> dict[str, object]:
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "scopes": list(record.scopes),
        "created_at": record.created_at.isoformat(),
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "last_used_at": record.last_used_at.isoformat() if record.last_used_at else None,
    }
