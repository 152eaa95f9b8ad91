"""A minimal Twilio Messages API sink for benchmarks: ``python -m bench.twilio_sink PORT``.

Checks basic auth and the form's required fields like the test server, answers ``201`` with a
real-shaped message resource, and keeps nothing. Runs in its own process so its CPU does not
count against Herald's.
"""

from __future__ import annotations

import base64
import secrets
import sys
from urllib.parse import parse_qsl

from aiohttp import web

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-token"  # noqa: S105 (a local sink's made-up credential)
_AUTH = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()


async def messages(request: web.Request) -> web.Response:
    if request.headers.get("Authorization") != _AUTH:
        return web.json_response({"code": 20003, "message": "Authenticate"}, status=401)
    form = dict(parse_qsl(await request.text()))
    if not form.get("To") or not form.get("Body") or not form.get("From"):
        return web.json_response({"code": 21604, "message": "missing field"}, status=400)
    sid = "SM" + secrets.token_hex(16)
    return web.json_response(
        {
            "sid": sid,
            "account_sid": ACCOUNT_SID,
            "status": "queued",
            "to": form["To"],
            "from": form["From"],
            "body": form["Body"],
            "num_segments": "1",
            "api_version": "2010-04-01",
        },
        status=201,
    )


def main() -> None:
    app = web.Application()
    app.router.add_post(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json", messages)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
