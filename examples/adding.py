"""Train a GRU on the adding problem: the tutorial version of ``gru-jax train configs/adding.yaml``.

    python examples/adding.py [--workdir runs/adding] [--set train.steps=500 ...]

The task: each step of a length-100 sequence carries a value in [0, 1] and a marker; the target
is the sum of the two marked values. Predicting the mean (1.0) gives MSE 0.167; a GRU that
remembers the marked values gets far below the target of 0.01.
"""

import argparse
import json

import jax
import jax.numpy as jnp
import optax

from gru_jax.tasks.adding import AddingModel, adding_batch
from gru_jax.train import load_config, make_optimizer, train_and_evaluate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--workdir", default="runs/adding")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
args = parser.parse_args()

# 1. The config: configs/adding.yaml, with any --set overrides, checked key by key.
config = load_config("configs/adding.yaml", args.set)

# 2. The data: a pure function of a PRNG key, so step s always trains on the same batch.
batch = adding_batch(jax.random.key(0), batch_size=4, seq_len=config.data.seq_len)
print("inputs", batch["inputs"].shape, "targets", batch["targets"].shape)  # (4, 100, 2), (4,)

# 3. The model: gru_jax.linen.GRU over the sequence, a Dense read-out of the final state.
model = AddingModel(hidden_size=config.model.hidden_size)
params = model.init(jax.random.key(1), batch)
print("parameters", jax.tree.map(jnp.shape, params["params"]))

# 4. The loss: mean squared error of the predicted sums.
loss = jnp.mean((model.apply(params, batch) - batch["targets"]) ** 2)
print(f"loss before training {float(loss):.3f}")

# 5. The optimiser: AdamW with warmup + cosine decay, clipped by global norm (Optax).
optimizer, schedule = make_optimizer(config.train)
print(
    "optimizer state leaves",
    len(jax.tree.leaves(optimizer.init(params))),
    f"peak learning rate {float(schedule(config.train.warmup_steps)):.0e}",
)
del optax  # the loop below builds all of this from the config itself

# 6. The shared loop: data-parallel over local devices, checkpoints, metrics, plots, summary.
summary = train_and_evaluate(config, args.workdir)
print(json.dumps(summary, indent=2))
print(f"results in {args.workdir}/: summary.json, metrics.jsonl, plots/, checkpoints/")
