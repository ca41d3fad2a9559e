"""L-BFGS with a strong Wolfe line search for many runs at once, over their stacked weights.

Each run follows the iterates ``torch.optim.LBFGS(line_search_fn="strong_wolfe")`` takes on it
alone, in one ``step`` of up to ``max_iter`` iterations: its own history (a ring buffer of the
last ``history_size`` pairs), its own step lengths and its own stopping tests. What the runs
share is the work: at every round each run that is still going asks for the loss and gradient at
one point (its next line-search trial), and one call evaluates all those points together, so
that a GPU sees few large kernels instead of many small ones. The vector algebra (the two-loop
recursion, the moves) is batched over the runs too; the line search's scalar logic is a small
state machine per run, in double precision on the host, fed once per round.

Up to rounding: the reductions are batched (so summed in another order) and the line search's
scalars are float64 where torch keeps some in the weights' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

import numpy as np
import torch

C1, C2 = 1e-4, 0.9  # the strong Wolfe conditions' constants (torch's defaults)
LS_TOLERANCE = 1e-9  # the line search's own tolerance on the bracket's width (torch's default)
INITIAL = -1  # the slot of the gradient at the iterate itself (the others are 0, 1 and 2)


@dataclass
class Run:
    """One run's scalar state; its vectors are rows of the batched tensors."""

    lr: float
    loss: float = math.nan
    prev_loss: float = math.nan
    t: float = 0.0
    n_iter: int = 0
    evals: int = 0
    search: Generator | None = None
    search_evals: int = 0
    d_norm: float = 0.0  # the direction's largest |component| (for the step test)
    slot: int = INITIAL  # where the trial being evaluated puts its gradient
    stop: str = ""  # why it stopped ("" while it runs)
    losses: list = field(default_factory=list)


def minimize_many(
    fun: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    x0: torch.Tensor,
    lr,
    *,
    max_iter: int,
    max_eval: int | None = None,
    history_size: int = 50,
    tolerance_grad: float = 1e-7,
    tolerance_change: float = 1e-7,
) -> tuple[torch.Tensor, list[Run]]:
    """Minimise R runs at once from ``x0`` (R, D), each as one ``torch.optim.LBFGS`` step.

    ``fun(x, rows)`` gives the losses (K,) and gradients (K, D) of the runs numbered ``rows``
    (K,) at the points ``x`` (K, D). ``lr``: one learning rate or one per run. Returns the final
    points (R, D) and each run's :class:`Run`, with the loss at every evaluation (line-search
    trials included) in ``losses`` and why it stopped in ``stop``.
    """
    n, size = x0.shape
    max_eval = max_eval if max_eval is not None else max_iter * 5 // 4
    rates = np.broadcast_to(np.asarray(lr, dtype=float), (n,))
    runs = [Run(lr=float(r)) for r in rates]
    like = dict(dtype=x0.dtype, device=x0.device)
    x = x0.detach().clone()  # each run's iterate
    grad = torch.zeros_like(x)  # the gradient there
    prev_grad = torch.zeros_like(x)
    direction = torch.zeros_like(x)
    slots = torch.zeros((n, 3, size), **like)  # the line search's other gradients
    memory = History(n, size, history_size, like)
    every = torch.arange(n, device=x0.device)

    loss, grad[:] = fun(x, every)
    values = torch.stack([loss.detach(), grad.abs().amax(1)]).double().tolist()
    begin = []
    for i, (f, gmax) in enumerate(zip(*values)):
        run = runs[i]
        run.loss, run.evals = f, 1
        run.losses.append(f)
        if gmax <= tolerance_grad:
            run.stop = "tolerance_grad"
        else:
            begin.append(i)
    settings = (max_iter, max_eval, tolerance_grad, tolerance_change)
    _begin(runs, begin, x, grad, prev_grad, direction, memory, max_eval, tolerance_change)
    while True:
        active = [i for i, run in enumerate(runs) if run.search is not None]
        if not active:
            break
        rows = torch.tensor(active, device=x0.device)
        steps = torch.tensor([runs[i].t for i in active], **like)
        trial = x[rows] + steps[:, None] * direction[rows]
        loss, trial_grad = fun(trial, rows)
        trial_grad = trial_grad.detach()
        slot = torch.tensor([runs[i].slot for i in active], device=x0.device)
        slots[rows, slot] = trial_grad
        scalars = torch.stack(
            [loss.detach(), (trial_grad * direction[rows]).sum(1), trial_grad.abs().amax(1)]
        )
        done = []  # (run, step length, slot of its gradient, its largest |gradient|)
        for i, (f, gtd, gmax) in zip(active, zip(*scalars.double().tolist())):
            run = runs[i]
            run.losses.append(f)
            try:
                run.t, run.slot = run.search.send((f, gtd, run.slot, gmax))
            except StopIteration as end:
                f, t, where, gmax, run.search_evals = end.value
                run.search = None
                run.loss, run.t = f, t
                done.append((i, t, where, gmax))
        begin = _finish(runs, done, x, grad, direction, slots, settings)
        _begin(runs, begin, x, grad, prev_grad, direction, memory, max_eval, tolerance_change)
    return x, runs


