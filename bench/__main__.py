"""``python -m bench <scenario>``: Herald's benchmarks. Each prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from bench import deliver, e2e, machine, sms, templates, webhook


def _load_arguments(
    parser: argparse.ArgumentParser, *, db: str, n: int, offered_rate: bool = True
) -> None:
    """What every HTTP load scenario takes: database, request shape, size, pacing."""
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default=db)
    parser.add_argument("--mode", choices=["batch", "single"], default="batch")
    parser.add_argument("-n", type=int, default=n)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default 1000, or 10 with --rate"
    )
    parser.add_argument("--in-flight", type=int, default=4)
    if offered_rate:
        parser.add_argument("--rate", type=float, default=None, help="notifications/s to offer")


def _load_options(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    return {
        "db": args.db,
        "mode": args.mode,
        "n": args.n,
        # A paced run measures latency: small requests, as a steady stream of senders makes.
        "batch_size": args.batch_size or (10 if getattr(args, "rate", None) else 1000),
        "in_flight": args.in_flight,
        "rate": getattr(args, "rate", None),
        **extra,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="scenario", required=True)
    email = sub.add_parser("email", help="HTTP accept -> SMTP sink, end to end")
    _load_arguments(email, db="sqlite", n=20000)
    email.add_argument("--pool-size", type=int, default=8)
    email.add_argument("--concurrency", type=int, default=128)
    texts = sub.add_parser("sms", help="HTTP accept -> Twilio provider -> a Twilio sink")
    _load_arguments(texts, db="sqlite", n=20000)
    texts.add_argument("--connections", type=int, default=64, help="HTTP connections to Twilio")
    texts.add_argument("--concurrency", type=int, default=128)
    rendering = sub.add_parser("templates", help="template renders/s and accept cost")
    rendering.add_argument("--repeat", type=int, default=5)
    hooks = sub.add_parser("webhook", help="HTTP accept -> signed webhook -> nginx, end to end")
    _load_arguments(hooks, db="postgresql", n=30000)
    hooks.add_argument("--concurrency", type=int, default=64)
    hooks.add_argument("--max-connections", type=int, default=64)
    hooks.add_argument(
        "--workers", type=int, default=0, help="0: herald serve; N: herald api + N workers"
    )
    accept = sub.add_parser("accept", help="HTTP accept alone (herald api, no worker)")
    _load_arguments(accept, db="sqlite", n=50000, offered_rate=False)
    draining = sub.add_parser("deliver", help="a filled queue drained by herald worker(s)")
    draining.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    draining.add_argument("-n", type=int, default=30000)
    draining.add_argument("--workers", type=int, default=1)
    draining.add_argument("--pool-size", type=int, default=8)
    draining.add_argument("--concurrency", type=int, default=128)
    sub.add_parser("machine", help="this machine's limits without Herald, to scale figures by")
    sub.add_parser("all", help="the email scenarios on both databases")
    args = parser.parse_args()

    result: dict[str, Any]
    if args.scenario == "email":
        options = e2e.Options(
            **_load_options(args, pool_size=args.pool_size, concurrency=args.concurrency)
        )
        result = asyncio.run(e2e.run(options))
    elif args.scenario == "accept":
        result = asyncio.run(e2e.run_accept_only(e2e.Options(**_load_options(args))))
    elif args.scenario == "sms":
        options = e2e.Options(
            **_load_options(args, pool_size=args.connections, concurrency=args.concurrency)
        )
        result = asyncio.run(sms.run(options))
    elif args.scenario == "templates":
        print(json.dumps(templates.run(args.repeat), indent=2))
        return
    elif args.scenario == "webhook":
        hook_options = webhook.Options(
            **_load_options(
                args,
                concurrency=args.concurrency,
                max_connections=args.max_connections,
                workers=args.workers,
            )
        )
        result = asyncio.run(webhook.run(hook_options))
    elif args.scenario == "deliver":
        result = asyncio.run(
            deliver.run(
                deliver.Options(
                    db=args.db,
                    n=args.n,
                    workers=args.workers,
                    pool_size=args.pool_size,
                    concurrency=args.concurrency,
                )
            )
        )
    elif args.scenario == "machine":
        result = asyncio.run(machine.run())
    else:
        for db in ("sqlite", "postgresql"):
            for mode, n in (("batch", 20000), ("single", 5000)):
                result = asyncio.run(e2e.run(e2e.Options(db=db, mode=mode, n=n)))
                print(json.dumps(result), flush=True)
        return
    print(json.dumps(result))


if __name__ == "__main__":
    main()
