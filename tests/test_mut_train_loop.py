"""The training loop's parts (``train.loop``) on hand-sized problems: the learning-rate
schedule against its formula worked out with ``math``, accuracy against hand counts, the
optimizer against the recipe, and :func:`fit`'s bookkeeping (steps, history, the best epoch
and its weights) on a linear model whose outputs are computed with torch directly."""
from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from cnn_filter_db.train import loop
from cnn_filter_db.train.recipe import SGD, AdamW, Schedule

# --------------------------------------------------------------------------- schedule


def test_warmup_rises_linearly_then_half_a_cosine_falls_to_zero():
    f = loop.warmup_cosine(10, 0.2)            # 2 warm-up steps, then 8 of cosine
    assert f(0) == 0.5 and f(1) == 1.0         # (step + 1) / 2
    assert f(2) == 1.0                         # the cosine starts at its top
    assert f(4) == pytest.approx(0.5 * (1 + math.cos(math.pi * 2 / 8)))
    assert f(6) == pytest.approx(0.5)          # half way: cos(pi / 2) = 0
    assert f(10) == pytest.approx(0.0, abs=1e-12)
    assert f(14) == pytest.approx(0.0, abs=1e-12)  # past the end it stays at the bottom


def test_schedule_ends_at_the_final_fraction():
    f = loop.warmup_cosine(10, 0.2, final_fraction=0.1)
    assert f(6) == pytest.approx(0.1 + 0.9 * 0.5)
    assert f(10) == pytest.approx(0.1) and f(20) == pytest.approx(0.1)


def test_schedule_without_warmup_and_with_one_cosine_step():
    f = loop.warmup_cosine(8, 0.0)
    assert f(0) == 1.0 and f(4) == pytest.approx(0.5)
    g = loop.warmup_cosine(3, 0.6)             # round(1.8) = 2 warm-up steps, 1 cosine step
    assert g(0) == 0.5 and g(1) == 1.0 and g(2) == 1.0 and g(3) == pytest.approx(0.0, abs=1e-12)


# --------------------------------------------------------------------------- accuracy

