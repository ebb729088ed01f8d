"""Safe ``.npz`` weight files, never pickled: :func:`save_params`, :func:`load_params`."""

from __future__ import annotations

import io
import json
import os
import tempfile
import zipfile
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax._gru.cell import GRUParams, check_params
from gru_jax._gru.stack import GRUStackParams, check_gru_stack
from gru_jax.interop._common import (
    check_type,
)

_FORMAT = "gru_jax.params"
_VERSION = 1
_META = "__gru_jax__"
_FIELDS = ("w_x", "w_h", "b_x", "b_h")
# NumPy's own float dtypes are stored as they are; the others (bfloat16, float8, ...) as their
# bits, in an unsigned integer array of the same width, with the dtype's name in the metadata.
_NATIVE = {"float16", "float32", "float64"}


def _entry_key(layer: int | None, direction: int | None) -> str:
    return "cell" if layer is None else f"l{layer}.d{direction}"


def save_params(path: str | os.PathLike[str], params: GRUParams | GRUStackParams) -> None:
    """Save a :class:`GRUParams` or a stack to one ``.npz`` file, without pickle.

    The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays) with one array per weight
    and a JSON header naming the format, the structure (one cell, or ``L`` layers of ``D``
    directions), and each entry's ``reset_after``, shapes and dtypes. Dtypes NumPy cannot store
    natively (bfloat16, float8) are written as their raw bits with a dtype tag, so they load back
    bit for bit. The file is written to a temporary name and renamed, so a crash never leaves a
    half-written file under ``path``; ``path`` is used as given (no suffix is added).

    Args:
      path: where to write, e.g. ``"gru.npz"``.
      params: a :class:`GRUParams`, or a stack ``params[layer][direction]`` as
        :func:`gru_jax.init_gru_stack` returns.

    Example:
      >>> import os, tempfile, jax, jax.numpy as jnp
      >>> from gru_jax import init_gru_stack
      >>> from gru_jax.interop import load_params, save_params
      >>> stack = init_gru_stack(jax.random.key(0), 3, 4, num_layers=2, bidirectional=True,
      ...                        dtype=jnp.bfloat16)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save_params(os.path.join(tmp, "gru.npz"), stack)
      ...     back = load_params(os.path.join(tmp, "gru.npz"))
      >>> back[1][1].w_x.dtype, bool((back[1][1].w_x == stack[1][1].w_x).all())
      (dtype(bfloat16), True)
    """
    fn = "save_params"
    if isinstance(params, GRUParams):
        check_params(fn, params)
        entries: list[tuple[int | None, int | None, GRUParams]] = [(None, None, params)]
        structure: dict[str, Any] = {"kind": "cell"}
    else:
        num_layers, num_dirs, _, _ = check_gru_stack(fn, params)
        entries = [(layer, d, p) for layer, ps in enumerate(params) for d, p in enumerate(ps)]
        structure = {"kind": "stack", "num_layers": num_layers, "num_directions": num_dirs}
    check_type(fn, "path", path, str | os.PathLike, "a str or os.PathLike")

    arrays: dict[str, np.ndarray] = {}
    meta_entries = []
    for layer, d, p in entries:
        key = _entry_key(layer, d)
        fields = {}
        for field in _FIELDS:
            a = np.asarray(jax.device_get(getattr(p, field)))
            dtype = a.dtype.name
            stored = a if dtype in _NATIVE else a.view(f"uint{8 * a.dtype.itemsize}")
            arrays[f"{key}.{field}"] = np.ascontiguousarray(stored)
            fields[field] = {"dtype": dtype, "stored_as": stored.dtype.name, "shape": a.shape}
        meta_entries.append(
            {
                "key": key,
                "layer": layer,
                "direction": d,
                "reset_after": p.reset_after,
                "arrays": fields,
            }
        )
    meta = {"format": _FORMAT, "version": _VERSION, **structure, "entries": meta_entries}
    arrays[_META] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".gru_jax-", suffix=".npz.tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class _BadFileError(ValueError):
    """A ValueError saying that a file is not a valid params file (a private marker class)."""


def _bad_file(path: str, why: str) -> ValueError:
    return _BadFileError(f"load_params: {path!r} is not a valid gru_jax params file: {why}")


