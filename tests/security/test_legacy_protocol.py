"""Issue 11, low finding: queries and mutations over the legacy graphql-ws protocol (which
runs subscriptions only) answered INTERNAL, with a traceback in the log."""

from __future__ import annotations

import pytest

from resolvers.core.settings import Settings
from tests.conftest import open_socket, serving


@pytest.mark.parametrize(
    ("document", "kind"),
    [("{ me { id } }", "query"), ("mutation { logout { __typename } }", "mutation")],
)
async def test_a_query_or_mutation_over_the_legacy_protocol_is_a_clear_refusal(
    settings: Settings, document: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        serving(settings) as (server, _client, token),
        open_socket(server.ws_url, token, protocol="graphql-ws") as sock,
    ):
        op_id = await sock.subscribe(document)
        message = await sock.receive()
        while message.get("id") != op_id:
            message = await sock.receive()

    payload = message["payload"]
    errors = payload if isinstance(payload, list) else payload.get("errors", [payload])
    assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
    assert f"does not run {kind} operations" in errors[0]["message"]
    assert "Traceback" not in caplog.text
