"""API Keys v2 through google-api-python-client against the emulator."""

from __future__ import annotations

import json

import pytest
from emulator_helpers import ALPHA, BETA
from googleapiclient.errors import HttpError

PARENT_BY_ID = f"projects/{ALPHA[0]}/locations/global"
PARENT = f"projects/{ALPHA[1]}/locations/global"


def _wait(api_keys, op: dict, limit: int = 10) -> dict:
    for _ in range(limit):
        if op.get("done"):
            return op
        op = api_keys.operations().get(name=op["name"]).execute()
    raise AssertionError("operation never finished")


def _error(exc: HttpError) -> dict:
    return json.loads(exc.content)["error"]


@pytest.fixture
def keys_api(api):
    return api("apikeys", "v2")


def test_create_when_polled_returns_key_with_string_named_by_number(keys_api, emu):
    keys = keys_api.projects().locations().keys()
    op = keys.create(parent=PARENT_BY_ID, keyId="rot-1",
                     body={"displayName": "rotation 1",
                           "serviceAccountEmail": "sa@alpha-proj.iam.gserviceaccount.com"}
                     ).execute()
    assert not op.get("done")
    assert op["name"].startswith(f"operations/akmf.p7-{ALPHA[1]}-")
    # The key exists (the admin view sees it) before the operation reports done.
    assert [k["name"] for k in emu.keys(ALPHA[0])] == [f"{PARENT}/keys/rot-1"]
    first_poll = keys_api.operations().get(name=op["name"]).execute()
    assert "done" not in first_poll
    done = _wait(keys_api, first_poll)
    key = done["response"]
    assert key["@type"] == "type.googleapis.com/google.api.apikeys.v2.Key"
    assert key["name"] == f"{PARENT}/keys/rot-1"
    assert key["keyString"].startswith("AQ.")
    assert key["displayName"] == "rotation 1"
    assert emu.key_string_valid(key["keyString"])


def test_create_without_service_account_makes_standard_key(keys_api):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, body={}).execute())["response"]
    assert key["keyString"].startswith("AIza") and len(key["keyString"]) == 39
    assert "serviceAccountEmail" not in key


def test_get_key_string_and_lookup_when_key_exists_agree(keys_api):
    keys = keys_api.projects().locations().keys()
    _wait(keys_api, keys.create(parent=PARENT, keyId="look",
                                body={"serviceAccountEmail": "a@b.iam.gserviceaccount.com"}
                                ).execute())
    name = f"{PARENT}/keys/look"
    secret = keys.getKeyString(name=name).execute()["keyString"]
    found = keys_api.keys().lookupKey(keyString=secret).execute()
    assert found == {"parent": PARENT, "name": name}
    got = keys.get(name=name).execute()
    assert "keyString" not in got and got["uid"] and got["etag"]


def test_delete_then_undelete_when_etag_current_restores_key(keys_api, emu):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, keyId="gone", body={
        "serviceAccountEmail": "a@b.iam.gserviceaccount.com"}).execute())["response"]
    current = keys.get(name=key["name"]).execute()["etag"]
    deleted = _wait(keys_api, keys.delete(name=key["name"], etag=current).execute())
    assert "deleteTime" in deleted["response"]
    assert not emu.key_string_valid(key["keyString"])
    assert keys.list(parent=PARENT).execute().get("keys", []) == []
    shown = keys.list(parent=PARENT, showDeleted=True).execute()["keys"]
    assert [k["name"] for k in shown] == [key["name"]]
    restored = _wait(keys_api, keys.undelete(name=key["name"], body={}).execute())["response"]
    assert "deleteTime" not in restored
    assert emu.key_string_valid(key["keyString"])


def test_undelete_when_past_30_days_is_not_found(keys_api, emu):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, body={}).execute())["response"]
    _wait(keys_api, keys.delete(name=key["name"]).execute())
    emu.advance(31 * 86400)
    with pytest.raises(HttpError) as caught:
        keys.undelete(name=key["name"], body={}).execute()
    assert caught.value.status_code == 404


def test_delete_when_etag_stale_is_aborted(keys_api):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, body={}).execute())["response"]
    with pytest.raises(HttpError) as caught:
        keys.delete(name=key["name"], etag='W/"stale"').execute()
    assert caught.value.status_code == 409
    assert _error(caught.value)["status"] == "ABORTED"