def _finish(runs, done, x, grad, direction, slots, settings) -> list[int]:
    """Move each run whose line search ended to its new iterate, take its gradient there, and
    apply the stopping tests; returns the runs that go on to another iteration."""
    max_iter, max_eval, tolerance_grad, tolerance_change = settings
    if not done:
        return []
    rows = torch.tensor([i for i, *_ in done], device=x.device)
    steps = torch.tensor([t for _, t, *_ in done], dtype=x.dtype, device=x.device)
    x[rows] = x[rows] + steps[:, None] * direction[rows]
    moved = [(i, where) for i, _, where, _ in done if where != INITIAL]
    if moved:
        which = torch.tensor([i for i, _ in moved], device=x.device)
        grad[which] = slots[which, torch.tensor([w for _, w in moved], device=x.device)]
    again = []
    for i, t, _, gmax in done:
        run = runs[i]
        run.evals += run.search_evals
        if run.n_iter == max_iter:
            run.stop = "max_iter"
        elif run.evals >= max_eval:
            run.stop = "max_eval"
        elif gmax <= tolerance_grad:
            run.stop = "tolerance_grad"
        elif run.d_norm * abs(t) <= tolerance_change:  # (max |t d| of the step taken)
            run.stop = "tolerance_change (step)"
        elif abs(run.loss - run.prev_loss) < tolerance_change:
            run.stop = "tolerance_change (loss)"
        else:
            again.append(i)
    return again


def _begin(runs, begin, x, grad, prev_grad, direction, memory, max_eval, tolerance_change):
    """Start an iteration for each run in ``begin``: its history, its direction, its first step
    length and its line search (or its stop, when the direction does not descend)."""
    if not begin:
        return
    rows = torch.tensor(begin, device=x.device)
    first = torch.tensor([runs[i].n_iter == 0 for i in begin], device=x.device)
    steps = torch.tensor([runs[i].t for i in begin], dtype=x.dtype, device=x.device)
    memory.add(rows, grad[rows] - prev_grad[rows], direction[rows] * steps[:, None], ~first)
    d = torch.where(first[:, None], -grad[rows], memory.direction(rows, grad[rows]))
    direction[rows] = d
    prev_grad[rows] = grad[rows]
    g = grad[rows]
    scalars = [(g * d).sum(1), g.abs().sum(1), g.abs().amax(1), d.abs().amax(1)]
    for i, gtd, g_sum, g_max, d_norm in zip(begin, *torch.stack(scalars).double().tolist()):
        run = runs[i]
        run.n_iter += 1
        run.prev_loss, run.d_norm = run.loss, d_norm
        with np.errstate(all="ignore"):
            t = min(1.0, float(np.float64(1.0) / g_sum)) * run.lr if run.n_iter == 1 else run.lr
        if gtd > -tolerance_change:
            run.stop = "tolerance_change (descent)"
            continue
        run.search = strong_wolfe(t, run.loss, gtd, g_max, d_norm, max_eval - run.evals)
        run.t, run.slot = next(run.search)


class History:
    """Each run's last ``m`` pairs (s, y) and 1 / y.s in ring buffers, and its scale H_diag."""

    def __init__(self, n: int, size: int, m: int, like: dict):
        self.m = m
        self.s = torch.zeros((n, m, size), **like)
        self.y = torch.zeros((n, m, size), **like)
        self.rho = torch.zeros((n, m), **like)
        self.scale = torch.ones(n, **like)
        self.head = torch.zeros(n, dtype=torch.long, device=like["device"])  # the next slot
        self.count = torch.zeros(n, dtype=torch.long, device=like["device"])

    def add(self, rows, y, s, use) -> None:
        """Keep (s, y) for the rows where ``use`` holds and y.s > 1e-10 (L-BFGS's curvature
        test), dropping the oldest pair of a full history."""
        ys = (y * s).sum(1)
        keep = use & (ys > 1e-10)
        at = self.head[rows]
        self.s[rows, at] = torch.where(keep[:, None], s, self.s[rows, at])
        self.y[rows, at] = torch.where(keep[:, None], y, self.y[rows, at])
        self.rho[rows, at] = torch.where(keep, 1.0 / ys, self.rho[rows, at])
        self.scale[rows] = torch.where(keep, ys / (y * y).sum(1), self.scale[rows])
        self.head[rows] = torch.where(keep, (at + 1) % self.m, at)
        self.count[rows] = torch.where(
            keep, (self.count[rows] + 1).clamp(max=self.m), self.count[rows]
        )

    def direction(self, rows, grad) -> torch.Tensor:
        """-H grad by the two-loop recursion, newest pair first, over each row's own pairs."""
        count, head = self.count[rows], self.head[rows]
        longest = int(count.max()) if len(rows) else 0
        q = -grad
        alphas, pairs = [], []
        for k in range(longest):  # newest to oldest
            at = (head - 1 - k) % self.m
            s, y, rho = self.s[rows, at], self.y[rows, at], self.rho[rows, at]
            alpha = torch.where(k < count, (s * q).sum(1) * rho, 0.0)
            q = q - alpha[:, None] * y
            alphas.append(alpha)
            pairs.append((s, y, rho))
        r = q * self.scale[rows][:, None]
        for k in reversed(range(longest)):  # oldest to newest
            s, y, rho = pairs[k]
            beta = (y * r).sum(1) * rho
            r = r + torch.where(k < count, alphas[k] - beta, 0.0)[:, None] * s
        return r


