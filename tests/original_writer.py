"""Small files in exactly the layout of the CVPR 2022 CNN Filter DB release (v1.0.0), as its
repository documents it: /meta a pandas DataFrame written by ``to_hdf`` (fixed or table
format) with a MultiIndex on model_id / conv_depth / conv_depth_norm whose levels are not
columns, the README's columns (``Visual Category``, or ``Datatype`` as the README calls it),
and the filter array as ``/filter`` (README) or ``/filters`` (notebook), float32 or float64,
N x 9 or N x 3 x 3."""
from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np
import pandas as pd


@dataclass
class Model:
    model: str
    name: str
    task: str
    category: str
    training: str
    pretraining: float | str
    layers: list[tuple[int, int]]  # (conv_depth, number of 3x3 filters)
    max_depth: int  # deepest conv of the model (its 1x1 and other convs included)
    paper: float | str = np.nan
    nan_at: list[int] = field(default_factory=list)  # filter rows (within the model) set to NaN


def write_original(path, models: list[Model], *, meta_format="fixed", dataset="filter", dtype=np.float32,
                   square=False, category_column="Visual Category", seed=0):
    """Write the file; return the filters as written (N x 9, float64) and the /meta frame."""
    rng = np.random.default_rng(seed)
    rows, index, chunks, n = [], [], [], 0
    for model_id, m in enumerate(models):
        total = sum(c for _, c in m.layers)
        block = rng.normal(scale=0.1, size=(total, 9))
        for i in m.nan_at:
            block[i, 4] = np.nan
        chunks.append(block)
        for depth, count in m.layers:
            index.append((model_id, depth, depth / m.max_depth if m.max_depth else 0.0))
            rows.append({
                "filter_ids": f"{n}:{n + count - 1}", "model": m.model, "producer": "pytorch", "op_set": "11",
                "depth": 3 * m.max_depth, "Name": m.name, "Paper": m.paper,
                "Pretraining-Dataset": m.pretraining, "Training-Dataset": m.training, category_column: m.category,
                "Task": m.task, "Accessible": "https://github.com/example/" + m.name.lower(),
                "Dataset URL": np.nan, "total_filters": float(total + 17), "3x3_filter_share": total / (total + 17),
                "(3, 3) filters": float(total), "(1, 1) filters": 17.0, "Conv": float(len(m.layers) + 1),
                "Relu": float(len(m.layers))})
            n += count
    meta = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["model_id", "conv_depth",
                                                                             "conv_depth_norm"]))
    filters = np.concatenate(chunks)
    meta.to_hdf(path, key="meta", mode="w", format=meta_format)
    with h5py.File(path, "a") as f:
        data = filters.astype(dtype)
        f.create_dataset(dataset, data=data.reshape(-1, 3, 3) if square else data)
    return filters, meta