def test_list_when_more_than_page_size_pages_through_all(keys_api):
    keys = keys_api.projects().locations().keys()
    for i in range(5):
        _wait(keys_api, keys.create(parent=PARENT, keyId=f"k{i}", body={}).execute())
    names, token, pages = [], None, 0
    while True:
        resp = keys.list(parent=PARENT, pageSize=2, pageToken=token).execute()
        names += [k["name"].rsplit("/", 1)[1] for k in resp.get("keys", [])]
        pages += 1
        token = resp.get("nextPageToken")
        if not token:
            break
    assert names == ["k0", "k1", "k2", "k3", "k4"] and pages == 3


@pytest.mark.parametrize("bad_id", ["Upper", "1starts-with-digit", "ends-with-",
                                    "123e4567-e89b-12d3-a456-426614174000", "x" * 64])
def test_create_when_key_id_invalid_is_400(keys_api, bad_id):
    with pytest.raises(HttpError) as caught:
        keys_api.projects().locations().keys().create(
            parent=PARENT, keyId=bad_id, body={}).execute()
    assert caught.value.status_code == 400
    assert _error(caught.value)["status"] == "INVALID_ARGUMENT"


def test_create_when_key_id_taken_and_set_to_refuse_in_call_is_already_exists(keys_api, emu):
    emu.already_exists_in = "call"
    keys = keys_api.projects().locations().keys()
    keys.create(parent=PARENT, keyId="dup", body={}).execute()
    with pytest.raises(HttpError) as caught:
        keys.create(parent=PARENT_BY_ID, keyId="dup", body={}).execute()
    assert caught.value.status_code == 409
    assert _error(caught.value)["status"] == "ALREADY_EXISTS"


def test_get_when_key_unknown_is_not_found(keys_api):
    with pytest.raises(HttpError) as caught:
        keys_api.projects().locations().keys().get(name=f"{PARENT}/keys/nope").execute()
    assert caught.value.status_code == 404


def test_create_when_permission_denied_is_403_naming_permission(keys_api, emu):
    emu.deny_permission(ALPHA[0], "apikeys.keys.create")
    with pytest.raises(HttpError) as caught:
        keys_api.projects().locations().keys().create(parent=PARENT, body={}).execute()
    assert caught.value.status_code == 403
    info = caught.value.error_details[0]
    assert info["reason"] == "IAM_PERMISSION_DENIED"
    assert info["metadata"]["permission"] == "apikeys.keys.create"
    # Other permissions still work.
    keys_api.projects().locations().keys().list(parent=PARENT).execute()


def test_list_when_api_disabled_is_service_disabled(keys_api, emu):
    emu.disable_service(BETA[0], "apikeys.googleapis.com")
    with pytest.raises(HttpError) as caught:
        keys_api.projects().locations().keys().list(
            parent=f"projects/{BETA[0]}/locations/global").execute()
    assert caught.value.status_code == 403
    error = _error(caught.value)
    info = next(d for d in error["details"] if d["@type"].endswith("ErrorInfo"))
    assert info["reason"] == "SERVICE_DISABLED" and info["domain"] == "googleapis.com"
    assert info["metadata"]["service"] == "apikeys.googleapis.com"
    assert info["metadata"]["consumer"] == f"projects/{BETA[1]}"
    links = next(d for d in error["details"] if d["@type"].endswith("Help"))["links"]
    assert "apikeys.googleapis.com" in links[0]["url"]


def test_create_bound_key_when_org_policy_blocks_is_failed_precondition(keys_api, emu):
    emu.block_service_account_keys(ALPHA[0])
    keys = keys_api.projects().locations().keys()
    with pytest.raises(HttpError) as caught:
        keys.create(parent=PARENT, body={
            "serviceAccountEmail": "sa@alpha-proj.iam.gserviceaccount.com"}).execute()
    assert caught.value.status_code == 400
    error = _error(caught.value)
    assert error["status"] == "FAILED_PRECONDITION"
    violation = error["details"][0]["violations"][0]
    assert violation["type"] == "constraints/iam.managed.disableServiceAccountApiKeyCreation"
    assert emu.keys(ALPHA[0]) == []
    # Unbound keys are still allowed by that policy.
    keys.create(parent=PARENT, body={}).execute()


