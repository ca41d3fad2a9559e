"""Built-in example models, data and losses: the demo, the benchmarks and the tests use them.

Everything is generated from a seed; nothing is downloaded.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .loss import LossOfModel


def mlp(
    in_features: int, out_features: int, hidden=(50, 50, 50, 50), activation=nn.Tanh
) -> nn.Sequential:
    """A fully connected network ``in -> hidden... -> out`` with the given activation.

    The default (4 hidden layers of 50, tanh) is the PINN of Krishnapriyan et al. 2021.
    """
    sizes = [in_features, *hidden, out_features]
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def small_cnn(in_channels: int = 1, num_classes: int = 10, width: int = 8) -> nn.Sequential:
    """A small convolutional classifier for 16x16 images (conv-relu-pool twice, then linear)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(2 * width * 4 * 4, num_classes),
    )


def two_spirals(
    n: int = 512, *, noise: float = 0.15, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Two interleaved spirals in the plane: inputs (n, 2) float32 and labels (n,) int64."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % 2
    t = 0.5 + 2.5 * math.pi * torch.rand(n, generator=g)
    sign = 1.0 - 2.0 * label
    x = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) * sign[:, None] / (2.5 * math.pi)
    x = x + noise / (2.5 * math.pi) * torch.randn(n, 2, generator=g) * 2.5
    return x.float(), label.long()


