"""The words of config errors: what a key's type is called, how a value of that type is written
in YAML, the known key closest to an unknown one, and a YAML parser's error in one line.

:mod:`gru_jax.train._config` raises the errors; every phrase here fits in its one-line message.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Iterable
from typing import Any


def type_name(annotation: Any) -> str:
    """``an int``, ``a float``, ``a float or null``: what a field of that type must hold.

    Example:
      >>> type_name(int), type_name(float | None)
      ('an int', 'a float or null')
    """
    if isinstance(annotation, types.UnionType):
        names = [type_name(a) for a in typing.get_args(annotation) if a is not type(None)]
        return " or ".join(names) + (
            " or null" if type(None) in typing.get_args(annotation) else ""
        )
    name = getattr(annotation, "__name__", str(annotation))
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


_NULLS = ("none", "null", "nil", "~", "")
_NUMBER_EXAMPLE = {int: "3000", float: "0.003 or 3e-3"}


def how_to_write(value: Any, annotation: Any) -> str:
    """How a value of type ``annotation`` is written in YAML, for a ``value`` that does not fit
    where the mistake is one of spelling: a number with quotes, a decimal point or an exponent
    for an int, a bool in quotes or as 0/1, a str that YAML reads as a number, a bool or null,
    ``None`` for null. ``""`` where the message needs no more (a word given for a number, a
    list for a scalar).

    Example:
      >>> how_to_write("1e3", int)
      'an int is written like 1000 (no quotes, no decimal point or exponent)'
      >>> how_to_write("None", int | None)
      'null is written null or ~ (no quotes)'
      >>> how_to_write("ten", int)
      ''
    """
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else ()
    if type(None) in options and isinstance(value, str) and value.strip().lower() in _NULLS:
        return "null is written null or ~ (no quotes)"
    inner = [a for a in options if a is not type(None)] if options else [annotation]
    kind = inner[0] if len(inner) == 1 else None
    numeric = isinstance(value, float) or (
        isinstance(value, str) and any(c.isdigit() for c in value)
    )
    if kind is int and numeric:
        return (
            f"an int is written like {_whole(value) or _NUMBER_EXAMPLE[int]} "
            "(no quotes, no decimal point or exponent)"
        )
    if kind is float and isinstance(value, str) and numeric:
        return f"a float is written like {_NUMBER_EXAMPLE[float]}"
    if kind is bool and isinstance(value, str):
        return "a bool is written true or false (no quotes)"
    if kind is bool and isinstance(value, int | float):
        return "a bool is written true or false (not as a number)"
    if kind is str and isinstance(value, bool):
        return "a str that YAML reads as a bool (yes, no, on, off, true, false) is quoted"
    if kind is str and isinstance(value, int | float):
        return f'a str that YAML reads as a number is quoted: "{value}"'
    if kind is str and value is None:
        return 'a str that YAML reads as null (null, ~ or nothing) is quoted: "null" or ""'
    return ""


def _whole(value: Any) -> str | None:
    """``"1000"`` for ``"1e3"``, ``1000.0`` or ``" 1000 "``: a number that is whole, as an int
    is written; ``None`` for anything else."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return str(int(number)) if math.isfinite(number) and number.is_integer() else None


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """``"; did you mean 'train.steps'?"`` for the unknown dotted ``key`` (``train.stpes``), when
    one of the ``known`` dotted keys is close to it; ``""`` when none is. Keys are compared by
    their last part, those of ``key``'s own section first, so a key in the wrong section
    (``hidden_size`` for ``model.hidden_size``) is found too.

    Example:
      >>> did_you_mean("train.stpes", ["train.steps", "train.batch_size"])
      "; did you mean 'train.steps'?"
      >>> did_you_mean("hidden_size", ["seed", "model.hidden_size"])
      "; did you mean 'model.hidden_size'?"
      >>> did_you_mean("train.bogus", ["train.steps"])
      ''
    """
    section, _, leaf = key.rpartition(".")
    known = list(known)
    own = [k for k in known if k.rpartition(".")[0] == section]
    for candidates in (own, [k for k in known if k not in own]):
        leaves: dict[str, str] = {}
        for candidate in candidates:
            leaves.setdefault(candidate.rpartition(".")[2], candidate)
        found = difflib.get_close_matches(leaf, leaves, n=1)
        if found:
            return f"; did you mean {leaves[found[0]]!r}?"
    return ""


def yaml_problem(error: Any) -> str:
    """A YAML parser's error in one line: where, what, and while doing what.

    Example:
      >>> import yaml
      >>> try:
      ...     yaml.safe_load("task: [adding\\n")
      ... except yaml.YAMLError as e:
      ...     print(yaml_problem(e))
      line 2, column 1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence)
    """
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    context = getattr(error, "context", None)
    return where + problem + (f" ({context})" if context else "")
