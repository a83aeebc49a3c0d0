"""docs/asyncapi.yaml is a well-formed AsyncAPI 3.0 document covering the whole protocol."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft7Validator

from exchange.protocol import METHODS
from exchange.testing import Schemas
from replay.lockstep import protocol_methods

S = Schemas()


def test_asyncapi_3_document_structure() -> None:
    doc = S.doc
    assert doc["asyncapi"].startswith("3.0")
    assert doc["info"]["title"] and doc["info"]["version"]
    msgs = doc["components"]["messages"]
    for name, ch in doc["channels"].items():
        for m in ch["messages"].values():
            assert m["$ref"].split("/")[-1] in msgs, (name, m)
    for op in doc["operations"].values():
        assert op["action"] in ("send", "receive")
        assert op["channel"]["$ref"] == "#/channels/api"
    for m in msgs.values():
        assert m["payload"]["$ref"].split("/")[-1] in S.names


def test_every_schema_is_valid_json_schema() -> None:
    for name, schema in S.doc["components"]["schemas"].items():
        Draft7Validator.check_schema(schema)
        S.validator(name)  # resolvable


def server_methods() -> set[str]:
    """Every method a server can answer: the protocol's own and those a replay server adds
    (`replay.lockstep.install_methods()`, the `replay.*` lockstep methods)."""
    with protocol_methods():
        names = set(METHODS)
    assert {"replay.register", "replay.ready", "replay.status"} <= names
    return names


def test_every_method_has_request_and_result_schemas() -> None:
    request_refs = {
        r["$ref"].split("/")[-1] for r in S.doc["components"]["schemas"]["Request"]["oneOf"]
    }
    methods = server_methods()
    for m in methods:
        assert f"req.{m}" in S.names and f"req.{m}" in request_refs, m
        assert f"res.{m}" in S.names, m
    assert {n[4:] for n in S.names if n.startswith("req.")} == methods
    assert {n[4:] for n in S.names if n.startswith("res.")} == methods
    assert request_refs == {f"req.{m}" for m in methods}


def test_schemas_reject_what_the_server_rejects() -> None:
    bad: list[dict[str, Any]] = [
        {"id": 1, "method": "order.place", "params": {"symbol": "BTCUSDT", "side": "BUY",
                                                      "type": "LIMIT", "quantity": "1e3"}},
        {"id": 1, "method": "order.place", "params": {"symbol": "BTCUSDT", "side": "BUY",
                                                      "type": "LIMIT", "quantity": "1", "x": 1}},
        {"id": 1, "method": "order.cancel", "params": {"symbol": "BTCUSDT"}},
        {"id": [1], "method": "time"},
        {"id": 1, "method": "replay.ready"},
        {"id": 1, "method": "replay.ready", "params": {"step": -1}},
        {"id": 1, "method": "replay.ready", "params": {"step": 1, "x": 1}},
        {"id": 1, "method": "replay.register", "params": {"step": 1}},
    ]  # fmt: skip
    for msg in bad:
        try:
            S.check_request(msg)
        except AssertionError:
            continue
        raise AssertionError(f"schema accepted {msg}")
