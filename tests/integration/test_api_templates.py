"""Templates through the HTTP API, on SQLite and PostgreSQL: the registry, versions,
rendering at accept time, errors as 422s, preview, caches across processes."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from herald import Herald
from herald.domain.channels import Channel
from herald.templates import directory as directory_module
from tests.integration.api import Api, assert_error, running_api

ORDER = {
    "engine": "handlebars",
    "description": "Seed 001's order confirmation",
    "variants": {
        "email": {
            "subject": "Order {{order.id}} confirmed",
            "html": "<style>h1 { color: #333 }</style><h1>Hi {{user.name}}</h1>"
            "<ul>{{#each order.items}}<li>{{this.name}} x {{this.quantity}}</li>{{/each}}</ul>"
            "{{#if user.preferences.notifications_enabled}}<p>Updates go to {{user.email}}</p>"
            "{{else}}<p>No updates</p>{{/if}}",
        },
        "sms": {"body": "Hi {first_name}, order {{order.id}} is confirmed."},
    },
    "locales": {"fr": {"email": {"subject": "Commande {{order.id}} confirmée"}}},
}
DATA: dict[str, Any] = {
    "name": "John Doe",
    "user": {
        "name": "John <Doe>",
        "email": "john@example.com",
        "preferences": {"notifications_enabled": True},
    },
    "order": {"id": "ORD-12345", "items": [{"name": "Widget", "quantity": 2}]},
}


async def put(api: Api, name: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.client.put(f"/v1/templates/{name}", json=body)
    assert response.status_code == 200, response.text
    stored: dict[str, Any] = response.json()
    return stored


async def send(api: Api, **fields: Any) -> dict[str, Any]:
    body = {"channel": "email", "to": "john@example.com", **fields}
    response = await api.client.post("/v1/notifications", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def test_a_notification_renders_a_stored_template(api: Api):
    stored = await put(api, "order", ORDER)
    assert stored["version"] == 1
    assert (stored["name"], stored["source"], stored["engine"]) == (
        "order",
        "database",
        "handlebars",
    )
    assert stored["channels"] == ["email", "sms"]
    assert stored["locales"] == ["fr"]

    accepted = await send(api, template="order", data=DATA)
    assert (accepted["template"], accepted["template_version"]) == ("order", 1)
    assert accepted["subject"] == "Order ORD-12345 confirmed"
    await api.herald.drain()

    found = await api.get(accepted["id"])
    assert found["status"] == "sent"
    assert (found["template"], found["template_version"]) == ("order", 1)
    (sent,) = api.recorder.outbox
    html = sent.content.html
    assert "<h1 style=" in html  # CSS inlined
    assert "Hi John &lt;Doe&gt;" in html  # data escaped
    assert "<li>Widget x 2</li>" in html
    assert "<p>Updates go to john@example.com</p>" in html
    assert "Widget x 2" in sent.content.text  # derived from the HTML


async def test_each_put_is_a_new_version_and_new_notifications_use_it(api: Api):
    await put(api, "order", ORDER)
    first = await send(api, template="order", data=DATA)
    changed = {**ORDER, "variants": {**ORDER["variants"], "email": {
        "subject": "Thanks for order {{order.id}}", "text": "Thanks, {{user.name}}"
    }}}  # fmt: skip
    assert (await put(api, "order", changed))["version"] == 2
    second = await send(api, template="order", data=DATA)
    assert (second["subject"], second["template_version"]) == ("Thanks for order ORD-12345", 2)
    assert (await api.get(first["id"]))["template_version"] == 1

    current = (await api.client.get("/v1/templates/order")).json()
    assert current["version"] == 2
    assert current["variants"]["email"]["subject"] == "Thanks for order {{order.id}}"
    old = (await api.client.get("/v1/templates/order", params={"version": 1})).json()
    assert old["variants"]["email"]["subject"] == "Order {{order.id}} confirmed"
    assert old["locale_variants"] == {
        "fr": {"email": {"subject": "Commande {{order.id}} confirmée"}}
    }


async def test_locale_from_the_request_falls_back(api: Api):
    await put(api, "order", ORDER)
    canadian = await send(api, template="order", data=DATA, locale="fr-CA")
    assert canadian["subject"] == "Commande ORD-12345 confirmée"
    german = await send(api, template="order", data=DATA, locale="de")
    assert german["subject"] == "Order ORD-12345 confirmed"


async def test_rendering_errors_are_422_naming_template_part_and_line(api: Api):
    await put(api, "order", ORDER)
    missing = await api.client.post(
        "/v1/notifications",
        json={"channel": "email", "to": "a@example.org", "template": "order", "data": {}},
    )
    error = assert_error(missing, 422, "invalid_request")
    assert error["fields"] == {
        "data": "template 'order', email.subject, line 1: 'order.id' is undefined"
    }

    unknown = await api.client.post(
        "/v1/notifications",
        json={"channel": "email", "to": "a@example.org", "template": "nope", "data": {}},
    )
    assert assert_error(unknown, 422, "invalid_request")["fields"] == {
        "template": "no template 'nope'"
    }

    no_variant = await api.client.post(
        "/v1/notifications", json={"channel": "push", "to": "tok", "template": "order"}
    )
    assert (
        "has no push variant"
        in assert_error(no_variant, 422, "invalid_request")["fields"]["template"]
    )

    broken = await api.client.put(
        "/v1/templates/broken",
        json={"variants": {"sms": {"body": "fine\n{% for x in %}"}}},
    )
    fields = assert_error(broken, 422, "invalid_request")["fields"]
    assert fields["template"].startswith("template 'broken', sms.body, line 2: ")

    escape = await api.client.put(
        "/v1/templates/escape", json={"variants": {"sms": {"body": "{{ ''.__class__.__mro__ }}"}}}
    )
    assert escape.status_code == 200  # it compiles; it is refused when it renders
    refused = await api.client.post(
        "/v1/notifications", json={"channel": "sms", "to": "+14155552671", "template": "escape"}
    )
    assert "unsafe" in assert_error(refused, 422, "invalid_request")["fields"]["template"]
    assert await api.count() == 0


async def test_a_handlebars_syntax_error_names_template_part_and_line(api: Api):
    html = "<p>{{#if vip}}\n<b>{{name}}</b>\n{{#each perks}}<i>{{this}}</i>\n{{/if}}</p>"
    broken = await api.client.put(
        "/v1/templates/perks",
        json={"engine": "handlebars", "variants": {"email": {"subject": "Hi", "html": html}}},
    )
    assert assert_error(broken, 422, "invalid_request")["fields"] == {
        "template": "template 'perks', email.html, line 4: unexpected closing tag if"
    }


async def test_a_folder_handlebars_template_with_a_syntax_error_names_the_line(
    sqlite_url: str, tmp_path: Path
):
    folder = tmp_path / "receipt"
    folder.mkdir()
    (folder / "sms.txt.hbs").write_text("Total: {{total}}\nPaid {{paid_at}\n")
    async with running_api(sqlite_url, templates_dir=tmp_path) as folder_api:
        response = await folder_api.client.post(
            "/v1/notifications",
            json={"channel": "sms", "to": "+14155552671", "template": "receipt"},
        )
        assert assert_error(response, 422, "invalid_request")["fields"] == {
            "template": "template 'receipt', sms.body, line 2: unclosed tag"
        }
        assert await folder_api.count() == 0


async def test_a_batch_reports_template_errors_per_item(api: Api):
    await put(api, "order", ORDER)
    ok = {"channel": "email", "to": "a@example.org", "template": "order", "data": DATA}
    response = await api.client.post(
        "/v1/notifications/batch",
        json={"notifications": [ok, {**ok, "data": {"user": {}}}, {**ok, "template": "gone"}]},
    )
    fields = assert_error(response, 422, "invalid_request")["fields"]
    assert set(fields) == {"notifications[1].data", "notifications[2].template"}
    assert await api.count() == 0

    personal = [
        {"channel": "sms", "to": "+14155552671", "template": "order", "data": {**DATA, "name": n}}
        for n in ("Ann Lee", "Bo Chen")
    ]
    accepted = await api.client.post("/v1/notifications/batch", json={"notifications": personal})
    assert accepted.status_code == 202, accepted.text
    await api.herald.drain()
    bodies = sorted(json.loads(row["content"])["body"] for row in await api.herald.captured.list())
    assert bodies == [
        "Hi Ann, order ORD-12345 is confirmed.",
        "Hi Bo, order ORD-12345 is confirmed.",
    ]


async def test_preview_renders_every_variant_without_sending(api: Api):
    await put(api, "order", ORDER)
    response = await api.client.post(
        "/v1/templates/order/render", json={"data": DATA, "locale": "fr"}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert set(preview) == {"email", "sms"}
    assert preview["email"]["subject"] == "Commande ORD-12345 confirmée"
    assert "Widget x 2" in preview["email"]["text"]
    assert preview["sms"] == {"body": "Hi John, order ORD-12345 is confirmed."}
    assert await api.count() == 0

    bad = await api.client.post("/v1/templates/order/render", json={"data": {}})
    assert "order.id" in assert_error(bad, 422, "invalid_request")["fields"]["data"]
    absent = await api.client.post("/v1/templates/absent/render", json={})
    assert_error(absent, 404, "not_found")


async def test_builtins_are_listed_usable_and_overridable(api: Api):
    listed = (await api.client.get("/v1/templates")).json()["items"]
    assert {t["name"]: t["source"] for t in listed} == {
        "appointment-reminder": "builtin",
        "digest": "builtin",
        "order-confirmation": "builtin",
        "password-reset": "builtin",
        "verification-code": "builtin",
        "welcome": "builtin",
    }
    code = await send(api, template="verification-code", data={"code": "123456"})
    assert (code["subject"], code["template_version"]) == ("Your verification code is 123456", 0)

    own = {"variants": {"email": {"subject": "Code: {{ code }}", "text": "{{ code }}"}}}
    await put(api, "verification-code", own)
    overridden = await send(api, template="verification-code", data={"code": "123456"})
    assert (overridden["subject"], overridden["template_version"]) == ("Code: 123456", 1)
    listed = (await api.client.get("/v1/templates")).json()["items"]
    assert {t["name"]: t["source"] for t in listed}["verification-code"] == "database"

    deleted = await api.client.delete("/v1/templates/verification-code")
    assert deleted.json() == {"name": "verification-code", "deleted": True}
    again = await send(api, template="verification-code", data={"code": "123456"})
    assert again["subject"] == "Your verification code is 123456"
    assert_error(await api.client.delete("/v1/templates/verification-code"), 404, "not_found")
    # Versions keep counting after a delete: (name, version) always means one content.
    stored = await put(api, "verification-code", {"variants": {"sms": {"body": "{{ code }}"}}})
    assert stored["version"] == 2


async def test_caller_fields_win_and_fallbacks_get_their_variant(api: Api):
    await put(api, "order", ORDER)
    accepted = await send(
        api,
        template="order",
        data=DATA,
        subject="My own subject",
        fallback=["sms"],
        fallback_to={"sms": "+14155552671"},
    )
    assert accepted["subject"] == "My own subject"
    await api.herald.drain()
    found = await api.get(accepted["id"])
    assert found["content"]["subject"] == "My own subject"
    assert "Widget x 2" in found["content"]["html"]


async def test_locale_needs_a_template(api: Api):
    response = await api.client.post(
        "/v1/notifications",
        json={
            "channel": "email",
            "to": "a@example.org",
            "subject": "s",
            "text": "t",
            "locale": "fr",
        },
    )
    assert assert_error(response, 422, "invalid_request")["fields"] == {
        "locale": "only used with a template"
    }


async def test_another_process_sees_an_update_once_its_cache_expires(database_url: str):
    async with (
        running_api(database_url) as writer,
        running_api(database_url, templates_cache_seconds=0) as fresh,
        running_api(database_url, templates_cache_seconds=3600) as cached,
    ):
        await put(writer, "note", {"variants": {"sms": {"body": "v1 {{ n }}"}}})
        sms = {"channel": "sms", "to": "+14155552671", "template": "note", "data": {"n": 1}}
        for api in (fresh, cached):
            response = await api.client.post("/v1/notifications", json=sms)
            assert response.json()["template_version"] == 1
        await put(writer, "note", {"variants": {"sms": {"body": "v2 {{ n }}"}}})
        assert (await fresh.client.post("/v1/notifications", json=sms)).json()[
            "template_version"
        ] == 2
        # Within its cache time, the other process still renders what it compiled.
        assert (await cached.client.post("/v1/notifications", json=sms)).json()[
            "template_version"
        ] == 1


async def test_caller_html_is_sanitized_when_set(sqlite_url: str):
    async with running_api(sqlite_url, sanitize_html=True) as api:
        accepted = await send(
            api,
            subject="Hi",
            html='<p onclick="steal()">Hello<script>alert(1)</script></p>',
        )
        found = await api.get(accepted["id"])
        assert found["content"]["html"] == "<p>Hello</p>"


async def test_templates_folder_from_settings(sqlite_url: str, tmp_path: Path):
    folder = tmp_path / "templates" / "ping"
    folder.mkdir(parents=True)
    (folder / "sms.txt.jinja").write_text("pong {{ n }}\n")
    async with Herald(sqlite_url, templates_dir=tmp_path / "templates") as herald:
        view = await herald.send(channel="sms", to="+14155552671", template="ping", data={"n": 3})
        assert (view.template, view.template_version) == ("ping", 0)
        preview = await herald.render_template("ping", {"n": 4})
        assert preview == {"sms": {"body": "pong 4"}}
        stored = await herald.put_template("ping", {"variants": {"sms": {"body": "db {{ n }}"}}})
        assert stored.version == 1
        assert (await herald.render_template("ping", {"n": 5})) == {"sms": {"body": "db 5"}}
        assert Channel.SMS in (await herald.get_template("ping")).body.variants


async def test_a_webhook_delivers_its_rendered_payload(sqlite_url: str):
    async with running_api(sqlite_url, webhook_allowed_networks="127.0.0.1/32") as api:
        await put(
            api,
            "shipped",
            {"variants": {"webhook": {"payload": '{"order": {{ order | tojson }}, "v": 1}'}}},
        )
        response = await api.client.post(
            "/v1/notifications",
            json={
                "channel": "webhook",
                "to": "https://hooks.example.org/in",
                "template": "shipped",
                "data": {"order": "A-1", "secret": "not sent"},
            },
        )
        assert response.status_code == 202, response.text
        found = await api.get(response.json()["id"])
        assert found["content"]["data"] == {"order": "A-1", "v": 1}


async def test_folder_edits_are_seen_when_reloading(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(directory_module, "_RESCAN_SECONDS", 0.0)
    part = tmp_path / "note" / "sms.txt.jinja"
    part.parent.mkdir()
    part.write_text("first {{ n }}")
    async with Herald(sqlite_url, templates_dir=tmp_path, templates_reload=True) as herald:
        assert await herald.render_template("note", {"n": 1}) == {"sms": {"body": "first 1"}}
        part.write_text("second, edited {{ n }}")
        stat = part.stat()
        os.utime(part, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert await herald.render_template("note", {"n": 2}) == {
            "sms": {"body": "second, edited 2"}
        }
