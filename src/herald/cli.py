"""The ``herald`` command."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
import uvicorn

from herald import logs
from herald.api.app import create_app
from herald.config import Settings
from herald.domain.errors import ConfigurationError, HeraldError, InvalidRequest
from herald.runtime import Herald
from herald.store import migrate as migrations
from herald.store.database import Database

app = typer.Typer(help="Herald: durable, multi-channel notifications.", no_args_is_help=True)
send_app = typer.Typer(help="Send a one-off notification.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)
dlq_app = typer.Typer(help="The dead-letter queue.", no_args_is_help=True)
webhooks_app = typer.Typer(
    help="Webhooks: the signing secret, and URLs that answered 410 Gone.", no_args_is_help=True
)
app.add_typer(send_app, name="send")
app.add_typer(keys_app, name="keys")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")

T = TypeVar("T")

Host = Annotated[str, typer.Option(help="Address to bind.")]
Port = Annotated[int, typer.Option(help="Port to bind.")]
Insecure = Annotated[
    bool, typer.Option(help="Allow binding a non-loopback address with no API key configured.")
]
Concurrency = Annotated[
    int | None, typer.Option(help="Deliveries in flight (default HERALD_WORKER_CONCURRENCY).")
]


@app.callback()
def _main(
    database_url: Annotated[
        str | None, typer.Option(help="Overrides HERALD_DATABASE_URL.", show_default=False)
    ] = None,
) -> None:
    if database_url:
        os.environ["HERALD_DATABASE_URL"] = database_url


def _settings() -> Settings:
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    return settings


def _run(coro: Callable[[], Awaitable[T]]) -> T:
    """Run with uvloop when installed (it is, with uvicorn[standard])."""
    try:
        import uvloop

        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is a dependency on supported platforms
        loop_factory = None
    try:
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            return runner.run(_awaitable(coro))
    except HeraldError as exc:
        typer.secho(f"error: {_describe(exc)}", err=True, fg="red")
        raise typer.Exit(2) from None


async def _awaitable(coro: Callable[[], Awaitable[T]]) -> T:
    return await coro()


def _describe(exc: HeraldError) -> str:
    if isinstance(exc, InvalidRequest):
        return exc.message + "".join(f"\n  {k}: {v}" for k, v in exc.fields.items())
    return str(exc)


def _serve(
    host: str, port: int, insecure: bool, *, run_worker: bool, concurrency: int | None
) -> None:
    settings = _settings()
    herald = Herald(settings=settings)

    async def main() -> None:
        await herald.start()
        if not _loopback(host) and not insecure:
            has_keys = bool(settings.api_key_list) or await herald.api_keys.any_active()
            if not has_keys:
                await herald.aclose()
                raise ConfigurationError(
                    f"refusing to listen on {host} with no API key: set HERALD_API_KEYS or run "
                    "`herald keys create`, or pass --insecure"
                )
        config = uvicorn.Config(
            create_app(herald, run_worker=run_worker, worker_concurrency=concurrency),
            host=host,
            port=port,
            access_log=settings.access_log,
            log_config=None,
            server_header=False,
            timeout_graceful_shutdown=int(settings.shutdown_timeout) + 5,
        )
        print(f"Herald listening on http://{host}:{port}", flush=True)
        await uvicorn.Server(config).serve()

    _run(main)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8700,
    insecure: Insecure = False,
    concurrency: Concurrency = None,
) -> None:
    """API and worker in one process (migrates SQLite automatically)."""
    _serve(host, port, insecure, run_worker=True, concurrency=concurrency)


@app.command()
def api(host: Host = "127.0.0.1", port: Port = 8700, insecure: Insecure = False) -> None:
    """The HTTP API only (scale out with any number of `herald worker`)."""
    _serve(host, port, insecure, run_worker=False, concurrency=None)


@app.command()
def worker(concurrency: Concurrency = None) -> None:
    """Deliver notifications until SIGTERM/SIGINT, then finish in-flight work and stop."""
    settings = _settings()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with Herald(settings=settings) as herald:
            await herald.run_worker(stop, concurrency=concurrency)

    _run(main)


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    settings = _settings()

    async def main() -> None:
        database = Database(settings.database_url)
        try:
            await migrations.upgrade(database)
        finally:
            await database.dispose()

    _run(main)
    typer.echo("database is up to date")


@send_app.command("email")
def send_email(
    to: Annotated[list[str], typer.Option(help="Recipient; repeat for several.")],
    subject: Annotated[str, typer.Option()],
    text: Annotated[str | None, typer.Option()] = None,
    html: Annotated[str | None, typer.Option()] = None,
    sender: Annotated[str | None, typer.Option("--from")] = None,
    cc: Annotated[list[str] | None, typer.Option()] = None,
    bcc: Annotated[list[str] | None, typer.Option()] = None,
    idempotency_key: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Queue one email and print the accepted notification as JSON."""
    settings = _settings()
    fields: dict[str, Any] = {"from": sender, "cc": cc, "bcc": bcc}

    async def main() -> dict[str, Any]:
        async with Herald(settings=settings) as herald:
            view = await herald.send(
                channel="email",
                to=to,
                subject=subject,
                text=text,
                html=html,
                idempotency_key=idempotency_key,
                actor="cli",
                **{k: v for k, v in fields.items() if v},
            )
            return view.model_dump(mode="json", exclude_none=True)

    _print(_run(main))


