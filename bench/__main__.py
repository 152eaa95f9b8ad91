"""``python -m bench <scenario>``: Herald's benchmarks. Each prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json

from bench import e2e, sms, templates, webhook


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    sub = parser.add_subparsers(dest="scenario", required=True)
    email = sub.add_parser("email", help="HTTP accept -> SMTP sink, end to end")
    email.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    email.add_argument("--mode", choices=["batch", "single"], default="batch")
    email.add_argument("-n", type=int, default=20000)
    email.add_argument("--rate", type=float, default=None, help="notifications/s to offer")
    email.add_argument("--batch-size", type=int, default=1000)
    email.add_argument("--in-flight", type=int, default=4)
    email.add_argument("--pool-size", type=int, default=8)
    email.add_argument("--concurrency", type=int, default=128)
    texts = sub.add_parser("sms", help="HTTP accept -> Twilio provider -> a Twilio sink")
    texts.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    texts.add_argument("--mode", choices=["batch", "single"], default="batch")
    texts.add_argument("-n", type=int, default=20000)
    texts.add_argument("--rate", type=float, default=None, help="notifications/s to offer")
    texts.add_argument("--connections", type=int, default=64, help="HTTP connections to Twilio")
    texts.add_argument("--concurrency", type=int, default=128)
    rendering = sub.add_parser("templates", help="template renders/s and accept cost")
    rendering.add_argument("--repeat", type=int, default=5)
    hooks = sub.add_parser("webhook", help="HTTP accept -> signed webhook -> nginx, end to end")
    hooks.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    hooks.add_argument("--mode", choices=["batch", "single"], default="batch")
    hooks.add_argument("-n", type=int, default=30000)
    hooks.add_argument("--rate", type=float, default=None, help="notifications/s to offer")
    hooks.add_argument("--batch-size", type=int, default=1000)
    hooks.add_argument("--in-flight", type=int, default=4)
    hooks.add_argument("--concurrency", type=int, default=64)
    hooks.add_argument("--max-connections", type=int, default=64)
    hooks.add_argument(
        "--workers", type=int, default=0, help="0: herald serve; N: herald api + N workers"
    )
    accept = sub.add_parser("accept", help="HTTP accept alone (herald api, no worker)")
    accept.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    accept.add_argument("--mode", choices=["batch", "single"], default="batch")
    accept.add_argument("-n", type=int, default=50000)
    accept.add_argument("--batch-size", type=int, default=1000)
    accept.add_argument("--in-flight", type=int, default=4)
    sub.add_parser("all", help="the email scenarios on both databases")
    args = parser.parse_args()

    if args.scenario == "email":
        opts = e2e.Options(
            db=args.db,
            mode=args.mode,
            n=args.n,
            rate=args.rate,
            batch_size=args.batch_size,
            in_flight=args.in_flight,
            pool_size=args.pool_size,
            concurrency=args.concurrency,
        )
        print(json.dumps(asyncio.run(e2e.run(opts))))
        return
    if args.scenario == "accept":
        accept_opts = e2e.Options(
            db=args.db,
            mode=args.mode,
            n=args.n,
            batch_size=args.batch_size,
            in_flight=args.in_flight,
        )
        print(json.dumps(asyncio.run(e2e.run_accept_only(accept_opts))))
        return
    if args.scenario == "sms":
        opts = e2e.Options(
            db=args.db,
            mode=args.mode,
            n=args.n,
            rate=args.rate,
            pool_size=args.connections,
            concurrency=args.concurrency,
        )
        print(json.dumps(asyncio.run(sms.run(opts))))
        return
    if args.scenario == "templates":
        print(json.dumps(templates.run(args.repeat), indent=2))
        return
    if args.scenario == "webhook":
        hook_opts = webhook.Options(
            db=args.db,
            mode=args.mode,
            n=args.n,
            rate=args.rate,
            batch_size=args.batch_size,
            in_flight=args.in_flight,
            concurrency=args.concurrency,
            max_connections=args.max_connections,
            workers=args.workers,
        )
        print(json.dumps(asyncio.run(webhook.run(hook_opts))))
        return
    for db in ("sqlite", "postgresql"):
        for mode, n in (("batch", 20000), ("single", 5000)):
            result = asyncio.run(e2e.run(e2e.Options(db=db, mode=mode, n=n)))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
