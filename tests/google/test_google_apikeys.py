import secrets

import pytest

from keyward.errors import (ApiDisabled, GoogleError, PermissionMissing, PolicyBlocked,
                            Transient, UsageError)
from keyward.google import apikeys
from keyward.google.apikeys import ApiKeysClient

PROJECT = "alpha"
SA = "keyward-gemini@alpha.iam.gserviceaccount.com"


@pytest.fixture
def client(emu, fake_sleep):
    return ApiKeysClient(sleep=fake_sleep, retry_budget=60.0, timeout=5.0)


def _create(client, key_id="kw-a", **kw):
    return client.create_key(PROJECT, key_id, display_name="keyward a", service_account=SA, **kw)


def test_create_key_when_allowed_returns_working_key_with_masked_repr(emu, client):
    created = _create(client, annotations={"keyward/pool": "main"})
    assert emu.key_string_valid(created.key_string)
    assert created.name.endswith("/keys/kw-a") and created.uid and created.etag
    assert created.key_string not in repr(created) and created.key_string not in str(created)
    assert created.key_string[-4:] in repr(created)
    [key] = emu.keys(PROJECT)
    assert key["serviceAccountEmail"] == SA
    assert key["restrictions"]["apiTargets"] == [{"service": "generativelanguage.googleapis.com"}]
    assert key["annotations"] == {"keyward/pool": "main"}


def test_create_key_when_operation_slow_polls_until_done(emu, client, fake_sleep):
    emu.operation_polls = 3
    created = _create(client)
    assert emu.key_string_valid(created.key_string)
    assert fake_sleep.calls == [1.0, 1.0, 1.0]


def test_wait_operation_when_never_done_raises_transient_within_timeout(emu, fake_sleep):
    emu.operation_polls = 10_000
    client = ApiKeysClient(sleep=fake_sleep, operation_timeout=5.0, poll_interval=1.0)
    name = client.start_create(PROJECT, "kw-slow", display_name="slow", service_account=SA)
    with pytest.raises(Transient, match="not done after 5 s"):
        client.wait_operation(name, action="create", project=PROJECT)
    assert fake_sleep.total <= 5.0


def test_start_create_then_wait_operation_returns_key_resource(emu, client):
    name = client.start_create(PROJECT, "kw-split", display_name="split", service_account=SA,
                               allowed_ips=["10.0.0.0/8"])
    assert isinstance(name, str) and name
    key = client.wait_operation(name, action="create", project=PROJECT)
    assert key["name"].endswith("/keys/kw-split")
    assert "@type" not in key
    assert key["restrictions"]["serverKeyRestrictions"] == {"allowedIps": ["10.0.0.0/8"]}


def test_create_key_when_id_already_taken_by_live_key_returns_it(emu, client):
    first = _create(client)
    again = _create(client)
    assert again.uid == first.uid and again.key_string == first.key_string
    assert len(emu.keys(PROJECT)) == 1


def test_create_key_when_id_held_by_deleted_key_raises_conflict(emu, client):
    first = _create(client)
    client.delete_key(first.name)
    with pytest.raises(GoogleError) as info:
        _create(client)
    assert info.value.status == 409


@pytest.mark.parametrize("key_id", ["Upper", "1abc", "ends-", "a" * 64,
                                    "0f8fad5b-d9cb-469f-a165-70867728950e"])
def test_start_create_when_key_id_invalid_raises_usage_error_without_calling(emu, client, key_id):
    emu.deny_permission(PROJECT, "apikeys.keys.create")  # would answer 403 if a call were made
    with pytest.raises(UsageError, match="key id"):
        client.start_create(PROJECT, key_id, display_name="x")


def test_create_key_when_permission_denied_names_permission_and_role(emu, client):
    emu.deny_permission(PROJECT, "apikeys.keys.create")
    with pytest.raises(PermissionMissing) as info:
        _create(client)
    message = str(info.value)
    assert "apikeys.keys.create" in message and "roles/serviceusage.apiKeysAdmin" in message
    assert f"project {PROJECT}" in message


def test_wait_operation_when_operations_get_denied_names_its_permission(emu, client):
    emu.deny_permission(PROJECT, "serviceusage.operations.get")
    emu.operation_polls = 1
    with pytest.raises(PermissionMissing, match="serviceusage.operations.get"):
        _create(client)


