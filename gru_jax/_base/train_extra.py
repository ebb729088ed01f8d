"""Imported first by the application (:mod:`gru_jax.tasks`, :mod:`gru_jax.train`): raises one
``ImportError`` naming the ``train`` extra unless what it installs is there."""

from gru_jax._base.extras import TRAIN, require_extra

require_extra("the gru-jax application (gru_jax.tasks, gru_jax.train)", "train", TRAIN)
