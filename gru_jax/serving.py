"""Load what ``gru-jax export`` wrote: the prediction function and its description.

Needs ``jax`` (and ``flatbuffers``) only; a server without gru_jax loads the same file with
``jax.export.deserialize(open(path, "rb").read()).call``.

Example:
  >>> from gru_jax import serving
  >>> predict, description = serving.load("model.jax")  # doctest: +SKIP
  >>> [i["name"] for i in description["inputs"]]        # doctest: +SKIP
  ['inputs']
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["load"]


def load(path: str | Path) -> tuple[Callable[..., Any], dict[str, Any]]:
    """``(predict, description)`` of the artifact at ``path`` and its ``path.json``.

    ``predict(*inputs)`` takes the inputs in the order of ``description["inputs"]`` and returns
    the tuple of outputs of ``description["outputs"]``; any size for the symbolic dimensions.
    """
    from jax import export

    path = Path(path)
    exported = export.deserialize(bytearray(path.read_bytes()))
    description: dict[str, Any] = json.loads(path.with_name(path.name + ".json").read_text())
    return exported.call, description
