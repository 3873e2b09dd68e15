"""Cross-user authorisation: user B tries every operation on user A's objects and finds
nothing; an admin's session reads and manages them; an admin's API key does not."""

from __future__ import annotations

from typing import Any

from resolvers.core.models import Role, User
from resolvers.core.settings import Settings
from tests.conftest import GraphQLClient, Server, open_socket, serving
from tests.schema.test_sessions import code_of, promote, refresh, sign_up
from tests.schema.test_subscriptions import EVENTS, WRITE, events_of, first_text
from tests.schema.test_uploads import png, upload

CREATION = "query C($id: ID!) { creation(id: $id) { id status owner { email } } }"
CREATIONS = "{ creations(first: 100) { edges { node { id owner { email } } } } }"
CREATIONS_OF = """
query C($owner: ID) { creations(first: 100, ownerId: $owner) { edges { node { id } } } }
"""
START = """
mutation S($input: WriteInput!) { write(input: $input) { ... on Creation { id status } } }
"""
CANCEL = """
mutation C($id: ID!) {
  cancelCreation(id: $id) { __typename ... on Creation { status } ... on Error { code } }
}
"""
TRANSLATE = """
mutation T($input: TranslateInput!) {
  translate(input: $input, wait: true) {
    __typename ... on Creation { id output } ... on Error { code message }
  }
}
"""
CREATE_LEXICON = """
mutation L($input: CreateLexiconInput!) { createLexicon(input: $input) { ... on Lexicon { id } } }
"""
LEXICON = "query L($id: ID!) { lexicon(id: $id) { name entries { source target } } }"
LEXICONS = "{ lexicons { id } }"
UPDATE_LEXICON = """
mutation U($id: ID!) {
  updateLexicon(id: $id, input: {name: "stolen", entries: [{source: "a", target: "b"}]}) {
    __typename ... on Error { code }
  }
}
"""
DELETE_LEXICON = (
    "mutation D($id: ID!) { deleteLexicon(id: $id) { __typename ... on Error { code } } }"
)
SAVE_TEMPLATE = """
mutation S { saveSwotTemplate(name: "lean", template: {items: 2}) { ... on Preset { id } } }
"""
SAVE_SPREAD = """
mutation S { saveTarotSpread(name: "pair", positions: ["A", "B"]) { ... on Preset { id } } }
"""
SWOT = """
mutation S($input: SwotInput!) { swot(input: $input) { __typename ... on Error { code } } }
"""
TAROT = """
mutation T($input: TarotInput!) { tarot(input: $input) { __typename ... on Error { code } } }
"""
PRESETS = "query P($kind: PresetKind!) { presets(kind: $kind) { id } }"
DELETE_PRESET = """
mutation D($kind: PresetKind!, $id: ID!) {
  deletePreset(kind: $kind, id: $id) { __typename ... on Error { code } }
}
"""
UPLOAD = "query U($id: ID!) { upload(id: $id) { id status } }"
CAPTION = """
mutation C($input: ImageCaptionInput!) {
  imageCaption(input: $input, wait: true) {
    __typename ... on Creation { status } ... on Error { code }
  }
}
"""
CREATE_KEY = """
mutation K($scopes: [String!]!) {
  createApiKey(input: {name: "partner", scopes: $scopes}) {
    ... on NewApiKey { secret key { id } }
  }
}
"""
KEYS = "{ apiKeys { id } }"
REVOKE_KEY = """
mutation R($id: ID!) {
  revokeApiKey(id: $id) { __typename ... on ApiKey { revokedAt } ... on Error { code } }
}
"""
ME = "{ me { id } }"
OTHERS_IDS = ["00000000-0000-0000-0000-000000000000", "not-a-uuid", ""]


async def subscription_error(server: Server, token: str, creation_id: str) -> Any:
    """The error code of following `creation_id` over a socket."""
    async with open_socket(server.ws_url, token) as sock:
        op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
        message = await sock.receive()
    assert message["id"] == op and message["type"] in ("error", "next"), message
    errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
    return errors[0]["extensions"]["code"]