def test_create_when_project_unknown_is_permission_denied(keys_api):
    with pytest.raises(HttpError) as caught:
        keys_api.projects().locations().keys().create(
            parent="projects/nobody/locations/global", body={}).execute()
    assert caught.value.status_code == 403


def test_patch_when_restrictions_given_updates_key_and_etag(keys_api):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, keyId="p", body={}).execute())["response"]
    restrictions = {"apiTargets": [{"service": "generativelanguage.googleapis.com"}]}
    patched = _wait(keys_api, keys.patch(name=key["name"], updateMask="restrictions",
                                         body={"restrictions": restrictions}).execute())
    assert patched["response"]["restrictions"] == restrictions
    assert patched["response"]["etag"] != key["etag"]


def test_operation_when_polls_setting_is_three_finishes_on_fourth_read(keys_api, emu):
    emu.operation_polls = 3
    op = keys_api.projects().locations().keys().create(parent=PARENT, body={}).execute()
    reads = [keys_api.operations().get(name=op["name"]).execute().get("done", False)
             for _ in range(4)]
    assert reads == [False, False, False, True]


def test_create_when_key_id_taken_answers_200_and_fails_in_operation(keys_api):
    keys = keys_api.projects().locations().keys()
    _wait(keys_api, keys.create(parent=PARENT, keyId="dup2", body={}).execute())
    op = keys.create(parent=PARENT_BY_ID, keyId="dup2", body={}).execute()
    assert "error" not in op
    done = _wait(keys_api, op)
    assert done["error"]["code"] == 6  # ALREADY_EXISTS
    assert "already exists" in done["error"]["message"]


def test_create_when_key_id_held_by_deleted_key_fails_until_30_days_passed(keys_api, emu):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, keyId="reuse", body={}).execute())["response"]
    _wait(keys_api, keys.delete(name=key["name"]).execute())
    emu.advance(29 * 86400)
    assert _wait(keys_api, keys.create(parent=PARENT, keyId="reuse", body={}).execute())["error"]["code"] == 6
    emu.advance(2 * 86400)
    again = _wait(keys_api, keys.create(parent=PARENT, keyId="reuse", body={}).execute())
    assert again["response"]["name"] == key["name"]
    assert again["response"]["uid"] != key["uid"]


def test_key_when_create_operation_not_done_reads_404_then_appears(keys_api, emu):
    emu.operation_polls, emu.operation_seconds = 2, 3600
    keys = keys_api.projects().locations().keys()
    op = keys.create(parent=PARENT, keyId="slow", body={}).execute()
    name = f"{PARENT}/keys/slow"
    for read in (lambda: keys.get(name=name).execute(),
                 lambda: keys.getKeyString(name=name).execute(),
                 lambda: keys.delete(name=name).execute()):
        with pytest.raises(HttpError) as caught:
            read()
        assert caught.value.status_code == 404
    assert keys.list(parent=PARENT).execute().get("keys", []) == []
    _wait(keys_api, op)
    assert keys.get(name=name).execute()["name"] == name


def test_key_when_create_operation_never_polled_appears_after_operation_seconds(keys_api, emu):
    emu.operation_polls, emu.operation_seconds = 5, 10
    keys = keys_api.projects().locations().keys()
    keys.create(parent=PARENT, keyId="unpolled", body={}).execute()
    name = f"{PARENT}/keys/unpolled"
    with pytest.raises(HttpError):
        keys.get(name=name).execute()
    emu.advance(11)
    assert keys.get(name=name).execute()["name"] == name


def test_delete_when_etag_from_create_answer_is_aborted(keys_api):
    keys = keys_api.projects().locations().keys()
    key = _wait(keys_api, keys.create(parent=PARENT, keyId="etag", body={}).execute())["response"]
    with pytest.raises(HttpError) as caught:
        keys.delete(name=key["name"], etag=key["etag"]).execute()
    assert _error(caught.value)["status"] == "ABORTED"
    fresh = keys.get(name=key["name"]).execute()
    assert fresh["etag"] != key["etag"]
    assert "deleteTime" in _wait(keys_api, keys.delete(name=key["name"], etag=fresh["etag"]).execute())["response"]
