"""Train a GRU on copy memory: the tutorial version of ``gru-jax train configs/copy.yaml``.

    python examples/copy_memory.py [--workdir runs/copy] [--set train.steps=500 ...]

The model sees 10 symbols, 50 steps of blanks, a delimiter, and must then repeat the symbols. A
model without memory cannot do better than 10·ln 8/70 ≈ 0.297 nats per step.
"""

import argparse
import json

import jax
import optax

from gru_jax.tasks.copy import CopyModel, baseline, copy_batch
from gru_jax.train import load_config, train_and_evaluate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--workdir", default="runs/copy")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
args = parser.parse_args()

config = load_config("configs/copy.yaml", args.set)
data, model_config = config.data, config.model

# Data: token 0 is blank, 1..8 the symbols, 9 the delimiter; targets are blank but for the copy.
batch = copy_batch(
    jax.random.key(0), 2, delay=data.delay, copy_len=data.copy_len, num_symbols=data.num_symbols
)
print("inputs ", batch["inputs"][0].tolist())
print("targets", batch["targets"][0].tolist())

# Model: Embed -> gru_jax.linen.GRU -> Dense, a prediction at every step.
model = CopyModel(data.num_symbols, model_config.hidden_size, model_config.embed_dim)
params = model.init(jax.random.key(1), batch)
logits = model.apply(params, batch)  # (B, T, 1 + num_symbols)

# Loss: cross-entropy per step, against the memoryless baseline.
loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"]).mean()
print(f"untrained loss {float(loss):.3f}; memoryless baseline {baseline(data):.3f}")

# Train with the shared loop (AdamW + warmup/cosine + clipping, checkpoints, plots, summary).
summary = train_and_evaluate(config, args.workdir)
print(json.dumps(summary, indent=2))
print(f"copied examples in {args.workdir}/examples.txt, curves in {args.workdir}/plots/")
