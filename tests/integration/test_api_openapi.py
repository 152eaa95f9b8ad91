"""/openapi.json documents every route, and what it says matches what the API does."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.api import Api

ROUTES = {
    "/v1/notifications": {"get", "post"},
    "/v1/notifications/batch": {"post"},
    "/v1/notifications/{notification_id}": {"get"},
    "/v1/notifications/{notification_id}/cancel": {"post"},
    "/v1/dead-letters": {"get"},
    "/v1/dead-letters/{notification_id}/retry": {"post"},
    "/v1/captured": {"get", "delete"},
    "/healthz": {"get"},
    "/readyz": {"get"},
    "/metrics": {"get"},
    "/inbound/twilio/status": {"post"},
    "/inbound/vonage/status": {"post"},
}


@pytest.fixture
async def spec(sqlite_api: Api) -> dict[str, Any]:
    response = await sqlite_api.client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def ref(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).rsplit("/", 1)[-1]


def json_schema(response_or_body: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = response_or_body["content"]["application/json"]["schema"]
    return schema


def test_every_route_is_documented(spec: dict[str, Any]):
    documented = {path: set(operations) for path, operations in spec["paths"].items()}
    assert documented == ROUTES


def test_the_v1_json_routes_declare_their_schemas_and_the_error_shape(spec: dict[str, Any]):
    for path, methods in ROUTES.items():
        if not path.startswith("/v1/"):
            continue
        for method in methods:
            operation = spec["paths"][path][method]
            assert operation.get("summary"), (method, path)
            success = next(code for code in operation["responses"] if code.startswith("2"))
            assert "$ref" in json_schema(operation["responses"][success]), (method, path)
            for status in ("401", "422"):
                error = json_schema(operation["responses"][status])
                assert ref(error) == "ErrorBody", (method, path, status)


def test_requests_and_responses_of_the_notification_routes(spec: dict[str, Any]):
    create = spec["paths"]["/v1/notifications"]["post"]
    assert ref(json_schema(create["requestBody"])) == "NotificationRequest"
    assert ref(json_schema(create["responses"]["202"])) == "NotificationView"
    assert "200" not in create["responses"]  # it answers 202, as documented
    assert [p["name"] for p in create["parameters"]] == ["Idempotency-Key"]

    batch = spec["paths"]["/v1/notifications/batch"]["post"]
    assert ref(json_schema(batch["requestBody"])) == "BatchRequest"
    assert ref(json_schema(batch["responses"]["202"])) == "BatchResponse"

    listing = spec["paths"]["/v1/notifications"]["get"]
    parameters = {p["name"]: p for p in listing["parameters"]}
    assert set(parameters) == {
        "status", "channel", "to", "recipient_id", "category", "cursor", "limit"
    }  # fmt: skip
    assert ref(json_schema(listing["responses"]["200"])) == "NotificationPage"

    for path, methods in ROUTES.items():
        if "{notification_id}" in path:
            for method in methods:
                (parameter,) = spec["paths"][path][method]["parameters"]
                assert parameter["name"] == "notification_id"
                assert parameter["in"] == "path"
                assert parameter["required"] is True


def test_the_notification_request_schema_matches_what_is_accepted(spec: dict[str, Any]):
    schemas = spec["components"]["schemas"]
    request = schemas["NotificationRequest"]
    properties = request["properties"]

    # The sender is "from" on the wire (a Python keyword, aliased in the model).
    assert "from" in properties
    assert "sender" not in properties
    assert sorted(request["required"]) == ["channel"]  # `to` is optional for chat
    assert request["additionalProperties"] is False  # unknown fields are refused
    # "to" takes one address or a list of them.
    kinds = {option["type"] for option in properties["to"]["anyOf"]}
    assert kinds == {"string", "array", "null"}
    assert properties["priority"]["minimum"] == 0
    assert properties["priority"]["maximum"] == 9
    assert set(schemas["Channel"]["enum"]) == {"email", "sms", "push", "webhook", "chat"}
    assert schemas["BatchRequest"]["properties"]["notifications"]["maxItems"] == 1000

    view = schemas["NotificationView"]["properties"]
    assert {"id", "status", "attempts", "provider", "events", "content"} <= set(view)
    assert "from" in schemas["EmailContent"]["properties"]
    assert set(schemas["ErrorDetail"]["properties"]) == {"code", "message", "fields"}


async def test_the_documented_names_are_what_the_api_speaks(sqlite_api: Api):
    # "to" as a single string and the sender as "from", as the schema says.
    body = {"channel": "email", "to": "a@example.org", "subject": "s", "text": "t"}
    accepted = await sqlite_api.send({**body, "from": "Shop <shop@example.org>"})
    found = await sqlite_api.get(accepted["id"])
    assert found["to"] == ["a@example.org"]
    assert found["content"]["from"] == "Shop <shop@example.org>"


def test_bearer_auth_is_declared_on_the_v1_routes_only(spec: dict[str, Any]):
    schemes = spec["components"]["securitySchemes"]
    assert [s["scheme"] for s in schemes.values()] == ["bearer"]
    for path, methods in ROUTES.items():
        for method in methods:
            secured = "security" in spec["paths"][path][method]
            assert secured == path.startswith("/v1/"), (method, path)
