"""The schema of `[prices."MODEL"]` tables and of a pool's `[pools.NAME.budget]`.

Prices are per 1M tokens, bounded (no Gemini model costs more than 10,000 a million tokens; a
typo like 250000 instead of 2.50 is caught) and all in one currency, because budgets and status
add them up.
"""

from __future__ import annotations

from typing import Any

from keyward.config import values as v
from keyward.config.problems import KeyPath, Problems, describe
from keyward.config.sections import check_fields, table_or_none
from keyward.cost import BudgetConfig, Price

MAX_PRICE = 10_000.0
MAX_BUDGET = 1e9
CURRENCY_PATTERN = r"[A-Z]{3}"


def _amount(maximum: float):
    def check(value: Any, path: KeyPath, problems: Problems) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.add(path, f"expected a number, got {describe(value)}")
            return v.INVALID
        if not 0 <= value <= maximum:
            problems.add(path, f"must be between 0 and {maximum:g}, got {value}")
            return v.INVALID
        return float(value)

    return check


PRICE: dict[str, v.Checker] = {
    "input": _amount(MAX_PRICE),
    "output": _amount(MAX_PRICE),
    "currency": v.text(CURRENCY_PATTERN, "expected an ISO 4217 currency code like 'USD'"),
}
BUDGET: dict[str, v.Checker] = {
    "daily": _amount(MAX_BUDGET),
    "monthly": _amount(MAX_BUDGET),
    "warn_at": v.fraction,
    "stop": v.boolean,
}


def build_prices(raw: Any, problems: Problems) -> dict[str, Price]:
    """Return the price of each model the file lists, recording every problem."""
    if raw is None:
        return {}
    table = table_or_none(raw, ("prices",), problems) or {}
    prices: dict[str, Price] = {}
    for model, entry in table.items():
        path: KeyPath = ("prices", model)
        item = table_or_none(entry, path, problems)
        if item is None:
            continue
        values = check_fields(item, PRICE, path, problems)
        missing = [k for k in ("input", "output") if k not in item]
        for key in missing:
            problems.add((*path, key), f"missing required key '{key}': the price per 1M {key} tokens")
        if missing or len(values) != len(item):
            continue
        prices[model] = Price(**values)
    currencies = {p.currency for p in prices.values()}
    if len(currencies) > 1:
        problems.add(("prices",), f"every price must be in one currency (found {', '.join(sorted(currencies))}): "
                                  "spend is added up across models")
    return prices


def build_budget(value: Any, path: KeyPath, problems: Problems) -> Any:
    """A pool's budget table: at least one of daily/monthly."""
    table = table_or_none(value, path, problems)
    if table is None:
        return v.INVALID
    values = check_fields(table, BUDGET, path, problems)
    if "daily" not in table and "monthly" not in table:
        problems.add(path, "a budget needs 'daily' or 'monthly' (an amount in the prices' currency)")
        return v.INVALID
    if len(values) != len(table):
        return v.INVALID
    return BudgetConfig(**values)
