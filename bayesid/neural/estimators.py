"""Amortized estimators: point regression (MSE), neural posterior estimation (zuko flow), ensembles."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .networks import MLP, LinearAdjustment, build_summary, choose_summary, cycle_options, input_moments
from .simulation import TrainingSet, seed_int, seed_sequence, simulate_training_set, stack_data

__all__ = ["NeuralEstimator", "PointEstimator", "NPE", "Ensemble", "load", "training_fingerprint",
           "check_trained_on"]


_seed_int = seed_int


class NeuralEstimator:
    """Common machinery of the amortized estimators (training loop, standardisation, save/load).

    Parameters
    ----------
    summary : {"auto", "mlp", "conv1d", "cycles", "iid"}
        Summary network. ``"auto"`` picks an MLP for up to 512 input numbers; for longer time series,
        :class:`~bayesid.neural.networks.CycleSummary` (fixed features read in the cycles' own time, then
        an MLP) when the training records are periodic (:func:`~bayesid.neural.networks.cycle_options`),
        else a 1-D CNN; ``"iid"`` is a permutation-invariant network for exchangeable observations.
    width, depth : int
        Hidden units and hidden layers of the networks.
    summary_dim : int, optional
        Size of the learnt summary (default ``max(8, 4 d)`` for ``d`` parameters).
    lr : float
        Adam learning rate (cosine-annealed to zero over ``epochs``).
    epochs : int
        Passes over the training set at most.
    patience : int, optional
        Early stopping: training ends when the validation loss has not improved for ``patience`` epochs
        (the epoch with the best validation loss is kept in any case); None trains all ``epochs``.
    batch_size : int
    val_fraction : float
        Fraction of simulations held out to monitor the validation loss.
    weight_decay : float
    linear_adjust : bool
        Fit a least-squares regression of the parameters on the summary network's fixed features
        before training (:class:`~bayesid.neural.networks.LinearAdjustment`) and let the networks learn
        the residual. Without it, a network must place a posterior much narrower than the prior to a
        small fraction of the prior's range, which it does not learn to that precision.
    max_adjust_rows : int
        Training rows used for that regression (a seeded subset when there are more).
    random_seed : int, optional
        Seeds the initialisation, the train/validation split and the batch order.
    progressbar : bool
        Show a rich progress bar during training.
    """

    kind = "base"

    def __init__(self, summary="auto", width=64, depth=2, summary_dim=None, lr=1e-3, epochs=30,
                 batch_size=256, val_fraction=0.1, weight_decay=0.0, linear_adjust=True, max_adjust_rows=20000,
                 patience=5, random_seed=None, progressbar=False):
        if epochs < 1 or batch_size < 1 or width < 1 or depth < 1:
            raise ValueError("epochs, batch_size, width and depth must be positive")
        if patience is not None and patience < 1:
            raise ValueError("patience must be a positive number of epochs or None")
        if not 0 <= val_fraction < 1:
            raise ValueError("val_fraction must lie in [0, 1)")
        self.config = dict(summary=summary, width=int(width), depth=int(depth), summary_dim=summary_dim,
                           lr=float(lr), epochs=int(epochs), batch_size=int(batch_size),
                           val_fraction=float(val_fraction), weight_decay=float(weight_decay),
                           linear_adjust=bool(linear_adjust), max_adjust_rows=int(max_adjust_rows),
                           patience=None if patience is None else int(patience), random_seed=random_seed)
        self.progressbar = progressbar
        self.net = None
        self.history = None
        self.meta = None

    # ------------------------------------------------------------------ building
    def _build(self, layout, d, x_mean, x_sd):
        raise NotImplementedError

    def _loss(self, x, y, features=False, reduce=True):
        """Training loss of rows ``x`` (data, or fixed features where ``features``) with targets ``y``: the
        mean, or per row when not ``reduce``."""
        raise NotImplementedError

    @property
    def fitted(self) -> bool:
        return self.net is not None

    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError(f"This {type(self).__name__} is not trained yet: call .fit(...) first.")

    @property
    def transform(self):
        """The :class:`ParameterTransform` of the parameters this estimator was trained on."""
        self._check_fitted()
        return self.meta["transform"]

    @property
    def unconstrained_names(self) -> list[str]:
        return list(self.transform.unconstrained_names)

    @property
    def names(self) -> list[str]:
        return list(self.transform.names)

    # ------------------------------------------------------------------ training
    def fit(self, training_set, n_simulations=None, design=None, priors=None, simulation_seed=None):
        """Train on simulations.

        Parameters
        ----------
        training_set : TrainingSet or ModelSpec or str
            Simulations from :func:`simulate_training_set`, or a model (then ``n_simulations`` are
            drawn under ``design``/``priors`` with ``simulation_seed``).
        n_simulations : int, optional
            Needed when ``training_set`` is a model.
        design, priors, simulation_seed
            Passed to :func:`simulate_training_set` when simulating here.

        Returns
        -------
        self
        """
        if not isinstance(training_set, TrainingSet):
            if n_simulations is None:
                raise ValueError("Give n_simulations when fitting directly on a model.")
            if simulation_seed is None:
                simulation_seed = seed_sequence(self.config["random_seed"]).spawn(2)[1]
            training_set = simulate_training_set(training_set, n_simulations, design=design, priors=priors,
                                                 random_seed=simulation_seed, progressbar=self.progressbar)
        cfg = self.config
        seed = _seed_int(cfg["random_seed"])
        gen = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)  # parameter initialisation and flow internals
        x_all = training_set.x
        y_all = training_set.theta_unc.astype(np.float32)
        n, d = y_all.shape
        layout = training_set.layout
        kind = choose_summary(layout, cfg["summary"])
        options = None
        if kind == "cycles" or (kind == "conv1d" and cfg["summary"] == "auto"):
            options = cycle_options(x_all)  # periodic records: timing-invariant fixed features
            if options is not None:
                kind = "cycles"
            elif kind == "cycles":
                from bayesid.errors import BadInputError

                raise BadInputError("summary='cycles' needs periodic records (at least 4 regular cycles in 99 % of "
                                    "the simulations, see bayesid.neural.networks.cycle_options); use "
                                    "summary='conv1d' or 'auto' for these data")
        x_mean, x_sd = input_moments(x_all, kind)
        y_mean = y_all.mean(0)
        y_sd = y_all.std(0)
        y_sd = np.where(y_sd > 1e-8, y_sd, 1.0).astype(np.float32)
        self.meta = dict(layout=layout, summary_kind=kind, summary_options=options, transform=training_set.transform,
                         model=training_set.model, design=training_set.design,
                         y_mean=y_mean.astype(np.float32), y_sd=y_sd, n_train=int(n),
                         prior_cov_unc=np.cov(y_all, rowvar=False).reshape(d, d), seed_used=seed)
        self.meta["fingerprint"] = training_fingerprint(training_set)  # checked by bayesid.compare
        self.net = self._build(layout, d, x_mean, x_sd)
        xs = torch.as_tensor(x_all)
        ys = torch.as_tensor((y_all - y_mean) / y_sd)
        perm = torch.randperm(n, generator=gen)
        n_val = int(round(cfg["val_fraction"] * n))
        if n - n_val < 1:
            raise ValueError(f"{n} simulations leave nothing to train on with val_fraction={cfg['val_fraction']}")
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        rows = tr_idx[torch.randperm(len(tr_idx), generator=gen)[:cfg["max_adjust_rows"]]]
        # a summary whose learnt part reads only its fixed features: compute them once, train on them
        cached = bool(getattr(self.net.summary, "features_cacheable", False))
        if cached:
            with torch.no_grad():
                inputs = torch.cat([self.net.summary.linear_features(xs[i:i + 4096]) for i in range(0, n, 4096)])
            self.net.summary.fit_features(features=inputs[tr_idx])
        else:
            inputs = xs
            if hasattr(self.net.summary, "fit_features"):  # data-dependent fixed features, training rows only
                self.net.summary.fit_features(xs[rows])
        if cfg["linear_adjust"]:  # regression on training rows only (the validation rows stay unseen)
            with torch.no_grad():
                feats = inputs[rows].numpy() if cached else torch.cat(
                    [self.net.summary.linear_features(xs[rows[i:i + 4096]]) for i in range(0, len(rows), 4096)]).numpy()
            self.net.adjust.fit(feats, ys[rows].numpy(), n_scale_features=self.net.summary.n_scale_features)
            self.meta["scale_model"] = list(self.net.adjust.scale_model)
        opt = torch.optim.AdamW(self.net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        steps_per_epoch = int(np.ceil(len(tr_idx) / cfg["batch_size"]))
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=cfg["epochs"] * steps_per_epoch,
                                                    pct_start=0.1)
        hist = {"epoch": [], "train_loss": [], "val_loss": [], "val_loss_se": [], "seconds": [], "stopped_early": False}
        bar = None
        if self.progressbar:
            from rich.progress import Progress

            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task(f"training {type(self).__name__}", total=cfg["epochs"])
        t0 = time.perf_counter()
        best, best_state, best_epoch = np.inf, None, 0
        patience = cfg.get("patience")
        for epoch in range(cfg["epochs"]):
            self.net.train()
            order = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
            tot, cnt = 0.0, 0
            for i in range(0, len(order), cfg["batch_size"]):
                b = order[i:i + cfg["batch_size"]]
                loss = self._loss(inputs[b], ys[b], features=cached)
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.net.parameters(), 5.0)
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(b)
                cnt += len(b)
            val, val_se = self._evaluate(inputs[val_idx], ys[val_idx], features=cached) if n_val else (np.nan, np.nan)
            hist["epoch"].append(epoch + 1)
            hist["train_loss"].append(tot / cnt)
            hist["val_loss"].append(val)
            hist["val_loss_se"].append(val_se)
            hist["seconds"].append(time.perf_counter() - t0)
            if n_val and val < best:
                best, best_state, best_epoch = val, copy.deepcopy(self.net.state_dict()), epoch + 1
            if bar:
                bar.update(task, advance=1, description=f"training {type(self).__name__} loss {tot / cnt:.3g}")
            if n_val and patience is not None and epoch + 1 - best_epoch >= patience:
                hist["stopped_early"] = True
                break
        if bar:
            bar.stop()
        if best_state is not None:  # keep the epoch with the best validation loss
            self.net.load_state_dict(best_state)
        self.net.eval()
        self.history = hist
        self.meta["train_seconds"] = time.perf_counter() - t0
        return self

    @torch.no_grad()
    def _evaluate(self, x, y, batch=4096, features=False):
        """Mean loss over rows ``x`` and its standard error (sd of the per-row losses / √n)."""
        self.net.eval()
        rows = torch.cat([self._loss(x[i:i + batch], y[i:i + batch], features=features, reduce=False)
                          for i in range(0, len(x), batch)]).double()
        if len(rows) == 0:
            return np.nan, np.nan
        se = float(rows.std() / np.sqrt(len(rows))) if len(rows) > 1 else np.nan
        return float(rows.mean()), se

    def converged(self, window=5, rtol=0.01) -> bool:
        """Whether training reached its best validation loss: early stopping ended it (no improvement for
        ``patience`` epochs), or the validation loss changed by less than ``rtol`` (relative to its range
        over training) between the mean of the last ``window`` epochs and the ``window`` before them.

        Not used: "the change is below the standard error of the validation loss" (``history
        ["val_loss_se"]``): per-row losses are heavy-tailed (a few records the network gets badly wrong),
        so that SE is large and the rule called a gait network converged after 10 of 40 epochs (L0 error
        ratio 0.155 against 0.131 at 40 and 0.129 at 80 epochs)."""
        self._check_fitted()
        if self.history.get("stopped_early"):
            return True
        v = np.asarray(self.history["val_loss"] if np.isfinite(self.history["val_loss"]).all()
                       else self.history["train_loss"])
        if len(v) < 2 * window:
            return False
        change = abs(v[-window:].mean() - v[-2 * window:-window].mean())
        span = max(np.ptp(v), 1e-12)
        return bool(change / span < rtol)

    # ------------------------------------------------------------------ inputs / outputs
    def _x(self, data) -> torch.Tensor:
        self._check_fitted()
        from bayesid.errors import BadInputError

        if isinstance(data, TrainingSet):
            data = data.data
        lay = self.meta["layout"]
        if isinstance(data, (torch.Tensor, np.ndarray)):
            x = torch.as_tensor(np.asarray(data) if isinstance(data, np.ndarray) else data).float()
            want = (lay["channels"], lay["length"]) if lay["sequence"] else (lay["n_features"],)
            if tuple(x.shape[1:]) != want:
                raise BadInputError(
                    "a raw array must be the stacked network input of expected shape "
                    f"(n, {', '.join(map(str, want))}); "
                    f"got {tuple(x.shape)}. Pass the data as a dict {{{', '.join(repr(k) for k in lay['keys'])}: "
                    f"array (n, *shape)}} with shapes {lay['shapes']} instead.")
        else:
            if hasattr(data, "data_vars"):
                data = {k: data[k].values for k in data.data_vars}
            if not hasattr(data, "keys"):
                raise BadInputError(f"data must be a dict of arrays with keys {lay['keys']}, got {type(data).__name__}")
            try:
                x = torch.as_tensor(stack_data(data, lay))
            except (KeyError, ValueError) as err:
                raise BadInputError(str(err.args[0] if err.args else err)) from err
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            raise BadInputError(
                f"the data contain {int(bad.sum())} NaN/inf value(s) in {int(bad.reshape(len(x), -1).any(1).sum())} of "
                f"{len(x)} dataset(s); refused: the network would return NaN (or silently wrong) estimates. "
                "Remove or impute them first.")
        return x

    def _destd(self, z):
        return z * torch.as_tensor(self.meta["y_sd"]) + torch.as_tensor(self.meta["y_mean"])

    def mean_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable estimate (posterior mean for NPE) in unconstrained coordinates."""
        raise NotImplementedError

    def predict_unconstrained(self, data, batch=4096) -> np.ndarray:
        """Estimates in unconstrained coordinates, ``(n, d)``; the posterior mean for NPE."""
        x = self._x(data)
        with torch.no_grad():
            return np.concatenate([self.mean_tensor(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])

    def predict(self, data) -> dict[str, np.ndarray]:
        """Estimates in the model's own coordinates, as ``{parameter: (n, *shape)}``."""
        u = self.predict_unconstrained(data)
        return self.transform.to_dict(self.transform.inverse(u))

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save configuration, weights, standardisation and training history to ``path`` (torch file)."""
        self._check_fitted()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _write_file({"class": type(self).__name__, "config": self.config, "meta": self.meta,
                     "history": self.history, "state_dict": self.net.state_dict(),
                     "bayesid_neural_format": 1}, path)
        return path

    @classmethod
    def load(cls, path):
        """Load an estimator of this class written by :meth:`save` (see :func:`load`)."""
        return _load_as(cls, path)

    @classmethod
    def _from_state(cls, state):
        est = cls(**state["config"])
        meta = state["meta"]
        lay = meta["layout"]
        d = len(meta["y_mean"])
        # dummy standardisation: the real buffers come with the state dict
        est.meta = meta
        est.net = est._build(lay, d, None, None)
        est.net.load_state_dict(state["state_dict"])
        est.net.eval()
        est.history = state["history"]
        return est

    def __repr__(self):
        if not self.fitted:
            return f"<{type(self).__name__} (untrained) {self.config}>"
        return (f"<{type(self).__name__} for {self.meta['model']} / {self.meta['design']}: "
                f"{self.meta['summary_kind']} summary, {self.meta['n_train']} simulations, "
                f"{len(self.history['epoch'])} epochs, final val loss {self.history['val_loss'][-1]:.4g}>")


class PointEstimator(NeuralEstimator):
    """Regress the (standardised, unconstrained) parameters on the data with a squared-error loss.

    With enough capacity and data the minimiser is the posterior mean ``E[θ | x]``; along a direction
    the data do not inform, that is the prior mean, whatever the true value: the estimator "converges"
    yet regresses to the prior. See :class:`NeuralEstimator` for the parameters.
    """

    kind = "point"

    def _build(self, layout, d, x_mean, x_sd):
        c = self.config
        sdim = c["summary_dim"] or max(8, 4 * d)
        summ = build_summary(self.meta["summary_kind"], layout, sdim, c["width"], c["depth"], x_mean, x_sd,
                             options=self.meta.get("summary_options"))
        return _PointNet(summ, nn.Sequential(nn.GELU(), MLP(sdim, d, c["width"], 1)), _adjustment(summ, layout, d))

    def _loss(self, x, y, features=False, reduce=True):
        res, shift, scale = self.net(x, features=features)
        rows = ((res - (y - shift) / scale) ** 2).mean(1)
        return rows.mean() if reduce else rows

    def mean_tensor(self, x):
        res, shift, scale = self.net(x)
        return self._destd(shift + scale * res)


def _adjustment(summary, layout, d):
    shape = (1, layout["channels"], layout["length"]) if layout["sequence"] else (1, layout["n_features"])
    with torch.no_grad():
        n_feat = summary.linear_features(torch.zeros(shape)).shape[1]
    return LinearAdjustment(n_feat, d)


def _summarise(summary, x, f):
    """The learnt summary of data ``x`` whose fixed features are ``f`` (computed once where the summary
    reads only those)."""
    return summary.forward_features(f) if hasattr(summary, "forward_features") else summary(x)


class _PointNet(nn.Module):
    """Summary → head gives the standardised residual of the linear adjustment; returns it with the shift."""

    def __init__(self, summary, head, adjust):
        super().__init__()
        self.summary, self.head, self.adjust = summary, head, adjust

    def forward(self, x, features=False):
        """``x``: the data, or (``features=True``) the summary's fixed features of the data."""
        f = x if features else self.summary.linear_features(x)
        return self.head(_summarise(self.summary, x, f)), self.adjust.shift(f), self.adjust.scale(f)


class _FlowNet(nn.Module):
    """``q(θ | x)``: the flow's draws ``r`` mapped by the linear adjustment, ``θ = W f(x) + b + g(x) ⊙ r``."""

    def __init__(self, summary, flow, adjust):
        super().__init__()
        self.summary = summary
        self.flow = flow
        self.adjust = adjust

    def forward(self, x, features=False):
        from torch.distributions import AffineTransform, TransformedDistribution

        f = x if features else self.summary.linear_features(x)
        return TransformedDistribution(self.flow(_summarise(self.summary, x, f)),
                                       [AffineTransform(self.adjust.shift(f), self.adjust.scale(f), event_dim=1)])


class NPE(NeuralEstimator):
    """Neural posterior estimation: a conditional neural spline flow ``q(θ | s(x))`` (zuko) trained by
    maximum likelihood on simulations, jointly with the summary network ``s``.

    Parameters
    ----------
    flow : {"nsf", "maf"}
        zuko flow family.
    transforms : int
        Number of flow transformations.
    **kwargs
        See :class:`NeuralEstimator`.
    """

    kind = "npe"

    def __init__(self, flow="nsf", transforms=3, **kwargs):
        if flow not in ("nsf", "maf"):
            raise ValueError(f"flow must be 'nsf' or 'maf', got {flow!r}")
        super().__init__(**kwargs)
        self.config.update(flow=flow, transforms=int(transforms))

    @classmethod
    def _from_state(cls, state):
        return super()._from_state(state)

    def _build(self, layout, d, x_mean, x_sd):
        import zuko

        c = self.config
        sdim = c["summary_dim"] or max(8, 4 * d)
        summ = build_summary(self.meta["summary_kind"], layout, sdim, c["width"], c["depth"], x_mean, x_sd,
                             options=self.meta.get("summary_options"))
        Flow = zuko.flows.NSF if c["flow"] == "nsf" else zuko.flows.MAF
        flow = Flow(features=d, context=sdim, transforms=c["transforms"], hidden_features=[c["width"]] * 2)
        return _FlowNet(summ, flow, _adjustment(summ, layout, d))

    def _loss(self, x, y, features=False, reduce=True):
        rows = -self.net(x, features=features).log_prob(y)
        return rows.mean() if reduce else rows

    def sample_tensor(self, x, n_samples, generator_seed=None):
        """Differentiable posterior samples ``(n_samples, n, d)`` (unconstrained) for input tensor x."""
        if generator_seed is not None:
            torch.manual_seed(generator_seed)
        z = self.net(x).rsample((n_samples,))
        return self._destd(z)

    def mean_tensor(self, x, n_samples=100):
        return self.sample_tensor(x, n_samples).mean(0)

    def sample(self, data, n_samples=1000, random_seed=None, batch=512) -> np.ndarray:
        """Posterior draws in unconstrained coordinates, shape ``(n_datasets, n_samples, d)``."""
        x = self._x(data)
        torch.manual_seed(_seed_int(random_seed))
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                z = self.net(x[i:i + batch]).sample((n_samples,))
                out.append(self._destd(z).numpy().transpose(1, 0, 2))
        return np.concatenate(out)

    def log_prob(self, theta_unc, data) -> np.ndarray:
        """``log q(θ | x)`` of unconstrained ``theta_unc`` (n, d) under dataset ``n`` of ``data``."""
        x = self._x(data)
        y = (torch.as_tensor(np.asarray(theta_unc, np.float32)) - torch.as_tensor(self.meta["y_mean"])) \
            / torch.as_tensor(self.meta["y_sd"])
        with torch.no_grad():
            lp = self.net(x).log_prob(y)
        return lp.numpy() - float(np.log(self.meta["y_sd"]).sum())

    def predict_unconstrained(self, data, n_samples=500, random_seed=0, batch=512) -> np.ndarray:
        """Posterior means (Monte Carlo with ``n_samples`` draws), unconstrained, ``(n, d)``."""
        return self.sample(data, n_samples, random_seed, batch).mean(1)


class Ensemble:
    """The same estimator trained under ``n_members`` random seeds.

    Parameters
    ----------
    estimator : NeuralEstimator
        A template (untrained); each member is a copy with its own ``random_seed``.
    n_members : int
    random_seed : int, optional
        Seeds the members' seeds (and, when fitting on a model, the shared simulations).
    """

    def __init__(self, estimator, n_members=5, random_seed=None):
        if n_members < 1:
            raise ValueError("n_members must be at least 1")
        self.template = estimator
        self.n_members = int(n_members)
        self.random_seed = random_seed
        self.members = []

    @property
    def kind(self):
        return self.template.kind

    @property
    def fitted(self):
        return bool(self.members)

    def fit(self, training_set, n_simulations=None, design=None, priors=None, simulation_seed=None):
        """Train every member on the same simulations (members differ by seed only)."""
        if not isinstance(training_set, TrainingSet):
            if n_simulations is None:
                raise ValueError("Give n_simulations when fitting directly on a model.")
            if simulation_seed is None:
                simulation_seed = seed_sequence(self.random_seed).spawn(2)[1]
            training_set = simulate_training_set(training_set, n_simulations, design=design, priors=priors,
                                                 random_seed=simulation_seed)
        seeds = seed_sequence(self.random_seed).spawn(self.n_members + 2)[2:]  # 0, 1: simulations
        self.members = []
        for s in seeds:
            m = copy.deepcopy(self.template)
            m.config["random_seed"] = int(s.generate_state(1)[0])
            self.members.append(m.fit(training_set))
        return self

    def _check(self):
        if not self.members:
            raise RuntimeError("This Ensemble is not trained yet: call .fit(...) first.")

    @property
    def meta(self):
        self._check()
        return self.members[0].meta

    @property
    def transform(self):
        return self.members[0].transform

    @property
    def unconstrained_names(self):
        return self.members[0].unconstrained_names

    @property
    def names(self):
        return self.members[0].names

    @property
    def history(self):
        """Training histories of the members (list of dicts)."""
        return [m.history for m in self.members]

    def converged(self, **kw) -> bool:
        return all(m.converged(**kw) for m in self.members)

    def member_predictions(self, data) -> np.ndarray:
        """Each member's unconstrained estimate, ``(n_members, n, d)``."""
        self._check()
        return np.stack([m.predict_unconstrained(data) for m in self.members])

    def predict_unconstrained(self, data) -> np.ndarray:
        """Ensemble mean of the members' estimates, unconstrained, ``(n, d)``."""
        return self.member_predictions(data).mean(0)

    def predict(self, data) -> dict[str, np.ndarray]:
        u = self.predict_unconstrained(data)
        return self.transform.to_dict(self.transform.inverse(u))

    def mean_tensor(self, x):
        return torch.stack([m.mean_tensor(x) for m in self.members]).mean(0)

    def _x(self, data):
        return self.members[0]._x(data)

    def sample(self, data, n_samples=1000, random_seed=None) -> np.ndarray:
        """Draws from the equal-weight mixture of the members' posteriors (NPE members only)."""
        self._check()
        if not hasattr(self.members[0], "sample"):
            raise TypeError("Ensemble.sample needs NPE members; point estimators give no posterior.")
        k = self.n_members
        per = [n_samples // k + (1 if i < n_samples % k else 0) for i in range(k)]
        seeds = seed_sequence(random_seed).spawn(k)
        parts = [m.sample(data, p, random_seed=s) for m, p, s in zip(self.members, per, seeds) if p > 0]
        return np.concatenate(parts, axis=1)

    def save(self, path):
        """Save all members into one file."""
        self._check()
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        _write_file({"class": "Ensemble", "n_members": self.n_members, "random_seed": self.random_seed,
                     "members": [{"class": type(m).__name__, "config": m.config, "meta": m.meta,
                                  "history": m.history, "state_dict": m.net.state_dict()} for m in self.members],
                     "bayesid_neural_format": 1}, path)
        return path

    @classmethod
    def load(cls, path):
        """Load an ensemble written by :meth:`save` (see :func:`load`)."""
        return _load_as(cls, path)

    def __repr__(self):
        state = "" if self.members else " (untrained)"
        return f"<Ensemble of {self.n_members} × {type(self.template).__name__}{state}>"


_CLASSES = {"PointEstimator": PointEstimator, "NPE": NPE}


# ------------------------------------------------------------------------------------ files
_MAGIC = b"BAYESID-ESTIMATOR\n"


def _write_file(state, path):
    """``MAGIC``, a JSON header line with the payload's length and sha256, then the torch payload;
    written to a temporary file and renamed, so a failed write never leaves half a file."""
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    header = json.dumps({"format": 2, "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest(),
                         "class": state["class"]}).encode()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(_MAGIC + header + b"\n" + payload)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_file(path):
    from bayesid.errors import EstimatorFileError

    path = Path(path)

    def bad(why):
        return EstimatorFileError(f"{path}: not a bayesid estimator file / corrupt: {why}")

    if not path.is_file():
        raise bad("no such file" if not path.exists() else "it is a directory")
    raw = path.read_bytes()
    if raw.startswith(_MAGIC):
        nl = raw.find(b"\n", len(_MAGIC))
        try:
            header = json.loads(raw[len(_MAGIC):nl])
        except ValueError as err:
            raise bad(f"unreadable header ({err})") from err
        payload = raw[nl + 1:]
        if len(payload) != header["bytes"]:
            raise bad(f"truncated or padded: {len(payload)} bytes of payload, the header says {header['bytes']}")
        if hashlib.sha256(payload).hexdigest() != header["sha256"]:
            raise bad("checksum mismatch (the file changed after it was written); retrain or restore it")
        data = payload
    elif raw.startswith(b"PK"):  # files written before checksums: a plain torch zip (no integrity check)
        data = raw
    else:
        raise bad(f"it starts with {raw[:16]!r}, not a bayesid estimator header")
    try:
        state = torch.load(io.BytesIO(data), weights_only=False)
    except Exception as err:  # torch/pickle raise many types for damaged payloads
        raise bad(f"{type(err).__name__}: {err}") from err
    if not isinstance(state, dict) or "bayesid_neural_format" not in state or "class" not in state:
        raise bad("a torch file without bayesid's estimator state")
    return state


def load(path):
    """Load an estimator or ensemble written by ``.save``.

    The file carries a sha256 checksum of its content: a corrupt, truncated or foreign file raises
    :class:`~bayesid.errors.EstimatorFileError` ("not a bayesid estimator file / corrupt: ...").
    Only load files you trust (the payload is a pickle).
    """
    from bayesid.errors import EstimatorFileError

    state = _read_file(path)
    try:
        if state["class"] == "Ensemble":
            members = [_CLASSES[m["class"]]._from_state(m) for m in state["members"]]
            ens = Ensemble(copy.deepcopy(members[0]), state["n_members"], state["random_seed"])
            ens.members = members
            return ens
        return _CLASSES[state["class"]]._from_state(state)
    except (KeyError, RuntimeError, TypeError) as err:
        raise EstimatorFileError(f"{path}: not a bayesid estimator file / corrupt: the state does not rebuild "
                                 f"an estimator ({type(err).__name__}: {err})") from err


def _load_as(cls, path):
    from bayesid.errors import EstimatorFileError

    est = load(path)
    if not isinstance(est, cls):
        raise EstimatorFileError(f"{path} holds a {type(est).__name__}, not a {cls.__name__}: use "
                                 f"bayesid.neural.load(path) or {type(est).__name__}.load(path)")
    return est


# ------------------------------------------------------------------------------ fingerprints
def training_fingerprint(training_set):
    """Fingerprint of the model, priors and design ``training_set`` was simulated from: the PyMC
    program's graph before the data (:func:`bayesid.pymc_utils.model_fingerprint` with
    ``observed=False``), the same digest :func:`bayesid.fit` writes to ``tree.attrs
    ["bayesid_model_fingerprint"]``. None when the model cannot be rebuilt (the check is skipped)."""
    from bayesid import models
    from bayesid.pymc_utils import model_fingerprint

    try:
        spec = models.get(training_set.model)
        priors = getattr(training_set.transform, "priors", None)
        data = spec.simulate(design=training_set.design, random_seed=0)
        return model_fingerprint(spec.build(data, design=training_set.design, priors=priors), observed=False)
    except Exception:  # an unregistered or unbuildable model: no fingerprint, no check
        return None


def check_trained_on(estimator, diagnosis=None, tree=None) -> None:
    """Raise :class:`~bayesid.errors.ModelMismatchError` when the fit behind ``diagnosis`` (or ``tree``) is of
    another model, prior or design than ``estimator`` was trained on; silent when either fingerprint
    is unknown (hand-built trees, files from before fingerprints)."""
    from bayesid.errors import ModelMismatchError

    tree = tree if tree is not None else getattr(diagnosis, "tree", None)
    theirs = getattr(tree, "attrs", {}).get("bayesid_model_fingerprint") if tree is not None else None
    meta = estimator.meta
    ours = meta.get("fingerprint")
    if ours and theirs and ours != theirs:
        raise ModelMismatchError(
            f"The diagnosis is of another model, prior or design than the estimator was trained on "
            f"({meta['model']} / {meta['design']}): the fingerprints of the PyMC programs differ. "
            f"Diagnose a fit of {meta['model']} / {meta['design']}, or train the estimator on the diagnosed model.")