def strong_wolfe(
    t: float, f: float, gtd: float, g_max: float, d_norm: float, max_ls: int
) -> Generator:
    """One line search along a run's direction from its iterate (loss ``f``, slope ``gtd``,
    largest |gradient| ``g_max``; ``d_norm`` the direction's largest |component|),
    as torch.optim.LBFGS's ``_strong_wolfe`` does it: bracketing, then zooming by cubic
    interpolation, at most ``max_ls`` evaluations.

    A coroutine: it yields (step length, slot) of each trial to evaluate, and is sent (loss,
    slope, slot, largest |gradient|) back; it returns (loss, step length, slot of the gradient,
    its largest |gradient|, evaluations) at the step it accepts. Slot ``INITIAL`` is the
    gradient at the iterate; a trial's gradient goes to a slot that no kept point uses.
    """

    def free(*used):
        return next(s for s in (0, 1, 2) if s not in used)

    start = (0.0, f, INITIAL, gtd, g_max)  # (t, loss, slot, slope, largest |gradient|)
    new = _point(t, (yield t, free()))
    evals, ls_iter = 1, 0
    prev = start
    bracket: list = []
    done = False
    while ls_iter < max_ls:
        t_new, f_new, _, gtd_new, _ = new
        if f_new > f + C1 * t_new * gtd or (ls_iter > 1 and f_new >= prev[1]):
            bracket = [prev, new]
            break
        if abs(gtd_new) <= -C2 * gtd:
            bracket, done = [new], True
            break
        if gtd_new >= 0:
            bracket = [prev, new]
            break
        low, high = t_new + 0.01 * (t_new - prev[0]), t_new * 10
        t_next = _cubic(prev[0], prev[1], prev[3], t_new, f_new, gtd_new, (low, high))
        prev = new
        new = _point(t_next, (yield t_next, free(prev[2])))
        evals += 1
        ls_iter += 1
    if ls_iter == max_ls:
        bracket = [start, new]
    insufficient = False
    lo, hi = (0, 1) if bracket[0][1] <= bracket[-1][1] else (1, 0)
    while not done and ls_iter < max_ls:
        (t0, f0, _, g0, _), (t1, f1, _, g1, _) = bracket
        if abs(t1 - t0) * d_norm < LS_TOLERANCE:
            break
        t_next = _cubic(t0, f0, g0, t1, f1, g1)
        top, bottom = max(t0, t1), min(t0, t1)
        eps = 0.1 * (top - bottom)
        if min(top - t_next, t_next - bottom) < eps:
            if insufficient or t_next >= top or t_next <= bottom:
                t_next = top - eps if abs(t_next - top) < abs(t_next - bottom) else bottom + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        new = _point(t_next, (yield t_next, free(bracket[0][2], bracket[1][2])))
        evals += 1
        ls_iter += 1
        if new[1] > f + C1 * t_next * gtd or new[1] >= bracket[lo][1]:
            bracket[hi] = new
            lo, hi = (0, 1) if bracket[0][1] <= bracket[1][1] else (1, 0)
        else:
            if abs(new[3]) <= -C2 * gtd:
                done = True
            elif new[3] * (bracket[hi][0] - bracket[lo][0]) >= 0:
                bracket[hi] = bracket[lo]
            bracket[lo] = new
    t_end, f_end, slot, _, gmax = bracket[lo]
    return f_end, t_end, slot, gmax, evals


def _point(t: float, reply: tuple) -> tuple:
    """A trial as the line search keeps it, (t, loss, slot, slope, largest |gradient|), from
    its step length and what the evaluation sent back (loss, slope, slot, largest |gradient|)."""
    f, gtd, slot, g_max = reply
    return t, f, slot, gtd, g_max


def _cubic(x1, f1, g1, x2, f2, g2, bounds=None) -> float:
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, clipped
    to ``bounds`` (default: between x1 and x2); their middle where the cubic has none."""
    low, high = bounds if bounds is not None else (min(x1, x2), max(x1, x2))
    with np.errstate(all="ignore"):
        x1, f1, g1, x2, f2, g2 = map(np.float64, (x1, f1, g1, x2, f2, g2))
        d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
        square = d1 * d1 - g1 * g2
        if square >= 0:
            d2 = np.sqrt(square)
            if x1 <= x2:
                at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
            else:
                at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
            return float(min(max(at, low), high))
        return float((low + high) / 2.0)