@keys_app.command("create")
def keys_create(name: Annotated[str, typer.Option(help="What the key is for.")]) -> None:
    """Create an API key; it is printed once and only its digest is stored."""
    settings = _settings()

    async def main() -> tuple[str, str]:
        async with Herald(settings=settings) as herald:
            return await herald.api_keys.create(name)

    key_id, key = _run(main)
    typer.echo(f"id:  {key_id}\nkey: {key}\n(store it now: it cannot be shown again)")


@keys_app.command("list")
def keys_list() -> None:
    settings = _settings()

    async def main() -> list[dict[str, Any]]:
        async with Herald(settings=settings) as herald:
            return [dict(row) for row in await herald.api_keys.list()]

    for row in _run(main):
        state = "revoked" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']}  {row['prefix']}…  {state:8}  {row['name']}")


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    settings = _settings()

    async def main() -> bool:
        async with Herald(settings=settings) as herald:
            return await herald.api_keys.revoke(key_id)

    if not _run(main):
        typer.secho("no such active key", err=True, fg="red")
        raise typer.Exit(1)
    typer.echo("revoked")


@dlq_app.command("list")
def dlq_list(limit: Annotated[int, typer.Option(min=1, max=1000)] = 50) -> None:
    """Dead letters, newest first, with their last error."""
    settings = _settings()

    async def main() -> list[dict[str, Any]]:
        async with Herald(settings=settings) as herald:
            rows = await herald.notifications.list(status=["dead"], limit=limit)
            return [dict(row) for row in rows]

    for row in _run(main):
        typer.echo(f"{row['id']}  {row['channel']:7} {row['recipient']}  {row['last_error']}")


@dlq_app.command("retry")
def dlq_retry(notification_id: str) -> None:
    settings = _settings()

    async def main() -> dict[str, Any]:
        async with Herald(settings=settings) as herald:
            view = await herald.retry_dead(notification_id, actor="cli")
            return view.model_dump(mode="json", exclude_none=True)

    _print(_run(main))


@webhooks_app.command("secret")
def webhooks_secret() -> None:
    """Print the default signing secret (HERALD_WEBHOOK_SECRET, else the generated one)."""
    settings = _settings()

    async def main() -> str:
        async with Herald(settings=settings) as herald:
            return herald.webhook_secret

    typer.echo(_run(main))


@webhooks_app.command("gone")
def webhooks_gone() -> None:
    """URLs that answered 410 Gone: notifications to them fail without a request."""
    settings = _settings()

    async def main() -> list[dict[str, Any]]:
        async with Herald(settings=settings) as herald:
            return [dict(row) for row in await herald.webhooks.list_gone()]

    for row in _run(main):
        typer.echo(f"{row['url']}  since {row['notification_id']}")


@webhooks_app.command("forget")
def webhooks_forget(
    urls: Annotated[list[str] | None, typer.Argument(help="URLs to send to again.")] = None,
    all_urls: Annotated[bool, typer.Option("--all", help="Forget every gone URL.")] = False,
) -> None:
    """Send to gone URLs again (workers notice within seconds)."""
    if not urls and not all_urls:
        typer.secho("name URLs or pass --all", err=True, fg="red")
        raise typer.Exit(2)
    settings = _settings()

    async def main() -> int:
        async with Herald(settings=settings) as herald:
            return await herald.webhooks.clear_gone(None if all_urls else urls)

    typer.echo(f"forgot {_run(main)}")


def _print(data: dict[str, Any]) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def main() -> None:
    app()
