"""Training sets from a registered model: prior draws, batched simulation, unconstrained coordinates.

Parameters are learnt in the same unconstrained coordinates NUTS samples in (and in which the MCMC
diagnostics find their ridges): ``log`` for positive priors, ``logit`` of the rescaled value for
interval priors (PyMC's ``interval``/``logodds`` transforms), identity for real priors.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from bayesid.models.base import as_seed_sequence

__all__ = ["ParameterTransform", "TrainingSet", "simulate_training_set", "data_layout", "stack_data",
           "seed_sequence", "seed_int"]


seed_sequence = as_seed_sequence  # ``random_seed`` (None, int, ints, SeedSequence, Generator) as a SeedSequence


def seed_int(random_seed) -> int:
    """A 31-bit integer seed derived from ``random_seed`` (see :func:`seed_sequence`)."""
    return int(seed_sequence(random_seed).generate_state(1)[0] % (2**31))


def _value_suffix(prior) -> str:
    if prior.domain == "real":
        return ""
    if prior.domain == "positive":
        return "_log__"
    return "_logodds__" if prior.dist == "beta" else "_interval__"


class ParameterTransform:
    """Map flattened parameter arrays between constrained and unconstrained coordinates.

    Parameters
    ----------
    spec : ModelSpec
        The model (for parameter names and shapes).
    priors : dict of str -> Prior, optional
        Overrides of the model's default priors; the prior's ``domain`` fixes the transform.

    Attributes
    ----------
    names : list of str
        Constrained component names (``"a"``, ``"theta[2]"``), the order of ``spec.flatten_theta``.
    unconstrained_names : list of str
        PyMC value-variable names of the same components (``"a"``, ``"b_log__"``, ``"p_logodds__[1]"``).
    domains : list of str
        ``"real"``, ``"positive"`` or ``"interval"`` per component.
    """

    def __init__(self, spec, priors=None):
        pri = spec.priors(priors)
        self.priors = {p.name: pri[p.name] for p in spec.parameters}  # for the training fingerprint
        self.names, self.unconstrained_names, self.domains = [], [], []
        lo, hi = [], []
        self.parameter_names = [p.name for p in spec.parameters]
        self.shapes = {p.name: tuple(p.shape) for p in spec.parameters}
        for p in spec.parameters:
            prior = pri[p.name]
            suffix = _value_suffix(prior)
            comps = [""] if p.shape == () else [f"[{','.join(map(str, ix))}]" for ix in np.ndindex(*p.shape)]
            for c in comps:
                self.names.append(p.name + c)
                self.unconstrained_names.append(p.name + suffix + c)
                self.domains.append(prior.domain)
                b = prior.bounds
                lo.append(b[0])
                hi.append(b[1])
        self.lower = np.asarray(lo, float)
        self.upper = np.asarray(hi, float)
        self.dim = len(self.names)

    def forward(self, theta) -> np.ndarray:
        """Constrained ``(n, d)`` array → unconstrained ``(n, d)``."""
        x = np.array(theta, dtype=float, copy=True, ndmin=2)
        for j, dom in enumerate(self.domains):
            if dom == "positive":
                x[:, j] = np.log(x[:, j])
            elif dom == "interval":
                lo, hi = self.lower[j], self.upper[j]
                x[:, j] = np.log(x[:, j] - lo) - np.log(hi - x[:, j])
        return x

    def inverse(self, u) -> np.ndarray:
        """Unconstrained ``(..., d)`` array → constrained."""
        x = np.array(u, dtype=float, copy=True)
        for j, dom in enumerate(self.domains):
            if dom == "positive":
                x[..., j] = np.exp(x[..., j])
            elif dom == "interval":
                lo, hi = self.lower[j], self.upper[j]
                x[..., j] = lo + (hi - lo) / (1.0 + np.exp(-x[..., j]))
        return x

    def to_dict(self, theta) -> dict[str, np.ndarray]:
        """Flat constrained ``(n, d)`` array → ``{name: (n, *shape)}`` as ``spec.simulate`` takes."""
        theta = np.asarray(theta, float)
        out, j = {}, 0
        for name in self.parameter_names:
            shape = self.shapes[name]
            k = int(np.prod(shape)) if shape else 1
            out[name] = theta[:, j:j + k].reshape(theta.shape[0], *shape)
            j += k
        return out

    def reorder_from(self, names) -> np.ndarray:
        """Indices ``ix`` such that ``self.unconstrained_names[ix[i]] == names[i]``.

        Raises
        ------
        KeyError
            If ``names`` (e.g. a diagnosis' ``unconstrained_names``) do not match this model's.
        """
        pos = {n: i for i, n in enumerate(self.unconstrained_names)}
        missing = [n for n in names if n not in pos]
        if missing or len(names) != len(pos):
            raise KeyError(
                f"Parameter names {list(names)} do not match the estimator's unconstrained parameters "
                f"{self.unconstrained_names}; was the diagnosis made with the same model and priors?"
            )
        return np.asarray([pos[n] for n in names])


def data_layout(sample: dict) -> dict:
    """Describe one batch of simulated data: keys, per-dataset shapes and whether it is a sequence.

    A design whose arrays all share their first per-dataset axis of length ``T`` (``(n, T)`` or
    ``(n, T, C)``) is a *sequence* with ``C_total`` channels; otherwise the arrays are flattened.
    """
    keys = sorted(sample)
    shapes = {k: tuple(np.shape(sample[k])[1:]) for k in keys}
    lengths = {s[0] for s in shapes.values() if len(s) >= 1}
    seq = all(1 <= len(s) <= 2 for s in shapes.values()) and len(lengths) == 1
    channels = sum(1 if len(s) == 1 else s[1] for s in shapes.values()) if seq else 0
    n_features = int(sum(int(np.prod(s)) for s in shapes.values()))
    return {"keys": keys, "shapes": shapes, "sequence": bool(seq),
            "length": int(next(iter(lengths))) if seq else 0, "channels": int(channels),
            "n_features": n_features}


def stack_data(data: dict, layout: dict) -> np.ndarray:
    """Stack a batch of data (dict of ``(n, ...)`` arrays) into ``(n, C, T)`` (sequences) or ``(n, F)``."""
    arrs = []
    for k in layout["keys"]:
        if k not in data:
            raise KeyError(f"data lack {k!r}; the estimator was trained on keys {layout['keys']}")
        v = np.asarray(data[k], dtype=np.float32)
        want = layout["shapes"][k]
        if v.shape[1:] != want:
            if v.shape == want:  # a single dataset
                v = v[None]
            else:
                raise ValueError(f"data[{k!r}] has shape {v.shape}; the estimator expects (n, *{want})")
        arrs.append(v)
    if layout["sequence"]:
        parts = [a[:, None, :] if a.ndim == 2 else np.moveaxis(a, 2, 1) for a in arrs]
        return np.concatenate(parts, axis=1)
    return np.concatenate([a.reshape(a.shape[0], -1) for a in arrs], axis=1)


@dataclass
class TrainingSet:
    """Simulated pairs ``(theta, data)`` from the prior predictive.

    Attributes
    ----------
    theta : ndarray, shape (n, d)
        Constrained parameter values.
    theta_unc : ndarray, shape (n, d)
        The same in unconstrained coordinates.
    data : dict of str -> ndarray
        Simulated observations, leading dimension ``n``.
    transform : ParameterTransform
    model : str
    design : str
    random_seed : object
    n_dropped : int
        Simulations dropped because they returned non-finite values.
    """

    theta: np.ndarray
    theta_unc: np.ndarray
    data: dict
    transform: ParameterTransform
    model: str
    design: str
    random_seed: object = None
    n_dropped: int = 0
    layout: dict = field(default_factory=dict)

    def __len__(self):
        return self.theta.shape[0]

    @property
    def x(self) -> np.ndarray:
        """Network input: ``(n, C, T)`` for sequences, ``(n, F)`` otherwise (float32)."""
        return stack_data(self.data, self.layout)

    def subset(self, idx) -> TrainingSet:
        """A new TrainingSet with rows ``idx``."""
        return TrainingSet(self.theta[idx], self.theta_unc[idx], {k: v[idx] for k, v in self.data.items()},
                           self.transform, self.model, self.design, self.random_seed, 0, self.layout)


def _progress(total, description, enabled):
    if not enabled:
        return None
    from rich.progress import Progress

    prog = Progress(transient=True)
    prog.start()
    task = prog.add_task(description, total=total)
    return prog, task


def simulate_training_set(spec, n, design=None, priors=None, random_seed=None, batch_size=20_000,
                          progressbar=False) -> TrainingSet:
    """Draw ``n`` parameter sets from the prior and simulate one dataset for each.

    Parameters
    ----------
    spec : ModelSpec or str
        A registered model or its name (``bayesid.models.get``).
    n : int
        Number of simulations.
    design : str or Design, optional
        The model's design (default design if None).
    priors : dict of str -> Prior, optional
        Prior overrides.
    random_seed : int, optional
        Seeds prior draws and simulator noise.
    batch_size : int
        Simulations per call of ``spec.simulate`` (vectorised).
    progressbar : bool
        Show a rich progress bar.

    Returns
    -------
    TrainingSet
        Simulations with non-finite output are dropped (their count is in ``n_dropped``; a warning is
        issued when more than 1 % are dropped).
    """
    from bayesid import models

    if type(spec).__name__ == "Model" and hasattr(spec, "free_RVs"):  # a plain pm.Model (issue 13)
        if priors:
            raise ValueError("priors cannot be overridden on a pm.Model; build the model with the priors you want")
        return simulate_model_training_set(spec, n, design=design, random_seed=random_seed)
    spec = models.get(spec)
    d = spec.design(design)
    if int(n) < 1:
        raise ValueError(f"n must be a positive number of simulations, got {n}")
    tr = ParameterTransform(spec, priors)
    import inspect

    # simulators that can fail for some parameters (a gait that falls) return NaN instead of raising
    sim_kw = {"on_fail": "nan"} if "on_fail" in inspect.signature(spec.simulate).parameters else {}
    ss = seed_sequence(random_seed)
    n_batches = int(np.ceil(n / batch_size))
    seeds = [seed_int(s) for s in ss.spawn(2 * n_batches)]
    thetas, datas = [], []
    bar = _progress(n, f"simulating {spec.name}", progressbar)
    done = 0
    for b in range(n_batches):
        m = min(batch_size, n - done)
        th = spec.sample_prior(m, priors=priors, random_seed=seeds[2 * b])
        flat, _ = spec.flatten_theta(th)
        out = spec.simulate(th, design=d, random_seed=seeds[2 * b + 1], **sim_kw)
        thetas.append(flat)
        datas.append({k: np.asarray(v, dtype=np.float32) for k, v in out.items()})
        done += m
        if bar:
            bar[0].update(bar[1], advance=m)
    if bar:
        bar[0].stop()
    theta = np.concatenate(thetas)
    data = {k: np.concatenate([dd[k] for dd in datas]) for k in datas[0]}
    ok = np.all(np.isfinite(theta), axis=1)
    for v in data.values():
        ok &= np.all(np.isfinite(v.reshape(v.shape[0], -1)), axis=1)
    theta_unc = tr.forward(theta)
    ok &= np.all(np.isfinite(theta_unc), axis=1)
    n_drop = int((~ok).sum())
    if n_drop > 0.01 * len(ok):
        warnings.warn(f"{n_drop} of {len(ok)} simulations of {spec.name} gave non-finite values and were "
                      "dropped; the estimator learns the prior restricted to the rest.", stacklevel=2)
    if n_drop:
        theta, theta_unc = theta[ok], theta_unc[ok]
        data = {k: v[ok] for k, v in data.items()}
    if len(theta) == 0:
        raise RuntimeError(f"Every simulation of {spec.name} failed; check the priors and the simulator.")
    layout = data_layout(data)
    return TrainingSet(theta, theta_unc, data, tr, spec.name, d.name, random_seed, n_drop, layout)


# ---------------------------------------------------------------- any pm.Model (bayesid.simulate)
class ModelTransform:
    """:class:`ParameterTransform`'s interface for a plain ``pymc.Model``: the model's own transforms
    (compiled by :class:`bayesid.simulate.ModelSimulator`), component names as in the diagnosis
    (``"b_log__"``, ``"z_zerosum__[1]"``). Not picklable with its model: after ``load`` only
    predictions in unconstrained coordinates work without re-attaching a model."""

    def __init__(self, simulator, theta: dict, theta_unc: dict):
        from bayesid.simulate import component_names

        self._sim = simulator
        self.parameter_names = list(simulator.parameter_names)
        self.value_names = list(simulator.value_names)
        self.shapes = {k: tuple(np.shape(theta[k])[1:]) for k in self.parameter_names}
        self.unc_shapes = {k: tuple(np.shape(theta_unc[k])[1:]) for k in self.value_names}
        self.names = component_names(theta, self.parameter_names)
        self.unconstrained_names = component_names(theta_unc, self.value_names)
        self.domains = ["model"] * len(self.names)
        self.dim = len(self.unconstrained_names)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_sim"] = None
        return state

    def _need_sim(self):
        if self._sim is None:
            raise RuntimeError("this estimator was loaded without its PyMC model; set "
                               "estimator.transform._sim = bayesid.simulate.ModelSimulator(model)")
        return self._sim

    @staticmethod
    def _split(flat, order, shapes):
        flat = np.asarray(flat, float)
        out, j = {}, 0
        for k in order:
            size = int(np.prod(shapes[k])) if shapes[k] else 1
            out[k] = flat[:, j:j + size].reshape(flat.shape[0], *shapes[k])
            j += size
        return out

    def to_dict(self, theta) -> dict:
        return self._split(np.atleast_2d(theta), self.parameter_names, self.shapes)

    def forward(self, theta) -> np.ndarray:
        u = self._need_sim().to_unconstrained(self.to_dict(theta))
        return np.concatenate([np.asarray(u[k], float).reshape(len(u[k]), -1) for k in self.value_names], axis=1)

    def inverse(self, u) -> np.ndarray:
        u = np.asarray(u, float)
        lead = u.shape[:-1]
        flat = u.reshape(-1, u.shape[-1])
        c = self._need_sim().to_constrained(self._split(flat, self.value_names, self.unc_shapes))
        out = np.concatenate([np.asarray(c[k], float).reshape(len(flat), -1) for k in self.parameter_names], axis=1)
        return out.reshape(*lead, out.shape[-1])

    reorder_from = ParameterTransform.reorder_from


def simulate_model_training_set(model, n, design=None, random_seed=None) -> TrainingSet:
    """``n`` prior-predictive simulations of a plain ``pymc.Model`` (:class:`bayesid.simulate.ModelSimulator`)
    for the neural estimators; ``design`` is a dict of ``pm.Data`` values. Non-finite simulations are
    dropped and counted. The constrained ``theta`` holds the free RVs flattened in model order."""
    from bayesid.simulate import simulator_for

    if int(n) < 1:
        raise ValueError(f"n must be a positive number of simulations, got {n}")
    sim = simulator_for(model)
    with sim.design(design or {}):
        s = sim.prior_predictive(int(n), random_seed=seed_sequence(random_seed))
    theta, theta_unc = s.flat(), s.flat_unconstrained()
    data = {k: np.asarray(v, dtype=np.float32) for k, v in s.data.items()}
    ok = np.all(np.isfinite(theta), axis=1) & np.all(np.isfinite(theta_unc), axis=1)
    for v in data.values():
        ok &= np.all(np.isfinite(v.reshape(v.shape[0], -1)), axis=1)
    n_drop = int((~ok).sum())
    if n_drop:
        theta, theta_unc = theta[ok], theta_unc[ok]
        data = {k: v[ok] for k, v in data.items()}
    tr = ModelTransform(sim, s.theta, s.theta_unc)
    name = model.name or "pm.Model"
    dname = "custom" if design else "default"
    return TrainingSet(theta, theta_unc, data, tr, name, dname, random_seed, n_drop, data_layout(data))
