"""Success and failure conditions: expressions like ``result > 50`` evaluated by simpleeval
(a restricted AST evaluator: no attribute access, no imports, no calls but the ones listed),
never by ``eval``."""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping

from simpleeval import InvalidExpression, SimpleEval

FUNCTIONS = {"abs": abs, "min": min, "max": max, "len": len, "isnan": math.isnan,
             "float": float, "int": int}
"""The only calls a condition may make."""
CONSTANTS = ("True", "False", "None", "true", "false")
ALLOWED_NODES = (
    ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.UnaryOp, ast.Not, ast.USub, ast.UAdd,
    ast.BinOp, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow,
    ast.Compare, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.In, ast.NotIn,
    ast.IfExp, ast.Call, ast.Constant, ast.Name, ast.Load,
)
"""Arithmetic, comparisons, boolean logic and calls of :data:`FUNCTIONS`; no attribute
access, subscripts, comprehensions or lambdas."""


class ConditionError(ValueError):
    """A condition that does not parse, names an unknown variable, or cannot be evaluated."""


def validate(expression: str, names: tuple[str, ...]) -> None:
    """Raise ConditionError unless ``expression`` parses and only uses ``names``."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"{expression!r} does not parse ({exc.msg})") from None
    forbidden = sorted({type(node).__name__ for node in ast.walk(tree)
                        if not isinstance(node, ALLOWED_NODES)})
    if forbidden:
        raise ConditionError(f"{expression!r} uses what a condition may not: {forbidden}")
    allowed = set(names) | set(FUNCTIONS) | set(CONSTANTS)
    unknown = sorted({node.id for node in ast.walk(tree)
                      if isinstance(node, ast.Name) and node.id not in allowed})
    if unknown:
        raise ConditionError(
            f"{expression!r} uses unknown name(s) {unknown}; known: {sorted(names)}"
        )
    _evaluator({name: 0 for name in names}).parse(expression.strip())


def evaluate(expression: str, values: Mapping[str, object]) -> bool:
    """The condition's truth for these values; ConditionError when it cannot be decided
    (e.g. ``result > 5`` on a string)."""
    try:
        return bool(_evaluator(values).eval(expression.strip()))
    except (InvalidExpression, TypeError, ValueError, ZeroDivisionError) as exc:
        raise ConditionError(f"{expression!r}: {type(exc).__name__}: {exc}") from None


def _evaluator(values: Mapping[str, object]) -> SimpleEval:
    names = {"true": True, "false": False, "True": True, "False": False, "None": None,
             **values}
    return SimpleEval(names=names, functions=dict(FUNCTIONS))
