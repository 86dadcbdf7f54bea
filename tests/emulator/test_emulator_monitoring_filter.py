"""The Monitoring filter subset: what it selects and what it refuses."""

from __future__ import annotations

import logging

import pytest
from emulator_helpers import ALPHA

from keyward.emulator import monitoring_filter
from keyward.emulator.errors import RpcError

METRIC = {"type": "m/requests", "labels": {"response_code": "429"}}
RESOURCE = {"type": "consumed_api", "labels": {"credential_id": "apikey:abc", "service": "s"}}


@pytest.mark.parametrize("text,expected", [
    ('metric.type = "m/requests"', True),
    ('metric.type = "m/requests" AND resource.type != "consumed_api"', False),
    ('metric.type = "m/requests" AND resource.labels.credential_id = starts_with("apikey:")', True),
    ('metric.type = "m/requests" AND metric.label.response_code = one_of("200", "429")', True),
    ('metric.type = "m/requests" AND metric.labels.response_code = one_of("200")', False),
    ('metric.type = "m/requests" AND resource.labels.missing = "x"', False),
])
def test_filter_when_parsed_selects_as_monitoring_would(text, expected):
    terms = monitoring_filter.parse(text)
    assert monitoring_filter.matches(terms, METRIC, RESOURCE) is expected


@pytest.mark.parametrize("text", ['metric.type = "a" OR metric.type = "b"', 'project = "x"',
                                  'metric.type = "a" AND', ""])
def test_filter_when_unsupported_is_invalid_argument(text):
    with pytest.raises(RpcError) as caught:
        monitoring_filter.parse(text)
    assert caught.value.code == 400


def test_request_log_when_key_in_query_never_holds_key(emu, gemini, caplog):
    key = emu.create_manual_key(ALPHA[0])["keyString"]
    with caplog.at_level(logging.DEBUG, logger="keyward.emulator"):
        assert gemini(key, via="query")[0] == 200
        gemini("AQ." + "q" * 40, via="query")
    assert caplog.records  # the request log is on at DEBUG ...
    assert key not in caplog.text and "q" * 40 not in caplog.text  # ... and path-only
