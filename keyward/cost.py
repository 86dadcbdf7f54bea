"""Estimated spend: tokens counted by keyward times the prices the operator configured.

Prices are per 1M input and output tokens per model (`[prices."gemini-2.5-flash"]`), in one
currency. Output tokens include thinking tokens, as Google bills them. The figures are estimates:
keyward prices every token at the model's base rate (no long-context tier, no cache discount, no
free tier) and counts what reports and Monitoring saw. Days are Pacific days, like RPD; the month
is the Pacific calendar month.

A pool's budget (`[pools.NAME.budget]`: `daily`, `monthly`, `warn_at`, `stop`) is checked against
its spend: at `warn_at` of either amount status warns; when one is spent status says so loudly and,
with `stop = true`, the pool's key is withdrawn from its sinks until the period ends.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Mapping

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from sqlalchemy.orm import Session

PER = 1_000_000


@dataclass(frozen=True)
class Price:
    """A model's list price per 1M tokens."""

    input: float
    output: float
    currency: str = "USD"


@dataclass(frozen=True)
class BudgetConfig:
    """A pool's spending limits in the prices' currency (None: no limit for that period)."""

    daily: float | None = None
    monthly: float | None = None
    warn_at: float = 0.8
    stop: bool = False


def price_for(prices: Mapping[str, Price], model: str) -> Price | None:
    """The price of `model`: an exact entry, else the longest glob entry that matches ("gemini-2.5-pro*")."""
    if model in prices:
        return prices[model]
    matches = [pattern for pattern in prices if fnmatch.fnmatchcase(model, pattern)]
    return prices[max(matches, key=len)] if matches else None


def cost(price: Price, input_tokens: int, output_tokens: int) -> float:
    return (input_tokens * price.input + output_tokens * price.output) / PER


@dataclass
class Spend:
    """Spend of the Pacific day and month; `unpriced` lists models used that have no price."""

    day: float = 0.0
    month: float = 0.0
    unpriced: set[str] = field(default_factory=set)

    def add(self, price: Price | None, model: str, day_in: int, day_out: int, month_in: int, month_out: int) -> None:
        if price is None:
            if month_in or month_out:
                self.unpriced.add(model)
            return
        self.day += cost(price, day_in, day_out)
        self.month += cost(price, month_in, month_out)


def month_start(day: date) -> date:
    return day.replace(day=1)


def spend_by(s: "Session | Connection", prices: Mapping[str, Price], now: datetime,
             pool: str | None = None) -> tuple[dict[str, Spend], dict[str, Spend]]:
    """Return ({project_id: Spend}, {pool: Spend}) for the Pacific day and month containing `now`."""
    from keyward.quota.windows import pacific_date
    from keyward.storage.cost_queries import token_totals

    today = pacific_date(now)
    projects: dict[str, Spend] = {}
    pools: dict[str, Spend] = {}
    for project_id, pool_name, model, d_in, d_out, m_in, m_out in token_totals(
            s, today=today, month_start=month_start(today), pool=pool):
        price = price_for(prices, model)
        projects.setdefault(project_id, Spend()).add(price, model, d_in, d_out, m_in, m_out)
        pools.setdefault(pool_name, Spend()).add(price, model, d_in, d_out, m_in, m_out)
    return projects, pools


@dataclass(frozen=True)
class BudgetCheck:
    """Where a pool stands against its budget: the highest spent fraction, and whether it is spent."""

    fraction: float | None
    period: str | None  # "daily" | "monthly": the period with the highest fraction
    warn: bool
    spent: bool


def check_budget(budget: BudgetConfig | None, spend: Spend) -> BudgetCheck:
    """Pure: compare `spend` with `budget` (a zero amount is spent at once)."""
    if budget is None:
        return BudgetCheck(None, None, False, False)
    worst: tuple[float, str] | None = None
    for period, amount, used in (("daily", budget.daily, spend.day), ("monthly", budget.monthly, spend.month)):
        if amount is None:
            continue
        fraction = float("inf") if amount == 0 else used / amount
        if worst is None or fraction > worst[0]:
            worst = (fraction, period)
    if worst is None:
        return BudgetCheck(None, None, False, False)
    return BudgetCheck(worst[0], worst[1], worst[0] >= budget.warn_at, worst[0] >= 1.0)


def currency_of(prices: Mapping[str, Price]) -> str:
    return next(iter(prices.values())).currency if prices else "USD"


def spend_json(spend: Spend | None, currency: str) -> dict:
    """The `cost` object of status --json: estimated spend, rounded to 1/10,000 of the currency."""
    spend = spend or Spend()
    return {"currency": currency, "day": round(spend.day, 4), "month": round(spend.month, 4),
            "unpriced_models": sorted(spend.unpriced)}


def budget_json(budget: BudgetConfig | None, spend: Spend | None) -> dict | None:
    if budget is None:
        return None
    check = check_budget(budget, spend or Spend())
    return {"daily": budget.daily, "monthly": budget.monthly, "warn_at": budget.warn_at, "stop": budget.stop,
            "fraction": None if check.fraction is None else round(min(check.fraction, 1e6), 4),
            "period": check.period, "warn": check.warn, "spent": check.spent}


def status_costs(s: "Session | Connection", config, now: datetime) -> tuple[dict[str, dict], dict[str, dict]] | None:
    """The `cost` objects of status for every project and pool; None when no prices are configured."""
    if not config.prices:
        return None
    projects, pools = spend_by(s, config.prices, now)
    currency = currency_of(config.prices)
    project_out = {pid: spend_json(sp, currency) for pid, sp in projects.items()}
    pool_out: dict[str, dict] = {}
    for name in set(pools) | set(config.pools):
        out = spend_json(pools.get(name), currency)
        pool_cfg = config.pools.get(name)
        out["budget"] = budget_json(pool_cfg.budget if pool_cfg else None, pools.get(name))
        pool_out[name] = out
    return project_out, pool_out


def budget_spent(s: "Session", config, pool: str, now: datetime) -> BudgetCheck | None:
    """The pool's budget check now, or None when it has no budget (one grouped query)."""
    pool_cfg = config.pools.get(pool)
    if pool_cfg is None or pool_cfg.budget is None or not config.prices:
        return None
    _projects, pools = spend_by(s, config.prices, now, pool=pool)
    return check_budget(pool_cfg.budget, pools.get(pool, Spend()))
