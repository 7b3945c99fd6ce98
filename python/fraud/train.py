"""Trains the fraud model with LightGBM on a feature matrix written by scripts/fraud/train.ts.

The matrix is a CSV whose header is the feature names followed by `is_fraud`; the TypeScript side
computes every feature, so this script only fits trees and exports them (Booster.dump_model()) with
the metadata the TypeScript scorer checks when it loads the artifact.

  train.py --matrix M.csv --out MODEL.json --version V [--rounds N] [--leaves L]
           [--holdout H.csv --predictions P.txt]

With --holdout, the trained booster's own raw scores (LightGBM's predict) for the held-out matrix are
written one per line, so tests can check the TypeScript tree walk against the training library.
"""

import argparse
import json

import lightgbm as lgb
import numpy as np


def read_matrix(path):
    with open(path) as f:
        header = f.readline().strip().split(",")
    data = np.loadtxt(path, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2)
    return header[:-1], data[:, :-1], data[:, -1]


def train(args):
    names, x, y = read_matrix(args.matrix)
    params = {
        "objective": "binary",
        "learning_rate": args.learning_rate,
        "num_leaves": args.leaves,
        "min_data_in_leaf": 20,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": args.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    booster = lgb.train(params, lgb.Dataset(x, label=y, feature_name=names), num_boost_round=args.rounds)
    artifact = {
        "format": "payforward-fraud-model/1",
        "version": args.version,
        "features": names,
        "training": {
            "rows": int(len(y)),
            "frauds": int(y.sum()),
            "lightgbm": lgb.__version__,
            "params": params,
            "rounds": args.rounds,
        },
        "lightgbm": booster.dump_model(),
    }
    with open(args.out, "w") as f:
        json.dump(artifact, f, separators=(",", ":"))
    if args.holdout:
        holdout_names, holdout, _ = read_matrix(args.holdout)
        if holdout_names != names:
            raise SystemExit("the held-out matrix has other features than the training matrix")
        raw = booster.predict(holdout, raw_score=True)
        with open(args.predictions, "w") as f:
            f.writelines(f"{float(value)!r}\n" for value in raw)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--matrix", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--version", default="dev")
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--leaves", type=int, default=15)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--holdout")
    parser.add_argument("--predictions")
    train(parser.parse_args())
