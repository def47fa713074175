"""Choosing an approval route: the pack's four-tier matrix — three classes, first match
wins, and the amount rule (add_steps) that adds the general manager.

Compares the compiled route conditions (as the run time will use them) with a hand-written
if/elif chain doing the same thing, over a mix of orders that hit every route. For scale: the
peer figure is GoRules zen-engine at 8.6 µs for a 4-rule table on this kind of machine.

    python bench/bench_routing.py
"""

from __future__ import annotations

import statistics
import timeit
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.compile import compile_app
from engine.expressions import EvalEnv

PACK = Path(__file__).resolve().parents[1] / "examples" / "manufacturing_pack"

ORDERS: list[dict[str, Any]] = [
    {"customer": {"tier": "VIP"}, "order_type": "rush", "amount": Decimal(12000)},
    {"customer": {"tier": "A"}, "order_type": "normal", "amount": Decimal(900000)},
    {"customer": {"tier": "B"}, "order_type": "trial", "amount": Decimal(800)},
    {"customer": {"tier": "C"}, "order_type": "normal", "amount": Decimal(4000)},
]


def hand_written(order: dict[str, Any]) -> tuple[str, bool]:
    """The pack's matrix by hand: the class, and whether the fourth tier (D) adds the GM."""
    large = order["amount"] >= 500000
    if order["customer"]["tier"] == "VIP" and order["order_type"] == "rush":
        return "class_a", large
    if order["order_type"] == "trial":
        return "class_c", large
    return "class_b", large


def main() -> None:
    result = compile_app(PACK)
    assert result.app is not None, "the pack does not compile"
    approval = result.app.approvals["order"]
    routes, [large_rule] = approval.routes, approval.add_steps
    env = EvalEnv()

    def compiled(order: dict[str, Any]) -> tuple[str, bool]:
        scope = {**order, "params": approval.params}
        for route in routes:
            if route.default or route.when(scope, env):  # type: ignore[misc]
                return route.name, bool(large_rule.when(scope, env))  # type: ignore[misc]
        raise AssertionError("no route")

    for order in ORDERS:
        assert compiled(order) == hand_written(order)
    number = 20000

    def per_call(fn: Any) -> float:
        runs = timeit.repeat(lambda: [fn(o) for o in ORDERS], number=number // 4, repeat=7)
        return statistics.median(runs) / (number // 4) / len(ORDERS) * 1e6

    base = per_call(hand_written)
    ours = per_call(compiled)
    print("the 4 rules: choose among 3 routes + the amount rule (median of 7 repeats, µs/order)")
    print(f"  hand-written if/elif   {base:7.3f} µs   1.0x")
    print(
        f"  compiled routes        {ours:7.3f} µs   {ours / base:.1f}x hand-written, "
        f"{8.6 / ours:.0f}x faster than zen-engine's 8.6 µs"
    )


if __name__ == "__main__":
    main()
