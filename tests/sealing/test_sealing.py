"""The sealing primitive: AES-256-GCM envelopes bound to their row and to their master key."""

from __future__ import annotations

import base64

import pytest

from keyward.errors import MasterKeyError, SecretTampered
from keyward.sealing import PREFIX, Found, MasterKey, Sealer, is_sealed, sealed_by
from support.fakes import fake_auth_key

ROW = b"keys.secret\0k-1\x007"
OTHER_ROW = b"keys.secret\0k-2\x007"


@pytest.fixture
def old():
    return MasterKey.generate("old-file")


@pytest.fixture
def new():
    return MasterKey.generate("new-file")


def test_seal_when_master_key_held_hides_the_key_string_and_names_the_master_key(old):
    secret = fake_auth_key()
    value = Sealer.with_keys(old).seal(secret, ROW)
    assert value.startswith(PREFIX) and is_sealed(value) and sealed_by(value) == old.id
    assert secret not in value and secret[3:19] not in value
    assert Sealer.with_keys(old).open(value, ROW, "key k-1") == secret


def test_seal_when_called_twice_gives_different_values(old):
    secret = fake_auth_key()
    sealer = Sealer.with_keys(old)
    assert sealer.seal(secret, ROW) != sealer.seal(secret, ROW)


def test_seal_when_no_master_key_returns_plain_text_that_opens_as_itself():
    secret = fake_auth_key()
    sealer = Sealer()
    assert sealer.seal(secret, ROW) == secret and sealer.open(secret, ROW, "key k-1") == secret


def test_open_when_copied_to_another_row_is_refused_as_tampered(old):
    value = Sealer.with_keys(old).seal(fake_auth_key(), ROW)
    with pytest.raises(SecretTampered, match="key k-2.*altered, or copied from another row"):
        Sealer.with_keys(old).open(value, OTHER_ROW, "key k-2")


def test_open_when_any_single_bit_flipped_never_yields_a_key_and_names_the_key(old):
    secret = fake_auth_key()
    value = Sealer.with_keys(old).seal(secret, ROW)
    raw = value.encode("ascii")
    outcomes = set()
    for index in range(len(raw)):
        for bit in range(8):
            flipped = bytearray(raw)
            flipped[index] ^= 1 << bit
            try:
                text = flipped.decode("ascii")
            except UnicodeDecodeError:
                continue  # not text: a database column could not hold it
            if not is_sealed(text):
                continue  # the flip hit the prefix: the value no longer claims to be sealed
            with pytest.raises((SecretTampered, MasterKeyError)) as caught:
                Sealer.with_keys(old).open(text, ROW, "key k-1")
            assert "key k-1" in str(caught.value) and secret not in str(caught.value)
            outcomes.add(type(caught.value))
    assert outcomes == {SecretTampered, MasterKeyError}  # payload flips: tampered; id flips: unknown key


def test_open_when_master_key_missing_names_the_key_id_and_where_we_looked(old):
    value = Sealer.with_keys(old).seal(fake_auth_key(), ROW)
    nowhere = Sealer(lambda: Found([], ["/etc/keyward/master.key (no such file)"]))
    with pytest.raises(MasterKeyError) as caught:
        nowhere.open(value, ROW, "key k-1")
    assert old.id in str(caught.value) and "/etc/keyward/master.key (no such file)" in str(caught.value)


def test_open_when_only_another_master_key_held_says_it_is_not_the_right_one(old, new):
    value = Sealer.with_keys(old).seal(fake_auth_key(), ROW)
    with pytest.raises(MasterKeyError, match=f"{old.id}.*not among.*{new.id} from new-file"):
        Sealer.with_keys(new).open(value, ROW, "key k-1")


def test_reseal_when_moving_to_new_master_key_rewraps_only_the_data_key(old, new):
    secret = fake_auth_key()
    value = Sealer.with_keys(old).seal(secret, ROW)
    moved = Sealer.with_keys(new, old).reseal(value, ROW, "key k-1", master=new)
    assert sealed_by(moved) == new.id
    assert moved.rsplit(":", 1)[1] == value.rsplit(":", 1)[1]  # the ciphertext itself is unchanged
    assert Sealer.with_keys(new).open(moved, ROW, "key k-1") == secret
    with pytest.raises(MasterKeyError):
        Sealer.with_keys(old).open(moved, ROW, "key k-1")


def test_reseal_when_value_tampered_refuses_before_rewrapping(old, new):
    value = Sealer.with_keys(old).seal(fake_auth_key(), ROW)
    head, body = value.rsplit(":", 1)
    data = bytearray(base64.b64decode(body))
    data[-1] ^= 1
    with pytest.raises(SecretTampered):
        Sealer.with_keys(new, old).reseal(f"{head}:{base64.b64encode(bytes(data)).decode()}", ROW, "key k-1",
                                          master=new)


def test_open_when_a_new_master_key_appears_later_looks_again(old, new):
    value = Sealer.with_keys(new).seal(fake_auth_key(), ROW)
    sources = [Found([old], ["first look"]), Found([new, old], ["second look"])]
    sealer = Sealer(lambda: sources.pop(0) if len(sources) > 1 else sources[0])
    assert sealer.primary.id == old.id
    sealer.open(value, ROW, "key k-1")  # finds `new` on the second look, without a restart
    assert sealer.primary.id == new.id


def test_master_key_when_not_32_bytes_is_refused_naming_its_source():
    with pytest.raises(MasterKeyError, match="short-file: a master key is 32 bytes, got 16"):
        MasterKey(b"\0" * 16, "short-file")


def test_master_key_repr_never_shows_the_material(old):
    assert base64.b64encode(old.material).decode() not in repr(old) and old.material.hex() not in repr(old)