def random_images(
    n: int = 64, *, channels: int = 1, size: int = 16, num_classes: int = 10, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random images (n, channels, size, size) with random labels: a stand-in batch for timing."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, channels, size, size, generator=g)
    y = torch.randint(0, num_classes, (n,), generator=g)
    return x, y


def train(
    model: nn.Module,
    loss_fn,
    batch,
    *,
    steps: int = 500,
    lr: float = 1e-2,
    seed: int = 0,
    callback=None,
) -> list[float]:
    """Full-batch Adam on ``loss_fn(model, batch)``; returns the loss history. Trains in place.

    ``callback(step, model)``, if given, is called after every step (to keep checkpoints of
    the training path, say)."""
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    model.train()
    for step in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        optimizer.step()
        history.append(float(loss.detach()))
        if callback is not None:
            callback(step, model)
    model.eval()
    return history


LBFGS = dict(
    lr=1.0,
    history_size=50,
    line_search_fn="strong_wolfe",
    tolerance_grad=1e-7,
    tolerance_change=1e-7,
)  # Krishnapriyan et al. 2021's settings, as in their code


def train_lbfgs(
    model: nn.Module, loss_fn, batch, *, max_iter: int = 1000, seed: int = 0, **settings
) -> list[float]:
    """Full-batch L-BFGS (``torch.optim.LBFGS``) on ``loss_fn(model, batch)``: one optimiser
    step of up to ``max_iter`` iterations, stopping earlier at its tolerances. The settings are
    ``LBFGS`` (lr 1, history 50, strong Wolfe line search, tolerances 1e-7) unless overridden.
    Returns the loss at every evaluation (line-search trials included). Trains in place."""
    torch.manual_seed(seed)
    options = {**LBFGS, **settings, "max_iter": max_iter}
    optimizer = torch.optim.LBFGS(model.parameters(), **options)
    history: list[float] = []

    def closure():
        optimizer.zero_grad()
        loss = loss_fn(model, batch)
        loss.backward()
        history.append(float(loss.detach()))
        return loss

    model.train()
    optimizer.step(closure)
    model.eval()
    return history


def train_many(
    models: Sequence[nn.Module], loss_fn, batches: Sequence, *, steps: int = 500, lrs=1e-2
) -> list[list[float]]:
    """Full-batch Adam on several models of one architecture at once: one vmapped step for all.

    Model ``i`` trains on ``batches[i]`` with learning rate ``lrs[i]`` (or ``lrs`` for all). The
    updates are those of :func:`train` on each model alone (Adam with PyTorch's defaults), up to
    rounding; but the models' forward and backward passes run as one call
    (``torch.func.vmap`` over their stacked weights), so that on a GPU a step of many small models
    costs about as much as a step of one. The batches must have equal shapes. Buffers are passed
    along but not updated (no BatchNorm in training mode). Trains in place (the models end in
    eval mode); returns each model's loss history. For mini-batches, step :class:`ManyAdam`.
    """
    models = _group(models, batches)
    adam = ManyAdam(models, loss_fn, lrs)
    batch = _stack(batches)
    history = [adam.step(batch) for _ in range(steps)]
    adam.write_back()
    for model in models:
        model.eval()
    return torch.stack(history, dim=1).tolist() if history else [[] for _ in models]


class ManyAdam:
    """Adam (PyTorch's defaults) on several models of one architecture at once.

    Each :meth:`step` takes one batch per model, stacked along a new first dimension (equal
    shapes), and makes one Adam update of every model, with its own learning rate (``lrs``: one
    for all or one per model), moments and step count: the updates of ``torch.optim.Adam`` on
    each model alone, up to rounding, with the forward and backward passes of all the models one
    vmapped call. Buffers are passed along, not updated (no BatchNorm in training mode). The
    models' own parameters change only at :meth:`write_back`. :meth:`state_dict` and
    :meth:`load_state_dict` read and write one model's optimiser state in ``torch.optim.Adam``'s
    format, so a run can go on alone or in a group from either.
    """

    betas, eps = (0.9, 0.999), 1e-8

    def __init__(self, models: Sequence[nn.Module], loss_fn, lrs=1e-3):
        self.models = _group(models)
        rates = _rates(lrs, len(self.models))
        params, self.buffers = torch.func.stack_module_state(self.models)
        self.names = list(params)
        self.weights = [params[k].detach() for k in self.names]
        self.lrs = rates.tolist()
        self.lr = [rates.to(w).view(-1, *[1] * (w.dim() - 1)).expand_as(w) for w in self.weights]
        self.exp_avg = [torch.zeros_like(w) for w in self.weights]
        self.exp_avg_sq = [torch.zeros_like(w) for w in self.weights]
        self.steps = 0
        loss = _member_loss(self.models, loss_fn, self.names)
        self._grad = torch.vmap(torch.func.grad_and_value(loss))

    @torch.no_grad()
    def step(self, batch) -> torch.Tensor:
        """One update of every model on its part of ``batch``; returns the losses (models,)."""
        grads, values = self._grad(self.weights, self.buffers, batch)
        beta1, beta2 = self.betas
        self.steps += 1
        t = self.steps
        torch._foreach_lerp_(self.exp_avg, grads, 1 - beta1)
        torch._foreach_mul_(self.exp_avg_sq, beta2)
        torch._foreach_addcmul_(self.exp_avg_sq, grads, grads, value=1 - beta2)
        denom = torch._foreach_sqrt(self.exp_avg_sq)
        torch._foreach_div_(denom, math.sqrt(1 - beta2**t))
        torch._foreach_add_(denom, self.eps)
        update = torch._foreach_div(self.exp_avg, denom)
        torch._foreach_mul_(update, self.lr)
        torch._foreach_add_(self.weights, update, alpha=-1 / (1 - beta1**t))
        return values.detach()

    def write_back(self) -> None:
        """Copy each model's trained weights into its own parameters (in place)."""
        _write_back(self.models, self.names, self.weights)

    def state_dict(self, i: int) -> dict:
        """Model ``i``'s optimiser state as ``torch.optim.Adam(model.parameters()).state_dict()``
        gives it (after :meth:`write_back`, the parameters are the model's own)."""
        params = dict(self.models[i].named_parameters())
        alone = torch.optim.Adam(params.values(), lr=self.lrs[i])
        if self.steps:
            for k, m, v in zip(self.names, self.exp_avg, self.exp_avg_sq):
                alone.state[params[k]] = {
                    "step": torch.tensor(float(self.steps)),
                    "exp_avg": m[i].clone(),
                    "exp_avg_sq": v[i].clone(),
                }
        return alone.state_dict()

    @torch.no_grad()
    def load_state_dict(self, i: int, state: dict) -> None:
        """Give model ``i`` the optimiser state ``state`` (``torch.optim.Adam``'s format); every
        model of the group must have taken as many steps."""
        params = dict(self.models[i].named_parameters())
        alone = torch.optim.Adam(params.values(), lr=self.lrs[i])
        alone.load_state_dict(state)
        for k, m, v in zip(self.names, self.exp_avg, self.exp_avg_sq):
            kept = alone.state.get(params[k], {})
            if "step" in kept:
                self.steps = int(kept["step"])
                m[i].copy_(kept["exp_avg"])
                v[i].copy_(kept["exp_avg_sq"])


def train_many_lbfgs(
    models: Sequence[nn.Module],
    loss_fn,
    batches: Sequence,
    *,
    max_iter: int = 1000,
    lrs=None,
    **settings,
) -> list[dict]:
    """Full-batch L-BFGS on several models of one architecture at once (see :func:`train_lbfgs`).

    Model ``i`` trains on ``batches[i]`` (equal shapes) with learning rate ``lrs[i]`` (or
    ``lrs`` for all; by default ``LBFGS["lr"]``), each as one ``torch.optim.LBFGS`` step of up
    to ``max_iter`` iterations with the settings ``LBFGS`` unless overridden (history,
    tolerances; the line search is always strong Wolfe). Each model follows its own iterates,
    history, step lengths and stopping, the same as :func:`train_lbfgs` on it alone up to
    rounding; but at every round the loss and gradient of all the models still training are
    one vmapped call. A model that stops drops out. Buffers are passed along, not updated.
    Trains in place (the models end in eval mode); returns one dict per model: ``losses`` (the
    loss at every evaluation, line-search trials included), ``iterations``, ``evaluations``
    and ``stop`` (which test ended it).
    """
    from . import _lbfgs

    models = _group(models, batches)
    if int(max_iter) < 1:
        raise ValueError(f"max_iter: expected an integer >= 1; got {max_iter!r}")
    options = {**LBFGS, **settings}
    if options.pop("line_search_fn") != "strong_wolfe":
        raise ValueError("line_search_fn: only 'strong_wolfe' is supported")
    lr = options.pop("lr")
    lr = _rates(lr if lrs is None else lrs, len(models)).tolist()
    params, buffers = torch.func.stack_module_state(models)
    names = list(params)
    shapes = [params[k].shape[1:] for k in names]
    sizes = [math.prod(shape) for shape in shapes]
    x0 = torch.cat([params[k].detach().flatten(1) for k in names], dim=1)
    member = _member_loss(models, loss_fn, names)

    def loss(w, b, batch):  # (one model's weights as one flat vector)
        return member([p.view(shape) for p, shape in zip(torch.split(w, sizes), shapes)], b, batch)

    step = torch.vmap(torch.func.grad_and_value(loss))
    batch = _stack(batches)
    every = len(models)

    def fun(x, rows):
        if len(rows) == every:
            grads, values = step(x, buffers, batch)
        else:
            grads, values = step(x, _rows(buffers, rows), _rows(batch, rows))
        return values.detach(), grads.detach()

    with torch.no_grad():
        x, runs = _lbfgs.minimize_many(
            fun,
            x0,
            lr,
            max_iter=int(max_iter),
            max_eval=options.pop("max_eval", None),
            **options,
        )
    stacked = [part.view(-1, *shape) for part, shape in zip(torch.split(x, sizes, 1), shapes)]
    _write_back(models, names, stacked)
    for model in models:
        model.eval()
    return [
        {"losses": r.losses, "iterations": r.n_iter, "evaluations": r.evals, "stop": r.stop}
        for r in runs
    ]


def _group(models: Sequence[nn.Module], batches: Sequence | None = None) -> list[nn.Module]:
    """The models of a group trained together, checked: at least one, one batch each."""
    models = list(models)
    if not models:
        raise ValueError("models: expected at least one model")
    if batches is not None and len(batches) != len(models):
        raise ValueError(
            f"batches: expected one batch per model ({len(models)}); got {len(batches)}"
        )
    return models


def _member_loss(models: list[nn.Module], loss_fn, names: list[str]):
    """``loss(weights, buffers, batch)``: the loss of one model of the group with the given
    weights (one tensor per name of ``names``) and buffers, for ``torch.vmap`` over the group's
    stacked weights (the model's structure from a copy on the meta device, in train mode)."""
    wrapper = LossOfModel(copy.deepcopy(models[0]).to("meta").train(), loss_fn)

    def loss(weights, buffers, batch):
        w = {f"model.{k}": v for k, v in zip(names, weights)}
        b = {f"model.{k}": v for k, v in buffers.items()}
        return torch.func.functional_call(wrapper, (w, b), (batch,))

    return loss


@torch.no_grad()
def _write_back(models: list[nn.Module], names: list[str], stacked: list) -> None:
    """Copy model i's part of each stacked weight (models, ...) into its own parameter."""
    for i, model in enumerate(models):
        own = dict(model.named_parameters())
        for k, w in zip(names, stacked):
            own[k].copy_(w[i])


def _rates(lrs, n: int) -> torch.Tensor:
    """One learning rate per model (float64): ``lrs`` one for all, or one per model."""
    rates = torch.as_tensor(lrs, dtype=torch.float64)
    if rates.dim() > 1 or (rates.dim() == 1 and len(rates) != n):
        raise ValueError(
            f"lrs: expected one learning rate, or one per model ({n}); got shape "
            f"{tuple(rates.shape)}"
        )
    if not bool(torch.all(torch.isfinite(rates) & (rates > 0))):
        raise ValueError(f"lrs: expected positive finite learning rates; got {rates.tolist()}")
    return rates.expand(n)


def _rows(stacked, rows: torch.Tensor):
    """The given models' part of a batch (or buffers) stacked by :func:`_stack`."""
    if isinstance(stacked, torch.Tensor):
        return stacked[rows]
    if isinstance(stacked, dict):
        return {k: _rows(v, rows) for k, v in stacked.items()}
    return type(stacked)(_rows(v, rows) for v in stacked)


def _stack(batches: Sequence):
    """One batch with a leading model dimension from equally shaped batches (nested alike)."""
    first = batches[0]
    if isinstance(first, torch.Tensor):
        return torch.stack(list(batches))
    if isinstance(first, dict):
        return {k: _stack([b[k] for b in batches]) for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(_stack(parts) for parts in zip(*batches))
    raise TypeError(f"batches: expected tensors, or tuples, lists or dicts of them; got {first!r}")


# --- the 1D convection equation u_t + beta u_x = 0 (Krishnapriyan et al. 2021) ------------------


def convection_points(
    n_residual: int = 1000, n_initial: int = 100, n_boundary: int = 100, *, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Collocation points on x in [0, 2 pi), t in [0, 1]: a batch for :func:`convection_loss`.

    Keys: ``"residual"`` (n_residual, 2) interior (x, t); ``"initial"`` (n_initial, 2) at t = 0;
    ``"boundary"`` (n_boundary, 2) at x = 0 -- the periodic partner x = 2 pi is built by the loss.
    """
    g = torch.Generator().manual_seed(seed)
    two_pi = 2 * math.pi
    interior = torch.rand(n_residual, 2, generator=g) * torch.tensor([two_pi, 1.0])
    x0 = torch.rand(n_initial, generator=g) * two_pi
    tb = torch.rand(n_boundary, generator=g)
    return {
        "residual": interior,
        "initial": torch.stack([x0, torch.zeros_like(x0)], dim=1),
        "boundary": torch.stack([torch.zeros_like(tb), tb], dim=1),
    }


def convection_loss(beta: float, *, terms: bool = False):
    """The PINN loss of the convection equation with wave speed ``beta``.

    ``residual`` = mean (u_t + beta u_x)^2 over interior points, ``initial`` = mean
    (u(x, 0) - sin x)^2, ``boundary`` = mean (u(0, t) - u(2 pi, t))^2; the loss is their sum.
    The residual u_t + beta u_x is the derivative of u along (beta, 1) in (x, t): one
    forward-mode product (``torch.func.jvp``), which also runs under the vmap sampler.

    Parameters
    ----------
    beta : float or None
        Wave speed; None: each batch's ``"beta"`` (a scalar tensor), so that runs of different
        wave speeds can train together (:func:`train_many_lbfgs`).
    terms : bool
        Return a dict ``{"loss", "residual", "initial", "boundary"}`` instead of the sum.
    """

    def loss_fn(model: nn.Module, batch: dict[str, torch.Tensor]):
        xt = batch["residual"]
        speed = batch["beta"] if beta is None else beta
        # u_t + beta u_x is the derivative of u along (beta, 1) in (x, t): one product
        ones = torch.ones_like(xt[:, 1])
        direction = torch.stack([ones * speed, ones], dim=1)
        _, u_along = torch.func.jvp(model, (xt,), (direction,))
        residual = (u_along**2).mean()
        x0 = batch["initial"]
        initial = ((model(x0)[:, 0] - torch.sin(x0[:, 0])) ** 2).mean()
        left = batch["boundary"]
        right = left + torch.tensor([2 * math.pi, 0.0], dtype=left.dtype, device=left.device)
        boundary = ((model(left) - model(right)) ** 2).mean()
        total = residual + initial + boundary
        if terms:
            return {"loss": total, "residual": residual, "initial": initial, "boundary": boundary}
        return total

    loss_fn.__name__ = (
        "convection_loss(beta from the batch)"
        if beta is None
        else (f"convection_loss(beta={beta:g})")
    )
    return loss_fn


def convection_solution(x: torch.Tensor, t: torch.Tensor, beta: float) -> torch.Tensor:
    """The exact solution sin(x - beta t) for u(x, 0) = sin x with periodic boundary."""
    return torch.sin(x - beta * t)