def test_create_key_when_api_disabled_says_how_to_enable(emu, client):
    emu.disable_service(PROJECT, "apikeys.googleapis.com")
    with pytest.raises(ApiDisabled) as info:
        _create(client)
    assert f"gcloud services enable apikeys.googleapis.com --project {PROJECT}" in str(info.value)


def test_create_key_when_org_policy_blocks_service_account_keys_names_constraint(emu, client):
    emu.block_service_account_keys(PROJECT)
    with pytest.raises(PolicyBlocked, match="iam.managed.disableServiceAccountApiKeyCreation"):
        _create(client)
    assert emu.keys(PROJECT) == []


def test_list_keys_when_many_pages_returns_all(emu, client, monkeypatch):
    monkeypatch.setattr(apikeys, "PAGE_SIZE", 2)
    for i in range(5):
        emu.create_manual_key(PROJECT)
    keys = client.list_keys(PROJECT)
    assert len(keys) == 5 and len({k["uid"] for k in keys}) == 5
    assert all("keyString" not in k for k in keys)


def test_list_keys_show_deleted_includes_deleted_keys(emu, client):
    live, gone = _create(client, "kw-live"), _create(client, "kw-gone")
    client.delete_key(gone.name)
    assert [k["name"] for k in client.list_keys(PROJECT)] == [live.name]
    assert {k["name"] for k in client.list_keys(PROJECT, show_deleted=True)} == {live.name, gone.name}


def test_get_key_and_find_key_when_absent_return_none(emu, client):
    assert client.find_key(PROJECT, "kw-none") is None
    created = _create(client)
    assert client.find_key(PROJECT, "kw-a")["uid"] == created.uid
    assert client.get_key(created.name)["uid"] == created.uid


def test_get_key_string_returns_the_key_string(emu, client):
    manual = emu.create_manual_key(PROJECT)
    assert client.get_key_string(manual["name"]) == manual["keyString"]


def test_get_key_string_when_denied_names_permission(emu, client):
    manual = emu.create_manual_key(PROJECT)
    emu.deny_permission(PROJECT, "apikeys.keys.getKeyString")
    with pytest.raises(PermissionMissing, match="apikeys.keys.getKeyString"):
        client.get_key_string(manual["name"])


def test_delete_key_twice_is_idempotent_and_undelete_restores(emu, client):
    created = _create(client)
    client.delete_key(created.name, etag=created.etag)
    client.delete_key(created.name)
    assert client.get_key(created.name)["deleteTime"]
    assert not emu.key_string_valid(created.key_string)
    restored = client.undelete_key(created.name)
    assert restored["uid"] == created.uid and "deleteTime" not in restored
    assert emu.key_string_valid(created.key_string)


def test_delete_key_when_missing_is_done(emu, client):
    client.delete_key(apikeys.key_name(PROJECT, "kw-never"))


def test_delete_key_when_etag_stale_rereads_and_deletes(emu, client):
    created = _create(client)
    client.delete_key(created.name, etag='W/"stale"')
    assert client.get_key(created.name).get("deleteTime")


def test_delete_key_when_etag_from_create_answer_deletes(emu, client):
    created = _create(client)  # the emulator touches the key right after creating it
    client.delete_key(created.name, etag=created.etag)
    assert client.get_key(created.name).get("deleteTime")


def test_create_key_when_id_taken_and_already_exists_only_in_operation_returns_key(emu, client):
    first = _create(client)
    emu.already_exists_in = "operation"
    again = _create(client)
    assert again.uid == first.uid


def test_lookup_key_returns_name_and_parent(emu, client):
    created = _create(client)
    found = client.lookup_key(created.key_string)
    assert found["name"] == created.name
    assert found["parent"].startswith("projects/")


def test_lookup_key_when_unknown_error_holds_no_key_string(emu, client):
    fake = "AQ." + secrets.token_urlsafe(32)
    with pytest.raises(GoogleError) as info:
        client.lookup_key(fake)
    assert fake not in str(info.value) and fake not in repr(info.value)
    assert info.value.__cause__ is None


