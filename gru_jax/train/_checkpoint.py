"""What a run keeps in its directory, and reading it back: Orbax checkpoints of the training
state with a checksum (saved, restored and checked against the run's shapes), the config the run
was trained with, and files written atomically.

A checkpoint of step ``s`` holds ``state`` (``{"params", "opt_state", "step"}``) and ``meta``
(``wall_seconds``, the losses not yet logged, and the SHA-256 ``checksum`` of the state's arrays).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
import yaml

from gru_jax.train._config import Config, ConfigError, config_differences, config_to_dict

State = dict[str, Any]  # {"params": ..., "opt_state": ..., "step": int32 scalar}


class CheckpointError(ConfigError):
    """A checkpoint that cannot be trusted: unreadable, truncated, or not what was written."""


def checkpoint_manager(workdir: Path, max_to_keep: int) -> ocp.CheckpointManager:
    """The Orbax manager of ``workdir/checkpoints``: synchronous saves of a ``state`` and a JSON
    ``meta`` item per step, the latest ``max_to_keep`` steps kept."""
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        enable_async_checkpointing=False,
        create=True,
        cleanup_tmp_directories=True,  # what a killed save left behind
    )
    return ocp.CheckpointManager(
        workdir.resolve() / "checkpoints",
        options=options,
        item_handlers={
            "state": ocp.StandardCheckpointHandler(),
            "meta": ocp.JsonCheckpointHandler(),
        },
    )


def save_checkpoint(manager: ocp.CheckpointManager, state: State, meta: dict[str, Any]) -> None:
    """Save ``state`` with ``meta`` and a checksum (every process takes part). Orbax writes into a
    temporary directory and renames it when complete, so a crash mid-write leaves no step that
    looks finished."""
    step = int(state["step"])
    if step in manager.all_steps():
        return
    meta = meta | {"checksum": state_checksum(state)}
    manager.save(
        step,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
    )
    manager.wait_until_finished()


def restore_checkpoint(
    manager: ocp.CheckpointManager, step: int, abstract: Any
) -> tuple[State, dict[str, Any]]:
    """Restore the checkpoint of ``step`` as the arrays that ``abstract`` describes (shapes,
    dtypes and shardings), checking first that it holds arrays of those shapes, then that its
    bytes match its checksum.

    Raises:
      ConfigError: the checkpoint is intact but was written by another config's model.
      CheckpointError: the checkpoint is unreadable, truncated or corrupted.
    """
    where = f"checkpoint of step {step} in {str(manager.directory)!r}"
    unreadable = (
        "the files are incomplete or damaged; move that step's directory aside to resume "
        "from the checkpoint before it"
    )
    try:
        saved = manager.item_metadata(step)["state"].tree
    except Exception as e:  # orbax/tensorstore errors on missing or truncated metadata
        raise CheckpointError(f"{where} cannot be read ({first_line(e)}): {unreadable}") from e
    _check_shapes(abstract, saved, where)
    try:
        restored = manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()
            ),
        )
    except Exception as e:  # tensorstore/orbax errors on truncated or missing files
        raise CheckpointError(f"{where} cannot be read ({first_line(e)}): {unreadable}") from e
    state, meta = restored["state"], restored["meta"]
    if not isinstance(meta, dict) or meta.get("checksum") != state_checksum(state):
        raise CheckpointError(
            f"{where} is corrupted: its arrays do not match the checksum written with them; "
            "move that step's directory aside to resume from the checkpoint before it"
        )
    return state, meta


def first_line(e: BaseException) -> str:
    """``Type: the first line of the message`` (200 characters at most), for one-line errors."""
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def _check_shapes(abstract: Any, saved: Any, where: str) -> None:
    """Refuse a readable checkpoint whose arrays have other shapes than this run's model: it was
    written by another config (a :class:`ConfigError`, not a damaged checkpoint)."""
    expected = {_path_name(p): a for p, a in jax.tree_util.tree_leaves_with_path(abstract)}
    try:
        found = {_path_name(p): a for p, a in jax.tree_util.tree_leaves_with_path(saved)}
    except Exception:
        return
    differing = [
        f"{key} saved {tuple(found[key].shape)} {found[key].dtype}, "
        f"this config makes {tuple(a.shape)} {a.dtype}"
        for key, a in expected.items()
        if key in found
        and (tuple(found[key].shape) != tuple(a.shape) or np.dtype(found[key].dtype) != a.dtype)
    ]
    missing = sorted(set(expected) ^ set(found))
    if differing or missing:
        detail = differing[0] if differing else f"arrays {missing[:3]} are in only one of them"
        raise ConfigError(
            f"{where} was written by a model of another config ({detail}); it is intact: give "
            "the config the run was trained with, or another --workdir"
        )


def _path_name(path: tuple[Any, ...]) -> str:
    """``opt_state/1/0/mu/params/...``: a tree path in the same words whether it runs through
    dicts, tuples or named tuples (Orbax's metadata stores them differently)."""
    names = (getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path)
    return "/".join(map(str, names))


def to_host(leaf: Any) -> np.ndarray:
    """A replicated array's value on the host (any process holds a whole copy)."""
    if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
        return np.asarray(leaf.addressable_data(0))
    return np.asarray(jax.device_get(leaf))


def state_checksum(state: State) -> str:
    """SHA-256 over every array of ``state`` (paths, dtypes, shapes and bytes), in tree order."""
    digest = hashlib.sha256()
    for path, leaf in jax.tree_util.tree_leaves_with_path(state):
        array = to_host(leaf)
        digest.update(f"{jax.tree_util.keystr(path)}:{array.dtype}:{array.shape};".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()


def check_saved_config(workdir: Path, config: Config, *, evaluating: bool) -> None:
    """Compare ``config`` with the ``config.yaml`` that trained the run in ``workdir``."""
    path = workdir / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise ConfigError(f"cannot read {str(path)!r}: {first_line(e)}") from e
    if not isinstance(saved, dict):
        raise ConfigError(f"{str(path)!r} must hold a mapping; got {type(saved).__name__}")
    differing = config_differences(saved, config, evaluating=evaluating)
    if differing:
        run, given = _flat(saved), _flat(config_to_dict(config))
        shown = ", ".join(
            f"{key} (run: {run.get(key, 'default')!r}, given: {given.get(key)!r})"
            for key in differing[:4]
        )
        more = f" and {len(differing) - 4} more" if len(differing) > 4 else ""
        action = "evaluate it with" if evaluating else "resume it with"
        raise ConfigError(
            f"the run in {str(workdir)!r} was trained with another config: {shown}{more}; "
            f"{action} the same values (they are in {str(path)!r})"
        )


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    """A nested mapping as ``{"model.hidden_size": 64, ...}``."""
    if not isinstance(tree, dict):
        return {prefix.rstrip("."): tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out |= _flat(value, f"{prefix}{key}.")
    return out


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
