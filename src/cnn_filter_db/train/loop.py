"""The training loop: SGD or AdamW with warm-up + cosine, best epoch on validation.

The test split never enters this module's :func:`fit`: the caller evaluates the returned
best state on it once, with :func:`evaluate`.
"""
from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..params import TrainParams
from ..progress import bar as progress_bar


@dataclass
class Fitted:
    """The outcome of :func:`fit`: the best epoch's weights and the curve that chose it."""

    state: dict[str, torch.Tensor]
    best_epoch: int  # 1-based
    val_accuracy: float
    history: list[dict] = field(default_factory=list)  # per epoch; no clock times (they change every run)
    steps: int = 0  # optimizer steps taken (all epochs)
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time: the wall time on an idle machine, at one thread
    epoch_seconds: list[float] = field(default_factory=list)


def pick_device(device: str = TrainParams.device) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def make_optimizer(model: nn.Module, opt) -> torch.optim.Optimizer:
    """The torch optimizer of a recipe's ``optimizer`` (``foreach=False``: one code path)."""
    if opt.name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=opt.lr, betas=opt.betas, eps=opt.eps,
                                 weight_decay=opt.weight_decay, foreach=False)
    return torch.optim.SGD(model.parameters(), lr=opt.lr, momentum=opt.momentum, nesterov=opt.nesterov,
                           weight_decay=opt.weight_decay, foreach=False)


def warmup_cosine(total_steps: int, warmup_fraction: float, final_fraction: float = 0.0):
    """The lr multiplier at each step: linear from ~0 to 1, then half a cosine to ``final_fraction``."""
    warm = round(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        t = (step - warm) / max(1, total_steps - warm)
        return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))

    return factor


def crop_flip(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop of the zero-padded (so mean-valued, after normalisation) image + random
    horizontal flip, per image, drawn from ``gen``."""
    n, _, h, w = x.shape
    padded = nn.functional.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    rows = oy[:, None] + torch.arange(h)
    cols = ox[:, None] + torch.arange(w)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    out = padded[torch.arange(n)[:, None, None], :, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()


def evaluate(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], device: torch.device,
             batch_size: int = 500) -> float:
    """Top-1 accuracy of ``model`` (in eval mode, without autograd) on ``(x, y)``."""
    # ``with``, not the ``@torch.no_grad()`` decorator: mutmut does not mutate decorated functions
    with torch.no_grad():
        model.eval()
        x, y = data
        correct = 0
        for i in range(0, len(y), batch_size):
            logits = model(x[i:i + batch_size].to(device))
            correct += int((logits.argmax(1).cpu() == y[i:i + batch_size]).sum())
        return correct / max(1, len(y))


def fit(model: nn.Module, train: tuple, val: tuple, recipe, augmentation: str, device: torch.device,
        progress: bool = True, desc: str = "train") -> Fitted:
    """Train ``model`` by ``recipe``; keep the weights of the epoch best on ``val``.

    Call inside :func:`.determinism.deterministic`. Shuffling and augmentation draw from their own
    generator seeded by the recipe, independent of the model's initialisation.
    """
    x, y = train
    n = len(y)
    batch = min(recipe.batch_size, n)
    steps_per_epoch = n // batch  # drop the ragged last batch: batch norm needs > 1 sample
    total = steps_per_epoch * recipe.epochs
    optimizer = make_optimizer(model, recipe.optimizer)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_cosine(total, recipe.schedule.warmup_fraction, recipe.schedule.final_lr_fraction))
    gen = torch.Generator().manual_seed(recipe.seed + 1)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device)
    best = Fitted(state={}, best_epoch=0, val_accuracy=-1.0)
    start, cpu_start = time.perf_counter(), time.process_time()
    for epoch in range(1, recipe.epochs + 1):
        t0 = time.perf_counter()
        model.train()
        order = torch.randperm(n, generator=gen)
        loss_sum, correct, seen = 0.0, 0, 0
        # a bar per epoch; driven by hand because a tqdm iterated to its end closes itself
        # before the validation accuracy is known
        with progress_bar(total=steps_per_epoch, desc=f"{desc} epoch {epoch}/{recipe.epochs}", unit="step",
                  disable=not progress, leave=True, dynamic_ncols=True) as bar:
            for step in range(steps_per_epoch):
                idx = order[step * batch:(step + 1) * batch]
                xb, yb = x[idx], y[idx]
                if augmentation == "crop-flip":
                    xb = crop_flip(xb, gen)
                xb, yb = xb.to(device), yb.to(device)
                logits = model(xb)
                loss = loss_fn(logits, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                loss_sum += float(loss.detach()) * len(yb)
                correct += int((logits.argmax(1) == yb).sum())
                seen += len(yb)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
                bar.update()
            val_acc = evaluate(model, val, device)
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", val_acc=f"{val_acc:.4f}")
        best.steps += steps_per_epoch
        best.history.append({"epoch": epoch, "step": best.steps, "train_loss": loss_sum / seen,
                             "train_accuracy": correct / seen, "val_accuracy": val_acc,
                             "lr": optimizer.param_groups[0]["lr"]})
        best.epoch_seconds.append(time.perf_counter() - t0)
        if val_acc > best.val_accuracy:  # ties keep the earlier epoch
            best.val_accuracy, best.best_epoch = val_acc, epoch
            best.state = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    best.seconds = time.perf_counter() - start
    best.cpu_seconds = time.process_time() - cpu_start
    return best


def plot_curve(history: list[dict], path: Path, title: str, best_epoch: int | None = None,
               test_accuracy: float | None = None) -> Path:
    """Training loss and validation accuracy per epoch, as a PNG (Agg, no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from ..atomic import atomic_write_bytes

    epochs = [h["epoch"] for h in history]
    fig = Figure(figsize=(6, 3.6), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.plot(epochs, [h["train_loss"] for h in history], color="tab:blue", marker="o", ms=3, label="train loss")
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("train loss", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(epochs, [h["val_accuracy"] for h in history], color="tab:orange", marker="o", ms=3,
             label="validation accuracy")
    ax2.set_ylabel("validation accuracy", color="tab:orange")
    if best_epoch:
        ax2.axvline(best_epoch, color="grey", ls="--", lw=1)
    subtitle = f" (best epoch {best_epoch}" + (f", test {test_accuracy:.4f})" if test_accuracy is not None else ")")
    ax.set_title(title + (subtitle if best_epoch else ""), fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    return path