@pytest.mark.parametrize("status", [429, 500, 503])
def test_list_keys_when_error_storm_within_budget_absorbs_it(emu, client, fake_sleep, status):
    emu.create_manual_key(PROJECT)
    emu.inject_fault(service="apikeys", status=status, count=4)
    retries = []
    client._caller.on_retry = lambda n, delay, exc: retries.append(exc.status)
    assert len(client.list_keys(PROJECT)) == 1
    assert retries == [status] * 4
    assert len(fake_sleep.calls) == 4


def test_list_keys_when_storm_outlasts_budget_raises_transient(emu, fake_sleep):
    client = ApiKeysClient(sleep=fake_sleep, retry_budget=20.0)
    emu.inject_fault(service="apikeys", status=503, count=1000)
    with pytest.raises(Transient) as info:
        client.list_keys(PROJECT)
    assert info.value.status == 503
    assert fake_sleep.total < 20.0


def test_create_key_when_storm_hits_creation_still_creates_once(emu, client):
    emu.inject_fault(service="apikeys", path_regex=r"/keys$", status=503, count=2)
    emu.inject_fault(service="apikeys", path_regex=r"^/v2/operations/", status=500, count=2)
    emu.operation_polls = 2
    created = _create(client)
    assert emu.key_string_valid(created.key_string)
    assert len(emu.keys(PROJECT)) == 1


def test_list_keys_when_body_malformed_once_retries(emu, client, fake_sleep):
    emu.inject_fault(service="apikeys", malformed=True, count=1)
    assert client.list_keys(PROJECT) == []
    assert len(fake_sleep.calls) == 1


def test_list_keys_when_body_always_malformed_raises_transient(emu, fake_sleep):
    client = ApiKeysClient(sleep=fake_sleep, retry_budget=10.0)
    emu.inject_fault(service="apikeys", malformed=True, count=1000)
    with pytest.raises(Transient, match="malformed") as info:
        client.list_keys(PROJECT)
    assert info.value.reason == "MALFORMED"


def test_list_keys_when_server_slower_than_timeout_raises_transient(emu, fake_sleep):
    client = ApiKeysClient(sleep=fake_sleep, retry_budget=0.5, timeout=0.2)
    emu.inject_fault(service="apikeys", status=0, latency_ms=800, count=1000)
    with pytest.raises(Transient, match="in time") as info:
        client.list_keys(PROJECT)
    assert info.value.reason == "TIMEOUT"


def test_create_key_when_first_answer_times_out_returns_the_key(emu, fake_sleep):
    client = ApiKeysClient(sleep=fake_sleep, retry_budget=30.0, timeout=0.3)
    emu.inject_fault(service="apikeys", path_regex=r"/keys$", status=0, latency_ms=600, count=1)
    created = _create(client)
    assert emu.key_string_valid(created.key_string)
    assert len(emu.keys(PROJECT)) == 1


def test_errors_from_every_method_never_hold_key_strings(emu, client):
    created = _create(client)
    emu.inject_fault(status=503, count=1000)
    short = ApiKeysClient(retry_budget=0.1, sleep=lambda s: None)
    texts = []
    for call in (lambda: short.lookup_key(created.key_string),
                 lambda: short.get_key_string(created.name),
                 lambda: short.create_key(PROJECT, "kw-b", display_name="b")):
        with pytest.raises(Transient) as info:
            call()
        texts += [str(info.value), repr(info.value)]
    assert not any(created.key_string in t for t in texts)


def test_client_when_api_object_passed_in_uses_it(emu):
    from keyward.google.transport import build_api

    emu.create_manual_key(PROJECT)
    client = ApiKeysClient(api=build_api("apikeys", "v2"), sleep=lambda s: None)
    assert len(client.list_keys(PROJECT)) == 1


def test_get_key_when_name_malformed_raises_usage_error_before_calling(emu, client):
    with pytest.raises(UsageError, match="reading an API key"):
        client.get_key("keys/not-a-resource-name")


def test_googleapiclient_debug_logs_never_hold_key_strings(emu, client, caplog):
    import googleapiclient.model

    created = _create(client)
    caplog.set_level("DEBUG")
    old = googleapiclient.model.dump_request_response
    googleapiclient.model.dump_request_response = True  # bodies too, getKeyString's included
    try:
        client.lookup_key(created.key_string)
        client.get_key_string(created.name)
    finally:
        googleapiclient.model.dump_request_response = old
    assert "lookupKey" in caplog.text  # the URL was logged...
    assert created.key_string not in caplog.text  # ...without the key