async def nodes(graphql: GraphQLClient, token: str) -> list[dict[str, Any]]:
    data = await graphql.query(CREATIONS, token=token)
    return [edge["node"] for edge in data["creations"]["edges"]]


async def test_another_users_creation_is_invisible_and_untouchable(settings: Settings) -> None:
    # given A's creation, streaming to A while it runs
    async with (
        serving(settings, dev_token_delay=0.005) as (server, graphql, a),
        open_socket(server.ws_url, a) as watching,
    ):
        write = {"input": {"prompt": "A's secret draft", "maxTokens": 300}}
        op = await watching.subscribe(WRITE, write)
        creation_id = (await watching.receive())["payload"]["data"]["write"]["creationId"]
        b = await graphql.register()
        # when B reads, lists, cancels and follows it
        assert await code_of(graphql, CREATION, {"id": creation_id}, b) == "NOT_FOUND"
        assert await nodes(graphql, b) == []
        cancel = (await graphql.query(CANCEL, {"id": creation_id}, b))["cancelCreation"]
        assert cancel == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
        assert await subscription_error(server, b, creation_id) == "NOT_FOUND"
        # (ids that name nothing look exactly the same)
        for other in OTHERS_IDS:
            assert await code_of(graphql, CREATION, {"id": other}, b) == "NOT_FOUND"
        # then A's creation ran on untouched to its end, and B owns nothing
        rest = events_of(await watching.collect(op))
        assert rest[-1]["__typename"] == "CreationCompleted", rest[-1]
        assert len(rest[-1]["creation"]["output"].split()) == 300
        assert [node["id"] for node in await nodes(graphql, a)] == [creation_id]
        assert await nodes(graphql, b) == []


async def test_an_admin_reads_lists_follows_and_cancels_anyones_creation(
    settings: Settings,
) -> None:
    async with serving(settings, dev_token_delay=0.005) as (server, graphql, a):
        # given A's running creation and an admin
        write = {"input": {"prompt": "long and slow", "maxTokens": 2000}}
        creation_id = (await graphql.query(START, write, a))["write"]["id"]
        admin = await promote(graphql, await sign_up(graphql))
        a_email = (await graphql.query(CREATION, {"id": creation_id}, a))["creation"]["owner"]
        # then the admin reads it and sees it among everyone's creations
        read = (await graphql.query(CREATION, {"id": creation_id}, admin.access))["creation"]
        assert read["owner"] == a_email and read["status"] == "RUNNING"
        assert creation_id in [node["id"] for node in await nodes(graphql, admin.access)]
        # and follows it over a socket, and cancels it mid-stream
        async with open_socket(server.ws_url, admin.access) as sock:
            op = await sock.subscribe(EVENTS, {"id": creation_id, "after": 0})
            await first_text(sock)
            cancel = await graphql.query(CANCEL, {"id": creation_id}, admin.access)
            assert cancel["cancelCreation"]["__typename"] == "Creation"
            rest = events_of(await sock.collect(op, timeout=10))
        assert rest[-1]["__typename"] == "CreationCancelled"
        status = (await graphql.query(CREATION, {"id": creation_id}, a))["creation"]["status"]
        assert status == "CANCELLED"


async def test_an_admins_api_key_has_no_admin_powers(client: GraphQLClient) -> None:
    a = await sign_up(client)
    mine = await client.query(START, {"input": {"prompt": "mine"}}, a.access)
    admin = await promote(client, await sign_up(client))
    made = await client.query(CREATE_KEY, {"scopes": ["creations:read"]}, admin.access)
    key = made["createApiKey"]["secret"]
    assert await code_of(client, CREATION, {"id": mine["write"]["id"]}, key) == "NOT_FOUND"
    assert await nodes(client, key) == []


