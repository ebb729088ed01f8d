"""The public API, pinned: every public module's names and every parameter of its functions and
classes, against the committed list ``tests/public_api.txt``; and every parameter of every
public function and class in its docstring.

A public module is ``gru_jax`` or a module below it with no ``_``-prefixed part in its name; its
public names are its ``__all__``. A change to the list must be deliberate: after adding a public
name or keyword on purpose, rewrite the list with ``python tests/test_public_api.py --write``
and commit it with the change. Removing or renaming a name or a keyword breaks users: keep the
old one working (with a ``DeprecationWarning``) instead.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gru_jax

LIST = Path(__file__).resolve().with_name("public_api.txt")
SIMPLE = (int, float, str, bool, type(None))


def public_modules() -> list[str]:
    """``gru_jax`` and every module below it whose dotted name has no ``_``-prefixed part."""
    names = ["gru_jax"]
    for info in pkgutil.walk_packages(gru_jax.__path__, prefix="gru_jax."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _default(value: Any) -> str:
    """A default as written in the list: literals as they are, anything else by its kind."""
    if isinstance(value, SIMPLE) or (
        isinstance(value, tuple) and all(isinstance(v, SIMPLE) for v in value)
    ):
        return repr(value)
    return f"<{type(value).__name__}>"


class _Text:
    """Shown as its text in a signature (a default or an annotation as the list writes it)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self) -> str:
        return self.text


def _raw_signature(obj: Callable[..., Any]) -> inspect.Signature:
    """``inspect.signature``; for a class whose metaclass hides its constructor behind
    ``(*args, **kwargs)`` (NNX modules), the signature of its ``__init__`` without ``self``."""
    sig = inspect.signature(obj)
    kinds = {p.kind for p in sig.parameters.values()}
    if inspect.isclass(obj) and kinds == {
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    }:
        init = inspect.signature(obj.__init__)
        sig = init.replace(parameters=list(init.parameters.values())[1:])
    return sig


def _signature(obj: Callable[..., Any]) -> str:
    try:
        sig = _raw_signature(obj)
    except (TypeError, ValueError):
        return "(...)"
    parameters = [
        p.replace(
            default=p.default if p.default is p.empty else _Text(_default(p.default)),
            annotation=(
                p.annotation
                if p.annotation is p.empty
                else _Text(p.annotation)
                if isinstance(p.annotation, str)
                else _Text(inspect.formatannotation(p.annotation))
            ),
        )
        for p in sig.parameters.values()
    ]
    return str(sig.replace(parameters=parameters, return_annotation=sig.empty))


def _members(cls: type) -> list[str]:
    """A class's public methods and properties, its own and those it inherits from the
    package's classes, with their signatures."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__.startswith("gru_jax"):
            members.update(vars(klass))
    lines = []
    for name, value in sorted(members.items()):
        if name.startswith("_") and name != "__call__":
            continue
        if isinstance(value, property):
            lines.append(f"  .{name} (property)")
        elif inspect.isfunction(value) and value.__module__.startswith("gru_jax"):
            lines.append(f"  .{name}{_signature(value)}")
    return lines


def describe() -> list[str]:
    """The list: one line per public name (classes followed by their members)."""
    lines = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in sorted(module.__all__):
            obj = getattr(module, name)
            if inspect.isclass(obj):
                lines.append(f"{module_name}.{name} class{_signature(obj)}")
                lines += _members(obj)
            elif callable(obj) and not isinstance(obj, type(gru_jax)):
                lines.append(f"{module_name}.{name}{_signature(obj)}")
            else:
                lines.append(f"{module_name}.{name}: {type(obj).__name__}")
    return lines


def test_the_public_api_is_the_committed_list():
    # In a fresh interpreter: a Sphinx build in this process (tests/test_docs.py) rewrites the
    # signatures' defaults in place (autodoc_preserve_defaults).
    run = subprocess.run(
        [sys.executable, __file__, "--print"], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    want = LIST.read_text().splitlines()
    got = run.stdout.splitlines()
    added = [line for line in got if line not in want]
    removed = [line for line in want if line not in got]
    assert not added and not removed, (
        "the public API differs from tests/public_api.txt; if the change is deliberate, run "
        "`python tests/test_public_api.py --write` and commit the list.\n"
        + "\n".join([*(f"+ {line}" for line in added), *(f"- {line}" for line in removed)])
    )


def _parameters_of(obj: Callable[..., Any]) -> list[str]:
    skip = {"self", "cls", "parent", "name", "args", "kwargs"}  # parent, name: every linen module
    try:
        return [p for p in _raw_signature(obj).parameters if p not in skip]
    except (TypeError, ValueError):
        return []


def test_every_parameter_of_every_public_function_is_in_its_docstring():
    missing = []
    for module_name in public_modules():
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if not callable(obj) or isinstance(obj, type(gru_jax)):
                continue
            if not getattr(obj, "__module__", "").startswith("gru_jax"):
                continue  # re-exported from elsewhere (jax's initializers): documented there
            doc = inspect.getdoc(obj) or ""
            if inspect.isclass(obj):  # fields a base class of the package declares and documents
                doc += "".join(
                    inspect.getdoc(base) or ""
                    for base in obj.__mro__[1:]
                    if base.__module__.startswith("gru_jax")
                )
            for parameter in _parameters_of(obj):
                if not re.search(rf"(?<![\w.]){re.escape(parameter)}\b", doc):
                    missing.append(f"{module_name}.{name}: {parameter}")
    assert not missing, "parameters missing from their docstrings:\n" + "\n".join(missing)


if __name__ == "__main__":
    if sys.argv[1:] == ["--print"]:
        print("\n".join(describe()))
    elif sys.argv[1:] == ["--write"]:
        LIST.write_text("\n".join(describe()) + "\n")
        print(f"wrote {LIST}")
    else:
        sys.exit("usage: python tests/test_public_api.py --write | --print")
