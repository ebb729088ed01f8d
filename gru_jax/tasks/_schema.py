"""The accepted values of config keys, declared beside the dataclass fields that hold them.

A config section is a frozen dataclass; each field declares its default and its range with
:func:`setting`, which stores a :class:`Setting` in the field's metadata. A section may also
define ``validate(self) -> None`` for constraints between its keys. :mod:`gru_jax.train` checks
a parsed config against both; :mod:`gru_jax.tasks` declares its ``data:`` sections here too.

It sits in :mod:`gru_jax.tasks`, below :mod:`gru_jax.train` (which imports the tasks), so that
the tasks can declare their sections without importing the training loop; it imports nothing
heavy. :mod:`gru_jax.train` re-exports its public names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

_METADATA_KEY = "gru_jax.setting"


class ConfigError(ValueError):
    """A config that cannot be used: the message, one line, names the key, what was expected and
    what was given."""


def _number(bound: float) -> str:
    """A bound as written in messages: ``1``, ``0``, ``0.5`` (a whole float without ``.0``)."""
    if isinstance(bound, float) and bound.is_integer():
        return str(int(bound))
    return repr(bound)


@dataclasses.dataclass(frozen=True)
class Setting:
    """The accepted values of one config key (see :func:`setting`, which declares it).

    Attributes:
      ge: the value must be at least this (``None``: no such bound).
      gt: the value must be above this.
      le: the value must be at most this.
      lt: the value must be below this.
      one_of: the only values accepted (``None``: any value of the field's type).
      may_change: the key may differ between a run and its ``--resume`` (it changes neither the
        model, nor the optimiser state, nor the training data); see
        :func:`gru_jax.train.config_differences`.

    Example:
      >>> from gru_jax.train import ConfigError, Setting
      >>> size = Setting(ge=1)
      >>> size.describe(), size.contains(0)
      ('>= 1', False)
      >>> try:
      ...     size.check("model.hidden_size", 0)
      ... except ConfigError as e:
      ...     print(e)
      config key 'model.hidden_size' must be an int >= 1; got 0
      >>> Setting(ge=0, lt=1).describe(), Setting(one_of=("a", "b")).describe()
      ('in [0, 1)', "one of ['a', 'b']")
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    one_of: tuple[Any, ...] | None = None
    may_change: bool = False

    def __post_init__(self) -> None:
        if self.ge is not None and self.gt is not None:
            raise ValueError("Setting: give at most one lower bound, ge or gt")
        if self.le is not None and self.lt is not None:
            raise ValueError("Setting: give at most one upper bound, le or lt")

    @property
    def bounded(self) -> bool:
        """Whether the setting restricts the values at all (a bound or ``one_of``)."""
        bounds = (self.ge, self.gt, self.le, self.lt, self.one_of)
        return any(b is not None for b in bounds)

    def describe(self) -> str:
        """The accepted values in words: ``>= 1``, ``> 0``, ``in [0, 1)``, ``one of [...]``, or
        ``any`` when unbounded."""
        if self.one_of is not None:
            return f"one of {list(self.one_of)}"
        low = f"[{_number(self.ge)}" if self.ge is not None else None
        low = f"({_number(self.gt)}" if self.gt is not None else low
        high = f"{_number(self.le)}]" if self.le is not None else None
        high = f"{_number(self.lt)})" if self.lt is not None else high
        if low is not None and high is not None:
            return f"in {low}, {high}"
        if low is not None:
            return (">= " if low[0] == "[" else "> ") + low[1:]
        if high is not None:
            return ("<= " if high[-1] == "]" else "< ") + high[:-1]
        return "any"

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (of the field's type; ``None`` always passes) is accepted."""
        if value is None:
            return True
        if self.one_of is not None and value not in self.one_of:
            return False
        return not (
            (self.ge is not None and not value >= self.ge)
            or (self.gt is not None and not value > self.gt)
            or (self.le is not None and not value <= self.le)
            or (self.lt is not None and not value < self.lt)
        )

    def check(self, key: str, value: Any) -> None:
        """Raise a one-line :class:`ConfigError` naming ``key`` if ``value`` is not accepted.

        ``value`` has passed the field's type check (an ``int`` for an int field, a ``float``
        for a float field); the message states the type, the range and the value given.
        """
        if self.contains(value):
            return
        if self.one_of is not None:
            raise ConfigError(f"config key {key!r} must be {self.describe()}; got {value!r}")
        kind = type(value).__name__
        article = "an" if kind[:1] in "aeiou" else "a"
        raise ConfigError(
            f"config key {key!r} must be {article} {kind} {self.describe()}; got {value!r}"
        )

    @staticmethod
    def of(field: dataclasses.Field[Any]) -> Setting | None:
        """The :class:`Setting` a dataclass field declares with :func:`setting` (else ``None``)."""
        found = field.metadata.get(_METADATA_KEY)
        return found if isinstance(found, Setting) else None


def setting(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    one_of: Iterable[Any] | None = None,
    may_change: bool = False,
) -> Any:
    """A dataclass field of a config section: its default and the values it accepts.

    Use it as the default of a field of a frozen config dataclass; the config parser type-checks
    the value against the annotation, then checks it against these bounds (``ge`` ≤ value,
    ``gt`` < value, value ≤ ``le``, value < ``lt``) or ``one_of``, and reports a value outside
    as one line naming the key. ``may_change`` marks a key that only changes devices, cadence or
    reporting, which may differ when a run is resumed (:func:`gru_jax.train.config_differences`).

    Returns:
      ``dataclasses.field(default=default, metadata=...)`` holding a :class:`Setting`.

    Raises:
      ValueError: two lower or two upper bounds, or a default that the bounds refuse.

    Example:
      >>> import dataclasses
      >>> from gru_jax.train import Setting, setting
      >>> @dataclasses.dataclass(frozen=True)
      ... class Data:
      ...     seq_len: int = setting(100, ge=2)
      ...     noise: float = setting(0.0, ge=0, lt=1)
      >>> [Setting.of(f).describe() for f in dataclasses.fields(Data)]
      ['>= 2', 'in [0, 1)']
      >>> Data()
      Data(seq_len=100, noise=0.0)
    """
    declared = Setting(
        ge=ge,
        gt=gt,
        le=le,
        lt=lt,
        one_of=None if one_of is None else tuple(one_of),
        may_change=may_change,
    )
    if not declared.contains(default):
        raise ValueError(f"setting: the default {default!r} is not {declared.describe()}")
    return dataclasses.field(default=default, metadata={_METADATA_KEY: declared})


def check_ranges(section: Any, prefix: str) -> None:
    """Check every field of the dataclass instance ``section`` against its :class:`Setting`,
    then call its ``validate()`` if it defines one; keys are named ``prefix + field``.

    The fields must already hold values of their types (the parser's type check, or a section
    built in Python). Nested sections are not descended into.

    Raises:
      ConfigError: the first key out of range, or the section's cross-key constraint.
    """
    for field in dataclasses.fields(section):
        declared = Setting.of(field)
        if declared is not None:
            declared.check(prefix + field.name, getattr(section, field.name))
    validate = getattr(section, "validate", None)
    if callable(validate):
        validate()