class _Pick(nn.Module):
    """Logits = the input itself, after a dropout that zeroes everything in training mode."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(p=1.0)

    def forward(self, x):
        return self.drop(x)


def test_evaluate_counts_top1_hits_in_eval_mode_over_all_batches():
    x = torch.eye(3)[[0, 1, 2, 0, 1, 2, 0]]    # argmax of row i: 0 1 2 0 1 2 0
    y = torch.tensor([0, 1, 0, 0, 2, 2, 1])    # hits at 0, 1, 3, 5: 4 of 7
    model = _Pick().train()                    # in training mode every logit would be 0
    assert loop.evaluate(model, (x, y), torch.device("cpu"), batch_size=2) == pytest.approx(4 / 7)
    assert not model.training
    assert loop.evaluate(model, (x, y), torch.device("cpu"), batch_size=7) == pytest.approx(4 / 7)
    assert loop.evaluate(model, (x[:0], y[:0]), torch.device("cpu")) == 0.0


# --------------------------------------------------------------------------- optimizer, device

def test_optimizer_takes_every_value_of_the_recipe():
    model = nn.Linear(2, 2)
    sgd = loop.make_optimizer(model, SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.002))
    assert type(sgd) is torch.optim.SGD
    g = sgd.param_groups[0]
    assert (g["lr"], g["momentum"], g["nesterov"], g["weight_decay"], g["foreach"]) == (0.05, 0.8, True, 0.002, False)
    assert [id(p) for p in g["params"]] == [id(p) for p in model.parameters()]
    adamw = loop.make_optimizer(model, AdamW(name="adamw", lr=0.003, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1))
    assert type(adamw) is torch.optim.AdamW
    g = adamw.param_groups[0]
    assert (g["lr"], tuple(g["betas"]), g["eps"], g["weight_decay"], g["foreach"]) == (0.003, (0.8, 0.99), 1e-6, 0.1,
                                                                                        False)
    assert [id(p) for p in g["params"]] == [id(p) for p in model.parameters()]


def test_auto_device_is_the_gpu_only_when_there_is_one():
    assert loop.pick_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert loop.pick_device("cpu") == torch.device("cpu")
    assert loop.pick_device() == loop.pick_device("auto")


# --------------------------------------------------------------------------- fit

def _recipe(epochs: int, batch_size: int, lr: float, final: float = 0.0, warmup: float = 0.5):
    return SimpleNamespace(epochs=epochs, batch_size=batch_size, seed=0,
                           optimizer=SGD(lr=lr, momentum=0.0, nesterov=False, weight_decay=0.0),
                           schedule=Schedule(warmup_fraction=warmup, final_lr_fraction=final))


def _problem():
    torch.manual_seed(0)
    x = torch.randn(10, 2)
    y = (x[:, 0] > 0).long()
    return x, y


def test_fit_counts_whole_batches_and_records_each_epoch():
    x, y = _problem()
    model = nn.Linear(2, 2)
    fitted = loop.fit(model, (x, y), (x, y), _recipe(epochs=3, batch_size=4, lr=0.1, final=0.25), "none",
                      torch.device("cpu"), progress=False)
    # 10 samples in batches of 4: 2 steps an epoch (the ragged last 2 are dropped)
    assert fitted.steps == 6
    assert [h["epoch"] for h in fitted.history] == [1, 2, 3]
    assert [h["step"] for h in fitted.history] == [2, 4, 6]
    # warm-up is round(0.5 * 6) = 3 steps: after 2 steps the lr is 3/3 of its peak; at the end, the final fraction
    assert fitted.history[0]["lr"] == pytest.approx(0.1)
    assert fitted.history[-1]["lr"] == pytest.approx(0.025)
    assert len(fitted.epoch_seconds) == 3 and all(s > 0 for s in fitted.epoch_seconds)
    assert fitted.seconds >= sum(fitted.epoch_seconds) * 0.999 and fitted.cpu_seconds > 0
    # the best epoch is the first one of highest validation accuracy
    accs = [h["val_accuracy"] for h in fitted.history]
    assert fitted.best_epoch == accs.index(max(accs)) + 1 and fitted.val_accuracy == max(accs)


def test_fit_records_the_loss_and_accuracy_of_what_it_trained_on():
    """A learning rate too small to move the weights: each epoch's train loss and accuracy are
    those of the initial model on all 8 samples (2 batches of 4 cover them), and ties of
    validation accuracy keep the first epoch."""
    x, y = _problem()
    x, y = x[:8], y[:8]
    model = nn.Linear(2, 2)
    with torch.no_grad():
        logits = model(x)
        loss = float(nn.functional.cross_entropy(logits, y))
        acc = float((logits.argmax(1) == y).float().mean())
    wrong = 1 - logits.argmax(1)                    # labels the model gets all wrong: accuracy 0
    fitted = loop.fit(model, (x, y), (x, wrong), _recipe(epochs=3, batch_size=4, lr=1e-12), "none",
                      torch.device("cpu"), progress=False)
    for h in fitted.history:
        assert h["train_loss"] == pytest.approx(loss, rel=1e-5)
        assert h["train_accuracy"] == pytest.approx(acc)
        assert h["val_accuracy"] == 0.0
    assert fitted.best_epoch == 1 and fitted.val_accuracy == 0.0
    assert set(fitted.state) == {"weight", "bias"}


def test_fit_keeps_a_copy_of_the_best_weights():
    x, y = _problem()
    model = nn.Linear(2, 2)
    fitted = loop.fit(model, (x, y), (x, y), _recipe(epochs=1, batch_size=5, lr=0.1), "none",
                      torch.device("cpu"), progress=False)
    kept = {k: v.clone() for k, v in fitted.state.items()}
    assert all(torch.equal(kept[k], v) for k, v in model.state_dict().items())
    with torch.no_grad():
        model.weight.add_(1.0)                      # later changes to the model
    assert all(torch.equal(kept[k], fitted.state[k]) for k in kept)
    with torch.no_grad():
        logits = x @ kept["weight"].T + kept["bias"]
    assert fitted.val_accuracy == pytest.approx(float((logits.argmax(1) == y).float().mean()))


def test_fit_with_a_batch_larger_than_the_data_takes_one_step_an_epoch():
    x, y = _problem()
    fitted = loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=2, batch_size=64, lr=0.1), "none",
                      torch.device("cpu"), progress=False)
    assert fitted.steps == 2 and [h["step"] for h in fitted.history] == [1, 2]


def test_fit_augments_only_when_asked():
    """crop-flip draws from the loop's generator: with it the first epoch's loss differs."""
    torch.manual_seed(0)
    x = torch.randn(8, 1, 4, 4)
    y = (x.mean((1, 2, 3)) > 0).long()

    def run(augmentation):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
        return loop.fit(model, (x, y), (x, y), _recipe(epochs=1, batch_size=8, lr=1e-12), augmentation,
                        torch.device("cpu"), progress=False).history[0]["train_loss"]

    torch.manual_seed(1)
    plain = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    with torch.no_grad():
        expected = float(nn.functional.cross_entropy(plain(x), y))
    assert run("none") == pytest.approx(expected, rel=1e-5)
    assert run("crop-flip") != pytest.approx(expected, rel=1e-5)


def test_fit_progress_names_the_epoch_and_reports_loss_and_validation_accuracy(capsys):
    x, y = _problem()
    loop.fit(nn.Linear(2, 2), (x, y), (x, y), _recipe(epochs=2, batch_size=5, lr=0.1), "none",
             torch.device("cpu"), progress=True, desc="digits")
    err = capsys.readouterr().err
    assert "digits epoch 1/2" in err and "digits epoch 2/2" in err
    assert "loss=" in err and "val_acc=" in err and "step" in err
