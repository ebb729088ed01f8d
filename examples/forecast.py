"""Forecast the chaotic Mackey–Glass series with a GRU: ``gru-jax train configs/forecast.yaml``.

    python examples/forecast.py [--workdir runs/forecast] [--set train.steps=500 ...]

The GRU reads 64 samples and predicts the next 16 at once (as a change from the last value).
Persistence, repeating the last value, has an MSE of about 2 on the standardised series.
"""

import argparse
import json

import jax
import numpy as np

from gru_jax.tasks.forecast import ForecastModel, mackey_glass, persistence_mse
from gru_jax.train import load_config, train_and_evaluate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--workdir", default="runs/forecast")
parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
args = parser.parse_args()

config = load_config("configs/forecast.yaml", args.set)
data = config.data

# Data: Euler-integrated delay differential equation, one random history per series and seed.
series = mackey_glass(seed=0, num_series=4, series_len=400, sample_every=data.sample_every)
standardised = (series - series.mean()) / series.std()
print(
    f"series {series.shape}, persistence MSE "
    f"{persistence_mse(standardised, data.context, data.horizon):.2f}"
)

# Model: gru_jax.linen.GRU over the context, a Dense head for all horizon steps.
model = ForecastModel(horizon=data.horizon, hidden_size=config.model.hidden_size)
window = standardised[:2, : data.context, None].astype(np.float32)
params = model.init(jax.random.key(0), {"inputs": window})
print("forecast shape", model.apply(params, {"inputs": window}).shape)  # (2, horizon)

# Train with the shared loop; the loss is the MSE of the forecasts.
summary = train_and_evaluate(config, args.workdir)
print(json.dumps(summary, indent=2))
print(f"forecast plots in {args.workdir}/plots/forecast_*.png")
