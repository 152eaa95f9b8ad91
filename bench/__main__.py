"""``python -m bench <scenario>``: Herald's benchmarks. Each prints JSON."""

from __future__ import annotations

import argparse
import asyncio
import json

from bench import e2e, sms


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
    for db in ("sqlite", "postgresql"):
        for mode, n in (("batch", 20000), ("single", 5000)):
            result = asyncio.run(e2e.run(e2e.Options(db=db, mode=mode, n=n)))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
