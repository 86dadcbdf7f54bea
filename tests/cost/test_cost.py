"""Cost: prices in the config, estimated spend per project and pool for the Pacific day and month,
budgets that warn and, when told to, withdraw the key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from publishing_helpers import MODEL, config_text, make_world

from keyward.config import load_config
from keyward.cost import BudgetConfig, Price, Spend, check_budget, price_for
from keyward.errors import ConfigError
from keyward.publishing.service import publish_pools
from keyward.quota.windows import minute_floor, pacific_date
from keyward.status import build_status
from keyward.storage import store as q
from keyward.storage import usage_queries as uq

PRICES = f'''
[prices."{MODEL}"]
input = 0.30
output = 2.50
currency = "USD"

[prices."gemini-2.5-pro*"]
input = 1.25
output = 10.0
'''


def test_price_for_when_exact_or_glob_prefers_exact_then_longest_glob():
    prices = {"gemini-2.5-pro": Price(1, 2), "gemini-*": Price(3, 4), "gemini-2.5-*": Price(5, 6)}
    assert price_for(prices, "gemini-2.5-pro") == Price(1, 2)
    assert price_for(prices, "gemini-2.5-flash") == Price(5, 6)
    assert price_for(prices, "gemini-2.0-flash") == Price(3, 4)
    assert price_for(prices, "gemma-3") is None


@pytest.mark.parametrize("day,month,expected", [
    (0.0, 0.0, (0.0, "daily", False, False)),
    (8.0, 10.0, (0.8, "daily", True, False)),
    (10.0, 10.0, (1.0, "daily", True, True)),
    (1.0, 95.0, (0.95, "monthly", True, False)),
])
def test_check_budget_when_spend_grows_warns_then_spends(day, month, expected):
    check = check_budget(BudgetConfig(daily=10.0, monthly=100.0, warn_at=0.8), Spend(day, month))
    assert (round(check.fraction, 4), check.period, check.warn, check.spent) == expected


def test_config_when_prices_bad_reports_every_problem(tmp_path):
    path = tmp_path / "k.toml"
    path.write_text('[prices."a"]\ninput = -1\noutput = 2\n[prices."b"]\noutput = 1\ncurrency = "usd"\n'
                    '[prices."c"]\ninput = 1\noutput = 1\ncurrency = "EUR"\n[prices."d"]\ninput = 1\noutput = 1\n'
                    '[pools.default.budget]\nwarn_at = 2\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    text = str(info.value)
    for fragment in ("prices.a.input", "prices.b.input", "prices.b.currency", "one currency",
                     "pools.default.budget", "warn_at"):
        assert fragment in text


def _use(world, project: str, input_tokens: int, output_tokens: int, at=None) -> None:
    at = at or world.clock.now
    with world.ctx.store.write() as s:
        pk = q.get_project(s, project).id
        uq.add_local(s, pk, MODEL, minute_floor(at), pacific_date(at), (1, input_tokens, output_tokens))


def test_status_when_prices_configured_shows_day_and_month_spend(tmp_path):
    text = config_text(tmp_path) + PRICES
    world = make_world(tmp_path, text)
    try:
        world.add_key("alpha-1")
        _use(world, "alpha-1", 1_000_000, 100_000)                                      # today: 0.30 + 0.25
        _use(world, "alpha-1", 2_000_000, 0, at=world.clock.now - timedelta(days=5))    # this month: 0.60
        _use(world, "beta-2", 1_000_000, 0, at=world.clock.now - timedelta(days=40))   # last month: nothing
        status = build_status(world.ctx)
        alpha = next(p for p in status["projects"] if p["project_id"] == "alpha-1")
        beta = next(p for p in status["projects"] if p["project_id"] == "beta-2")
        assert alpha["cost"] == {"currency": "USD", "day": 0.55, "month": 1.15, "unpriced_models": []}
        assert beta["cost"]["month"] == 0.0
        [pool] = status["pools"]
        assert pool["cost"]["day"] == 0.55 and pool["cost"]["month"] == 1.15 and pool["cost"]["budget"] is None
    finally:
        world.ctx.close()


def test_status_when_no_prices_has_null_cost(world_plain):
    status = build_status(world_plain.ctx)
    assert all(p["cost"] is None for p in status["projects"]) and status["pools"][0]["cost"] is None


@pytest.fixture
def world_plain(tmp_path):
    w = make_world(tmp_path)
    yield w
    w.ctx.close()


def _budget_world(tmp_path, stop: bool):
    text = config_text(tmp_path, extra="") + PRICES
    text = text.replace("[pools.main]\n", f"[pools.main.budget]\ndaily = 1.0\nwarn_at = 0.5\nstop = {str(stop).lower()}\n\n[pools.main]\n", 1)
    return make_world(tmp_path, text)


def test_budget_when_spent_and_stop_withdraws_key_until_next_day(tmp_path):
    world = _budget_world(tmp_path, stop=True)
    try:
        _a, secret = world.add_key("alpha-1")
        publish_pools(world.ctx, trigger="timer")
        key_file = tmp_path / "keys" / "main.key"
        assert key_file.read_text().strip() == secret
        _use(world, "alpha-1", 1_000_000, 0)          # 0.30 of 1.00: below warn_at
        status = build_status(world.ctx)
        assert [w["code"] for w in status["warnings"] if w["code"].startswith("budget")] == []
        _use(world, "alpha-1", 1_000_000, 0)          # 0.60: warn
        assert "budget_warning" in [w["code"] for w in build_status(world.ctx)["warnings"]]
        _use(world, "alpha-1", 0, 200_000)            # 0.60 + 0.50 = 1.10: spent
        [result] = publish_pools(world.ctx, trigger="timer")
        assert "budget spent" in result.reason and not key_file.exists()
        status = build_status(world.ctx)
        assert "budget_reached" in [w["code"] for w in status["warnings"]]
        assert status["pools"][0]["cost"]["budget"]["spent"] is True
        assert world.events("budget.stopped")
        from keyward import client
        from keyward.errors import NothingPublished

        with pytest.raises(NothingPublished, match="spent its budget"):
            client.current_key("main", config_path=str(tmp_path / "keyward.toml"), env=world.ctx.env)
        world.clock.advance(days=1)                   # a new Pacific day: the daily budget is fresh
        publish_pools(world.ctx, trigger="timer")
        assert key_file.read_text().strip() == secret
    finally:
        world.ctx.close()


def test_budget_when_spent_without_stop_keeps_publishing_and_warns(tmp_path):
    world = _budget_world(tmp_path, stop=False)
    try:
        _a, secret = world.add_key("alpha-1")
        _use(world, "alpha-1", 4_000_000, 0)
        publish_pools(world.ctx, trigger="timer")
        assert (tmp_path / "keys" / "main.key").read_text().strip() == secret
        [warning] = [w for w in build_status(world.ctx)["warnings"] if w["code"] == "budget_reached"]
        assert "1.20 today" in warning["message"] and "withdrawn" not in warning["message"]
    finally:
        world.ctx.close()


def test_status_screen_when_prices_configured_shows_spend_and_budget(tmp_path):
    from keyward.cli.status_screen import render

    world = _budget_world(tmp_path, stop=True)
    try:
        world.add_key("alpha-1")
        _use(world, "alpha-1", 2_000_000, 0)
        text = render(build_status(world.ctx), world.clock.now)
    finally:
        world.ctx.close()
    assert "spend: ~0.60 USD today (Pacific), ~0.60 this month  budget 60% of daily" in text