async def test_an_admin_lists_one_users_creations_by_owner_id(client: GraphQLClient) -> None:
    a, b = await sign_up(client), await sign_up(client)
    a_made = (await client.query(START, {"input": {"prompt": "by a"}}, a.access))["write"]["id"]
    await client.query(START, {"input": {"prompt": "by b"}}, b.access)
    admin = await promote(client, await sign_up(client))
    listed = await client.query(CREATIONS_OF, {"owner": a.id}, admin.access)
    assert [edge["node"]["id"] for edge in listed["creations"]["edges"]] == [a_made]


async def test_a_user_passing_owner_id_is_forbidden(client: GraphQLClient) -> None:
    a, b = await sign_up(client), await sign_up(client)
    for owner in (a.id, b.id):
        assert await code_of(client, CREATIONS_OF, {"owner": owner}, b.access) == "FORBIDDEN"


async def test_another_users_lexicon_is_invisible_untouchable_and_unusable(
    client: GraphQLClient,
) -> None:
    # given A's lexicon
    a, b = await sign_up(client), await sign_up(client)
    terms = [{"source": "model", "target": "模型"}]
    lexicon_input = {"name": "A's terms", "sourceLang": "en", "targetLang": "zh", "entries": terms}
    created = await client.query(CREATE_LEXICON, {"input": lexicon_input}, a.access)
    lexicon_id = created["createLexicon"]["id"]
    # when B reads, lists, changes, deletes and translates with it
    assert await code_of(client, LEXICON, {"id": lexicon_id}, b.access) == "NOT_FOUND"
    assert (await client.query(LEXICONS, token=b.access))["lexicons"] == []
    for mutation in (UPDATE_LEXICON, DELETE_LEXICON):
        result = next(iter((await client.query(mutation, {"id": lexicon_id}, b.access)).values()))
        assert result == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    text = {"text": "the model", "targetLang": "zh", "sourceLang": "en", "lexiconId": lexicon_id}
    translated = (await client.query(TRANSLATE, {"input": text}, b.access))["translate"]
    assert translated["__typename"] == "NotFoundError", translated
    # then nothing changed and B started nothing
    kept = (await client.query(LEXICON, {"id": lexicon_id}, a.access))["lexicon"]
    assert kept == {"name": "A's terms", "entries": terms}
    assert await nodes(client, b.access) == []
    # while an admin may read it
    admin = await promote(client, await sign_up(client))
    assert (await client.query(LEXICON, {"id": lexicon_id}, admin.access))["lexicon"] == kept


