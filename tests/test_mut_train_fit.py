"""``train.loop.fit`` and ``evaluate``, the parts ``test_mut_train_loop.py`` leaves open: the
progress bar (shown by default, named ``train``, counting steps, ending on the epoch's loss
and validation accuracy), autograd off while evaluating, and the learning rate at each epoch
against the warm-up + cosine formula worked out with ``math``.

The bar is read from stderr (not a terminal here: the package's log mode, one line per redraw).
Expected numbers come from torch on the untrained model (a learning rate of 1e-12 leaves the
weights as they are) or from ``math``.
"""
from __future__ import annotations

import math
import re
import time

import pytest
import torch
from torch import nn

from cnn_filter_db.train import loop

from test_mut_train_loop import _problem, _recipe


def _untrained(x, y):
    """The loss and accuracy the model has before any step (torch directly)."""
    torch.manual_seed(3)
    model = nn.Linear(2, 2)
    with torch.no_grad():
        logits = model(x)
    return model, float(nn.functional.cross_entropy(logits, y)), float((logits.argmax(1) == y).float().mean())


def test_fit_shows_a_bar_named_train_by_default_ending_on_loss_and_validation_accuracy(capsys):
    x, y = _problem()
    x, y = x[:8], y[:8]
    model, loss, acc = _untrained(x, y)
    loop.fit(model, (x, y), (x, y), _recipe(epochs=2, batch_size=4, lr=1e-12), "none", torch.device("cpu"))
    err = capsys.readouterr().err
    for epoch in (1, 2):
        lines = [l for l in err.splitlines() if l.startswith(f"train epoch {epoch}/2: ")]
        # 8 samples in batches of 4: 2 steps; the bar starts at 0 and ends full, then shows the accuracy
        assert re.match(rf"train epoch {epoch}/2:   0%\|\s*\| 0/2 \[00:00<\?, \?step/s\]$", lines[0]), lines[0]
        end = re.fullmatch(rf"train epoch {epoch}/2: 100%\|#+\| 2/2 \[[^,]*, [\d.]+step/s, "
                           r"loss=(\d\.\d{4}), val_acc=(\d\.\d{4})\]", lines[-1])
        assert end, lines[-1]
        assert end.group(1) == f"{loss:.4f}" and end.group(2) == f"{acc:.4f}"


def test_fit_without_progress_prints_nothing(capsys):
    x, y = _problem()
    loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=2, batch_size=5, lr=0.1), "none",
             torch.device("cpu"), progress=False)
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_fit_learning_rate_at_each_epoch_follows_warmup_then_cosine():
    """10 samples, batches of 5: 2 steps an epoch, 8 in all; warm-up round(0.25 * 8) = 2 steps.
    After epoch e the scheduler has stepped 2e times: lr = 0.2 * factor(2e), with factor(s) =
    0.1 + 0.9 * 0.5 * (1 + cos(pi * (s - 2) / 6)) past the warm-up."""
    x, y = _problem()
    fitted = loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=4, batch_size=5, lr=0.2, final=0.1,
                                                                 warmup=0.25), "none", torch.device("cpu"),
                      progress=False)
    want = [0.2 * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (2 * e - 2) / 6))) for e in (1, 2, 3, 4)]
    assert [h["lr"] for h in fitted.history] == pytest.approx(want)
    assert fitted.history[-1]["lr"] == pytest.approx(0.02)


class _GradProbe(nn.Module):
    """Logits = the input; records whether autograd was on at each call."""

    def __init__(self):
        super().__init__()
        self.grad_enabled = []

    def forward(self, x):
        self.grad_enabled.append(torch.is_grad_enabled())
        return x


def test_evaluate_runs_the_model_without_autograd_and_leaves_it_on_after():
    x = torch.eye(2)[[0, 1, 1]]
    y = torch.tensor([0, 1, 0])                 # hits at 0 and 1: 2 of 3
    probe = _GradProbe()
    assert torch.is_grad_enabled()
    assert loop.evaluate(probe, (x, y), torch.device("cpu"), batch_size=2) == pytest.approx(2 / 3)
    assert probe.grad_enabled == [False, False]  # batches of 2: rows 0-1, then row 2
    assert torch.is_grad_enabled()


def test_evaluate_default_batch_is_500_rows():
    x = torch.eye(2)[[0] * 501]
    probe = _GradProbe()
    assert loop.evaluate(probe, (x, torch.zeros(501, dtype=torch.long)), torch.device("cpu")) == 1.0
    assert len(probe.grad_enabled) == 2          # 500 rows, then 1


def test_fit_shuffles_from_the_recipe_seed_not_the_global_generator():
    """Same model and recipe, the global torch generator in two different states: the same
    batches, so the same curve and weights (bit for bit)."""
    x, y = _problem()
    torch.manual_seed(5)
    start = nn.Linear(2, 2).state_dict()

    def run(global_seed):
        model = nn.Linear(2, 2)
        model.load_state_dict(start)
        torch.manual_seed(global_seed)
        return loop.fit(model, (x, y), (x, y), _recipe(epochs=3, batch_size=3, lr=0.5), "none",
                        torch.device("cpu"), progress=False)

    a, b = run(1), run(2)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    # and the order matters: another recipe seed gives another curve
    model = nn.Linear(2, 2)
    model.load_state_dict(start)
    other = _recipe(epochs=3, batch_size=3, lr=0.5)
    other.seed = 7
    c = loop.fit(model, (x, y), (x, y), other, "none", torch.device("cpu"), progress=False)
    assert [h["train_loss"] for h in c.history] != [h["train_loss"] for h in a.history]


def test_fit_leaves_each_epochs_bar_when_it_closes(capsys):
    """``leave=True``: closing the bar draws its final state once more (in log mode, where
    stderr is not a terminal, a second line equal to the one with the validation accuracy)."""
    x, y = _problem()
    loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=1, batch_size=5, lr=0.1), "none",
             torch.device("cpu"), desc="d")
    final = [l for l in capsys.readouterr().err.splitlines() if "val_acc=" in l]
    assert len(final) == 2 and final[0].split("[")[0] == final[1].split("[")[0]


def test_fit_times_are_within_what_the_caller_measured():
    x, y = _problem()
    wall, cpu = time.perf_counter(), time.process_time()
    fitted = loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=2, batch_size=5, lr=0.1), "none",
                      torch.device("cpu"), progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert sum(fitted.epoch_seconds) * 0.999 <= fitted.seconds <= wall
    assert 0 < fitted.cpu_seconds <= cpu


def test_evaluate_of_one_sample_is_zero_or_one():
    x, y = torch.eye(2)[[1]], torch.tensor([1])
    assert loop.evaluate(_GradProbe(), (x, y), torch.device("cpu")) == 1.0