def load_params(path: str | os.PathLike[str]) -> GRUParams | GRUStackParams:
    """Load what :func:`save_params` wrote, never unpickling anything.

    The archive is read with ``numpy.load(allow_pickle=False)``; every array's dtype and shape
    is checked against the file's header, and the result against :class:`GRUParams`'s shape
    rules, so that a truncated, corrupted or foreign file (another ``.npz``, a torch checkpoint,
    anything needing pickle) raises a clear ``ValueError`` instead of loading something wrong.

    Args:
      path: a file written by :func:`save_params`.

    Returns:
      The :class:`GRUParams`, or the stack ``params[layer][direction]``, as saved: same
      structure, ``reset_after`` of each entry, shapes and dtypes (bfloat16 included), as JAX
      arrays. (float64 stays float64 only with ``jax_enable_x64`` on, as everywhere in JAX.)

    Raises:
      FileNotFoundError: ``path`` does not exist.
      ValueError: the file is not a complete gru_jax params file; the message says why.

    Example:
      >>> import os, tempfile, jax
      >>> from gru_jax import init_gru
      >>> from gru_jax.interop import load_params, save_params
      >>> p = init_gru(jax.random.key(0), 3, 4, reset_after=True)
      >>> with tempfile.TemporaryDirectory() as tmp:
      ...     save_params(os.path.join(tmp, "cell.npz"), p)
      ...     q = load_params(os.path.join(tmp, "cell.npz"))
      >>> q.reset_after, q.w_h.shape
      (True, (4, 12))
    """
    fn = "load_params"
    check_type(fn, "path", path, str | os.PathLike, "a str or os.PathLike")
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    if not data.startswith(b"PK"):
        raise _bad_file(path, "it is not an .npz (zip) archive")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            names = set(npz.files)
            if _META not in names:
                raise _bad_file(path, f"it has no {_META!r} header (a foreign .npz or zip file?)")
            raw = {name: npz[name] for name in names}
    except _BadFileError:
        raise
    except ValueError as e:
        if "pickle" in str(e):
            raise _bad_file(path, f"it holds an object array, which would need pickle ({e})") from e
        raise _bad_file(path, f"{e}") from e
    except (zipfile.BadZipFile, EOFError, OSError, KeyError) as e:
        raise _bad_file(path, f"it is truncated or corrupted ({type(e).__name__}: {e})") from e

    try:
        meta = json.loads(raw.pop(_META).tobytes().decode("utf-8"))
        if meta.get("format") != _FORMAT:
            raise _bad_file(path, f"its header names format {meta.get('format')!r}")
        if meta.get("version") != _VERSION:
            raise _bad_file(
                path, f"format version {meta.get('version')!r}; this gru_jax reads {_VERSION}"
            )
        entries = {}
        for entry in meta["entries"]:
            key = entry["key"]
            leaves = {}
            for field in _FIELDS:
                info = entry["arrays"][field]
                name = f"{key}.{field}"
                if name not in raw:
                    raise _bad_file(path, f"array {name!r} is missing")
                a = raw.pop(name)
                if a.dtype.name != info["stored_as"] or list(a.shape) != list(info["shape"]):
                    raise _bad_file(
                        path,
                        f"array {name!r} is {a.dtype.name}{list(a.shape)}; the header says "
                        f"{info['stored_as']}{list(info['shape'])}",
                    )
                dtype = jnp.dtype(info["dtype"])
                if not jnp.issubdtype(dtype, jnp.floating):
                    raise _bad_file(path, f"array {name!r} has non-float dtype {dtype}")
                if info["dtype"] not in _NATIVE:
                    a = a.view(dtype)
                leaves[field] = jnp.asarray(a)
            entries[key] = GRUParams(**leaves, reset_after=bool(entry["reset_after"]))
        if raw:
            raise _bad_file(path, f"unexpected arrays {sorted(raw)}")
        if meta["kind"] == "cell":
            result: GRUParams | GRUStackParams = entries["cell"]
            check_params(fn, entries["cell"])
        elif meta["kind"] == "stack":
            result = tuple(
                tuple(entries[_entry_key(layer, d)] for d in range(meta["num_directions"]))
                for layer in range(meta["num_layers"])
            )
            check_gru_stack(fn, result)
        else:
            raise _bad_file(path, f"unknown structure {meta['kind']!r}")
        used = (
            {"cell"}
            if meta["kind"] == "cell"
            else {
                _entry_key(layer, d)
                for layer in range(meta["num_layers"])
                for d in range(meta["num_directions"])
            }
        )
        if set(entries) != used:
            raise _bad_file(
                path, f"its header lists entries {sorted(entries)}; expected {sorted(used)}"
            )
    except _BadFileError:
        raise
    except (KeyError, TypeError, AttributeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _bad_file(path, f"its header is malformed ({type(e).__name__}: {e})") from e
    except ValueError as e:  # shapes that GRUParams cannot have
        raise _bad_file(path, str(e)) from e
    return result