async def test_another_users_presets_are_invisible_untouchable_and_unusable(
    client: GraphQLClient,
) -> None:
    a, b = await sign_up(client), await sign_up(client)
    template_id = (await client.query(SAVE_TEMPLATE, token=a.access))["saveSwotTemplate"]["id"]
    spread_id = (await client.query(SAVE_SPREAD, token=a.access))["saveTarotSpread"]["id"]
    # B cannot run with them
    swot = {"input": {"subject": "a bakery", "templateId": template_id}}
    assert (await client.query(SWOT, swot, b.access))["swot"]["code"] == "NOT_FOUND"
    tarot = {"input": {"spreadId": spread_id, "seed": 1}}
    assert (await client.query(TAROT, tarot, b.access))["tarot"]["code"] == "NOT_FOUND"
    # nor see or delete them
    for kind, preset_id in (("SWOT_TEMPLATE", template_id), ("TAROT_SPREAD", spread_id)):
        assert (await client.query(PRESETS, {"kind": kind}, b.access))["presets"] == []
        gone = await client.query(DELETE_PRESET, {"kind": kind, "id": preset_id}, b.access)
        assert gone["deletePreset"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
        listed = await client.query(PRESETS, {"kind": kind}, a.access)
        assert listed["presets"] == [{"id": preset_id}]
    # (a template id is not a spread id either)
    wrong = {"kind": "TAROT_SPREAD", "id": template_id}
    assert (await client.query(DELETE_PRESET, wrong, a.access))["deletePreset"]["code"] == (
        "NOT_FOUND"
    )
    assert await nodes(client, b.access) == []


async def test_another_users_upload_is_invisible_and_unusable(client: GraphQLClient) -> None:
    # given A's uploaded image
    a, b = await sign_up(client), await sign_up(client)
    upload_id, response = await upload(client, a.access, png(32, 32))
    assert response.status_code == 200, response.text
    # when B reads it and captions it
    assert await code_of(client, UPLOAD, {"id": upload_id}, b.access) == "NOT_FOUND"
    captioned = await client.query(CAPTION, {"input": {"uploadId": upload_id}}, b.access)
    assert captioned["imageCaption"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    # then it is untouched (still unchecked) and B started nothing
    assert (await client.query(UPLOAD, {"id": upload_id}, a.access))["upload"]["status"] == (
        "PENDING"
    )
    assert await nodes(client, b.access) == []
    # an admin may read it; A may use it
    admin = await promote(client, await sign_up(client))
    seen = (await client.query(UPLOAD, {"id": upload_id}, admin.access))["upload"]
    assert seen == {"id": upload_id, "status": "PENDING"}
    mine = await client.query(CAPTION, {"input": {"uploadId": upload_id}}, a.access)
    assert mine["imageCaption"] == {"__typename": "Creation", "status": "COMPLETED"}


async def test_another_users_api_key_cannot_be_revoked_or_listed(client: GraphQLClient) -> None:
    a, b = await sign_up(client), await sign_up(client)
    made = (await client.query(CREATE_KEY, {"scopes": ["tools:write"]}, a.access))["createApiKey"]
    revoked = await client.query(REVOKE_KEY, {"id": made["key"]["id"]}, b.access)
    assert revoked["revokeApiKey"] == {"__typename": "NotFoundError", "code": "NOT_FOUND"}
    for other in OTHERS_IDS:
        missing = await client.query(REVOKE_KEY, {"id": other}, b.access)
        assert missing["revokeApiKey"]["code"] == "NOT_FOUND"
    assert (await client.query(KEYS, token=b.access))["apiKeys"] == []
    assert (await client.query(ME, token=made["secret"]))["me"]["id"] == a.id


async def test_an_admins_key_list_holds_only_their_own_keys(client: GraphQLClient) -> None:
    a = await sign_up(client)
    await client.query(CREATE_KEY, {"scopes": ["tools:write"]}, a.access)
    admin = await promote(client, await sign_up(client))
    own = await client.query(CREATE_KEY, {"scopes": ["tools:write"]}, admin.access)
    listed = (await client.query(KEYS, token=admin.access))["apiKeys"]
    assert listed == [{"id": own["createApiKey"]["key"]["id"]}]


async def test_a_refresh_carries_the_accounts_current_role(client: GraphQLClient) -> None:
    # given someone else's creation, and a user's session
    stranger = await client.register()
    theirs = await client.query(START, {"input": {"prompt": "theirs", "maxTokens": 3}}, stranger)
    creation = {"id": theirs["write"]["id"]}
    person = await sign_up(client)
    # when the account is made an admin, its current token keeps the role it was made with
    await User.filter(id=person.id).update(role=Role.ADMIN)
    assert await code_of(client, CREATION, creation, person.access) == "NOT_FOUND"
    # then the next refresh brings the admin's powers
    promoted = await refresh(client, person.refresh)
    assert promoted["user"]["role"] == "ADMIN"
    assert (await client.query(CREATION, creation, promoted["accessToken"]))["creation"]
    # and after a demotion the next refresh takes them away
    await User.filter(id=person.id).update(role=Role.USER)
    demoted = await refresh(client, promoted["refreshToken"])
    assert demoted["user"]["role"] == "USER"
    assert await code_of(client, CREATION, creation, demoted["accessToken"]) == "NOT_FOUND"
