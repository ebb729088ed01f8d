"""Pytree serialization of the parameter classes for ``jax.export``.

An exported function whose inputs or outputs hold a :class:`gru_jax.GRUParams` or
:class:`gru_jax.MinGRUParams` (a gradient with respect to the parameters, say) can only be
serialized if ``jax.export`` knows how to write the class's static fields; this module teaches
it, under the names ``gru_jax.GRUParams`` and ``gru_jax.MinGRUParams``. Deserializing such an
export needs ``gru_jax`` imported. (A function of arrays only, as ``gru-jax export`` writes,
needs neither.)
"""

from __future__ import annotations

import json

from jax import export

from gru_jax._gru.cell import GRUParams
from gru_jax._mingru.cell import MinGRUParams


def _serialize(aux: tuple[object, ...]) -> bytes:
    return json.dumps(list(aux)).encode()


def _deserialize(data: bytes) -> tuple[object, ...]:
    return tuple(json.loads(data))


for _cls in (GRUParams, MinGRUParams):
    export.register_pytree_node_serialization(
        _cls,
        serialized_name=f"gru_jax.{_cls.__name__}",
        serialize_auxdata=_serialize,
        deserialize_auxdata=_deserialize,
    )
