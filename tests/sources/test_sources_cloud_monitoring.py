"""Cloud Monitoring as a usage source, against the emulator over HTTP, plus the registry."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sources_contract import PROJECT, UsageSourceContract

from keyward.errors import ConfigError
from keyward.google import gemini
from keyward.google.monitoring import MonitoringClient
from keyward.sources import SOURCES, build_source
from keyward.sources.cloud_monitoring import CloudMonitoringSource, counts_against_quota

MODEL = "gemini-2.5-flash"


@pytest.fixture
def emu(emulated):
    emu = emulated({PROJECT: "111111111111"}, {MODEL: {"rpm": 100, "tpm": 100000, "rpd": 1000}})
    emu.monitoring_lag_seconds = 0
    return emu


@pytest.fixture
def source(emu):
    return CloudMonitoringSource(MonitoringClient(sleep=lambda s: None, retry_budget=2.0))


@pytest.fixture
def make_traffic(emu):
    key = emu.create_manual_key(PROJECT)

    def make(n: int) -> datetime:
        for _ in range(n):
            gemini.generate_content(key["keyString"], MODEL, "hello there")
        return datetime.fromtimestamp(emu.now(), timezone.utc).replace(second=0, microsecond=0)

    make.key = key
    return make


class TestCloudMonitoringSource(UsageSourceContract):
    def test_requests_carry_the_keys_uid_and_tokens_the_quota_metric(self, source, make_traffic):
        minute = make_traffic(2)
        got = source.read(PROJECT, minute, minute + timedelta(minutes=1))
        requests = [o for o in got if o.requests]
        assert {o.credential_uid for o in requests} == {make_traffic.key["uid"]}
        assert all(o.model is None for o in requests)
        assert sum(o.input_tokens for o in got) > 0


@pytest.mark.parametrize("method, code, counted", [
    ("google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent", "200", True),
    ("google.ai.generativelanguage.v1beta.GenerativeService.StreamGenerateContent", "200", True),
    ("google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent", "429", False),
    ("google.ai.generativelanguage.v1beta.ModelService.ListModels", "200", False),
])
def test_only_answered_generate_calls_count_against_quota(method, code, counted):
    assert counts_against_quota(method, code) is counted


def test_registry_builds_sources_by_config_name():
    assert set(SOURCES) == {"cloud_monitoring"}
    fake_client = object()
    assert build_source("cloud_monitoring", client=fake_client).client is fake_client


def test_registry_rejects_an_unknown_source_naming_the_known_ones():
    with pytest.raises(ConfigError, match="cloud_monitoring"):
        build_source("carrier_pigeon")
