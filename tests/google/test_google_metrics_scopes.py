"""The Metrics Scopes client against the emulator: membership by number, errors named."""

import pytest

from keyward.errors import PermissionMissing
from keyward.google.metrics_scopes import MetricsScopesClient

SCOPE = ("watch-tower", "900000000000")


@pytest.fixture
def scoped(emu):
    emu.add_project(*SCOPE)
    emu.add_to_metrics_scope(SCOPE[0], "alpha")
    return emu


def test_get_returns_the_scope_number_and_its_members_numbers(scoped, fake_sleep):
    scope = MetricsScopesClient(sleep=fake_sleep, retry_budget=5).get(SCOPE[0])
    assert scope.scope == SCOPE[0] and scope.number == SCOPE[1]
    assert scope.members == {"111111111111", SCOPE[1]}


def test_get_when_permission_is_missing_names_it_and_the_role(scoped, fake_sleep):
    scoped.deny_permission(SCOPE[0], "resourcemanager.projects.get")
    with pytest.raises(PermissionMissing) as caught:
        MetricsScopesClient(sleep=fake_sleep, retry_budget=5).get(SCOPE[0])
    assert "resourcemanager.projects.get" in str(caught.value)
    assert "roles/monitoring.viewer" in str(caught.value)


def test_get_when_google_keeps_failing_retries_then_gives_up_transient(scoped, fake_sleep):
    from keyward.errors import Transient

    scoped.inject_fault("monitoring", "metricsScopes", status=503, count=100)
    with pytest.raises(Transient):
        MetricsScopesClient(sleep=fake_sleep, retry_budget=5).get(SCOPE[0])
    assert fake_sleep.calls  # it did retry
