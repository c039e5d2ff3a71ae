"""A simulator for any ``pymc.Model``: PyMC's own forward sampling, compiled once, vectorised over
parameter draws.

:class:`ModelSimulator` takes the model's free random variables as batched inputs and returns draws of
its observed random variables, using the model's own graph (``pytensor.graph.vectorize_graph`` adds the
leading batch dimension; where a graph cannot be vectorised, a compiled per-draw loop is used instead
and the result is the same process). Prior draws come back in the model's own coordinates and in the
unconstrained coordinates NUTS samples in (the value variables, ``b_log__``), with the forward and
inverse transforms compiled the same way.

A *design* is a set of ``pm.Data`` values (``{"x": [...]}``): the compiled functions read the data
containers when called, so one compilation serves every design of the same model. ``ModelSpec.simulate``
(a model family's numpy/numba simulator) stays the fast path for registered models; the tests check the
two agree in distribution.

Examples
--------
>>> sim = ModelSimulator(model)                                     # doctest: +SKIP
>>> s = sim.prior_predictive(1000, random_seed=0)                   # theta, theta_unc, data
>>> with sim.design({"x": np.linspace(0, 1, 5)}):
...     y = sim.simulate(s.theta, random_seed=1)["y"]               # (1000, 5)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from bayesid.errors import BadInputError

__all__ = ["ModelSimulator", "Simulations", "DesignValueError", "component_names", "simulator_for"]


class DesignValueError(BadInputError):
    """A design asks for data-container values the model cannot take (unknown name, wrong shape)."""


def _seed_sequence(random_seed) -> np.random.SeedSequence:
    from bayesid.models.base import as_seed_sequence

    return as_seed_sequence(random_seed)


def _entropy(random_seed) -> list[int]:
    """Integer entropy for PyMC's seeding from an int, None, SeedSequence or Generator."""
    return [int(v) for v in _seed_sequence(random_seed).generate_state(4)]


def _component_labels(name, shape) -> list[str]:
    shape = tuple(int(s) for s in shape)
    if shape == ():
        return [name]
    return [f"{name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*shape)]


def component_names(arrays: dict, order) -> list[str]:
    """Flat component names (``"b[1]"``) of batched arrays ``{name: (n, *shape)}`` in ``order``."""
    out = []
    for k in order:
        out += _component_labels(k, np.shape(arrays[k])[1:])
    return out


@dataclass
class Simulations:
    """Prior-predictive simulations of a PyMC model.

    Attributes
    ----------
    theta : dict of str -> ndarray
        Free random variables, constrained, ``(n, *shape)``, keyed by RV name.
    theta_unc : dict of str -> ndarray
        The same in unconstrained coordinates, keyed by value-variable name (``"b_log__"``).
    data : dict of str -> ndarray
        Observed random variables, ``(n, *shape)``.
    names, unconstrained_names : list of str
        Flat component names, in the order of :meth:`flat` / :meth:`flat_unconstrained`.
    """

    theta: dict
    theta_unc: dict
    data: dict
    names: list
    unconstrained_names: list

    def __len__(self):
        return int(np.shape(next(iter(self.theta.values())))[0])

    def flat(self) -> np.ndarray:
        """Constrained parameters as one ``(n, d)`` array."""
        return _flat(self.theta)

    def flat_unconstrained(self) -> np.ndarray:
        """Unconstrained parameters as one ``(n, d_unc)`` array."""
        return _flat(self.theta_unc)


def _flat(arrays: dict) -> np.ndarray:
    cols = [np.asarray(v, float).reshape(np.shape(v)[0], -1) for v in arrays.values()]
    return np.concatenate(cols, axis=1)


def _keep_sizes(outputs) -> dict:
    """Map every RandomVariable's size input to itself, so that ``vectorize_graph`` recognises an
    unchanged size (``shape=x.shape``) and prepends the new batch dimension to it."""
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.op import RandomVariable

    keep = {}
    for v in ancestors(outputs):
        if v.owner is not None and isinstance(v.owner.op, RandomVariable):
            s = v.owner.op.size_param(v.owner)
            if s is not None and getattr(s, "owner", None) is not None:
                keep[s] = s
    return keep


def _batched_input(var, name):
    import pytensor.tensor as pt

    return pt.tensor(name=name, shape=(None,) + (None,) * var.type.ndim, dtype=var.dtype)


class ModelSimulator:
    """Forward simulator of a ``pymc.Model``, compiled once.

    Parameters
    ----------
    model : pymc.Model
        Any model with continuous free parameters and at least one observed variable. Observed values
        only fix the layout; they are never read.
    vectorize : bool
        Try ``vectorize_graph`` (one call per batch). With False, or where the graph cannot be
        vectorised, a compiled per-draw loop is used.

    Attributes
    ----------
    parameter_names : list of str
        Free RV names, in the model's order.
    value_names : list of str
        Their value-variable (unconstrained) names.
    observed_names : list of str
    data_names : list of str
        ``pm.Data`` containers a design may set.
    """

    def __init__(self, model, vectorize: bool = True):
        import pymc as pm

        from bayesid.pymc_utils import check_continuous, free_parameters

        if not isinstance(model, pm.Model):
            raise TypeError(f"ModelSimulator takes a pymc.Model, got {type(model).__name__}")
        check_continuous(model)
        if not model.observed_RVs:
            raise ValueError("The model has no observed variables: there is nothing to simulate.")
        if not model.free_RVs:
            raise ValueError("The model has no free parameters.")
        self.model = model
        self.params = free_parameters(model)
        self.parameter_names = [p.name for p in self.params]
        self.value_names = [p.value_name for p in self.params]
        self.observed_names = [rv.name for rv in model.observed_RVs]
        self.data_names = sorted(model.data_vars and [v.name for v in model.data_vars] or [])
        self.vectorize = vectorize
        self._fns = {}

    # ------------------------------------------------------------------ designs
    @contextlib.contextmanager
    def design(self, values: dict | None):
        """Context manager: set ``pm.Data`` containers to a design's values, restore them after.

        Parameters
        ----------
        values : dict of str -> array, or None
            ``{data name: value}``; a value may be ``(value, coords)`` to also change coordinates.

        Raises
        ------
        DesignValueError
            Unknown data name, or a value the container cannot take.
        """
        values = dict(values or {})
        unknown = [k for k in values if k not in self.data_names]
        if unknown:
            raise DesignValueError(
                f"design sets {unknown}, which are not pm.Data containers of the model; "
                f"it has {self.data_names or 'none'}. Wrap what you vary in pm.Data(name, value).")
        old = {k: self.model[k].get_value(borrow=False) for k in values}
        old_coords = {k: dict(self.model.coords) for k in values}
        try:
            for k, v in values.items():
                coords = None
                if isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], dict):
                    v, coords = v
                try:
                    self.model.set_data(k, np.asarray(v, dtype=self.model[k].dtype), coords=coords)
                except Exception as err:
                    raise DesignValueError(f"design value for {k!r} rejected by the model: {err}") from err
            yield self
        finally:
            for k, v in old.items():
                cds = {d: old_coords[k][d] for d in (self.model.named_vars_to_dims.get(k) or ())
                       if old_coords[k].get(d) is not None}
                try:
                    self.model.set_data(k, v, coords=cds or None)
                except Exception:  # pragma: no cover - restoring what was there
                    self.model[k].set_value(v)

    # ------------------------------------------------------------------ compilation
    def _fn(self, key):
        if key not in self._fns:
            self._fns[key] = getattr(self, f"_compile_{key}")()
        return self._fns[key]

    def _compile_vectorised(self, outputs, inputs_of):
        """(function, rngs, vectorised?) for ``outputs`` as functions of batched ``inputs_of`` vars."""
        import pymc as pm
        from pytensor.graph.replace import vectorize_graph

        ins = {v: _batched_input(v, f"{getattr(v, 'name', 'x')}_batch") for v in inputs_of}
        if self.vectorize:
            try:
                out = vectorize_graph(list(outputs), replace={**_keep_sizes(outputs), **ins})
                fn, upd = pm.pytensorf.compile(list(ins.values()), out, random_seed=False,
                                               return_updates=True, on_unused_input="ignore")
                return fn, list(upd), True
            except Exception:  # noqa: BLE001 - fall back to the per-draw loop below
                pass
        single = {v: v.type(name=f"{getattr(v, 'name', 'x')}_in") for v in inputs_of}
        from pytensor.graph.replace import graph_replace

        out = graph_replace(list(outputs), single, strict=False)
        fn, upd = pm.pytensorf.compile(list(single.values()), out, random_seed=False, return_updates=True,
                                       on_unused_input="ignore")
        return fn, list(upd), False

    def _compile_simulate(self):
        return self._compile_vectorised(self.model.observed_RVs, self.model.free_RVs)

    def _compile_forward(self):
        m = self.model
        outs = []
        for rv in m.free_RVs:
            tr = m.rvs_to_transforms.get(rv)
            outs.append(rv if tr is None else tr.forward(rv, *rv.owner.inputs))
        return self._compile_vectorised(outs, m.free_RVs)

    def _compile_backward(self):
        from pytensor.graph.replace import graph_replace

        m = self.model
        con = {}
        for rv in m.free_RVs:
            tr = m.rvs_to_transforms.get(rv)
            val = m.rvs_to_values[rv]
            if tr is None:
                con[rv] = val
            else:
                inputs = graph_replace(list(rv.owner.inputs), con, strict=False) if con else rv.owner.inputs
                con[rv] = tr.backward(val, *inputs)
        return self._compile_vectorised([con[rv] for rv in m.free_RVs], [m.rvs_to_values[rv] for rv in m.free_RVs])

    @staticmethod
    def _call(compiled, arrays, random_seed=None):
        import pymc as pm

        fn, rngs, vectorised = compiled
        if rngs:
            pm.pytensorf.reseed_rngs(rngs, _entropy(random_seed))
        n = int(np.shape(arrays[0])[0])
        if vectorised:
            return [np.asarray(o) for o in fn(*arrays)]
        outs = None
        for i in range(n):
            r = fn(*[a[i] for a in arrays])
            if outs is None:
                outs = [[] for _ in r]
            for j, v in enumerate(r):
                outs[j].append(np.array(v))
        return [np.stack(o) for o in outs]

    def _theta_arrays(self, theta):
        missing = [n for n in self.parameter_names if n not in theta]
        if missing:
            raise KeyError(f"theta lacks the free parameters {missing}; the model has {self.parameter_names}")
        arrs = []
        sizes = set()
        for rv in self.model.free_RVs:
            a = np.asarray(theta[rv.name], dtype=rv.dtype)
            if a.ndim != rv.type.ndim + 1:
                raise ValueError(f"theta[{rv.name!r}] has shape {a.shape}; expected a leading batch "
                                 f"dimension and {rv.type.ndim} parameter dimension(s)")
            sizes.add(a.shape[0])
            arrs.append(a)
        if len(sizes) != 1:
            raise ValueError(f"theta entries have different batch sizes {sizes}")
        return arrs

    # ------------------------------------------------------------------ public API
    def sample_prior(self, n: int, random_seed=None) -> dict[str, np.ndarray]:
        """``n`` draws of the free RVs from the prior, ``{name: (n, *shape)}`` (constrained)."""
        import pymc as pm

        if int(n) < 1:
            raise ValueError(f"n must be a positive number of draws, got {n}")
        if "prior" not in self._fns:
            fn, upd = pm.pytensorf.compile([], list(self.model.free_RVs), random_seed=False,
                                           return_updates=True)
            self._fns["prior"] = (fn, list(upd))
        fn, rngs = self._fns["prior"]
        pm.pytensorf.reseed_rngs(rngs, _entropy(random_seed))
        draws = [fn() for _ in range(int(n))]
        return {rv.name: np.stack([np.asarray(d[j]) for d in draws])
                for j, rv in enumerate(self.model.free_RVs)}

    def to_unconstrained(self, theta: dict) -> dict[str, np.ndarray]:
        """Constrained ``{name: (n, ...)}`` → unconstrained ``{value_name: (n, ...)}``."""
        out = self._call(self._fn("forward"), self._theta_arrays(theta))
        return dict(zip(self.value_names, out))

    def to_constrained(self, theta_unc: dict) -> dict[str, np.ndarray]:
        """Unconstrained ``{value_name: (n, ...)}`` → constrained ``{name: (n, ...)}``."""
        missing = [n for n in self.value_names if n not in theta_unc]
        if missing:
            raise KeyError(f"theta_unc lacks {missing}")
        arrs = [np.asarray(theta_unc[v.name], dtype=v.dtype) for v in
                (self.model.rvs_to_values[rv] for rv in self.model.free_RVs)]
        out = self._call(self._fn("backward"), arrs)
        return dict(zip(self.parameter_names, out))

    def simulate(self, theta: dict, random_seed=None) -> dict[str, np.ndarray]:
        """One dataset per parameter set: ``{observed name: (n, *shape)}``.

        Parameters
        ----------
        theta : dict of str -> array
            Constrained values of every free RV with a leading batch dimension.
        random_seed : int or SeedSequence, optional
            Seeds the observation noise (reproducible for a given seed and batch).
        """
        try:
            out = self._call(self._fn("simulate"), self._theta_arrays(theta), random_seed)
        except (ValueError, IndexError) as err:
            raise DesignValueError(
                f"simulating the model failed ({err}). If a design changed a pm.Data container, the "
                "observed variables' shapes must follow it: give them shape=x.shape (or dims whose "
                "coords the design changes) instead of a fixed observed array.") from err
        return dict(zip(self.observed_names, out))

    def prior_predictive(self, n: int, random_seed=None) -> Simulations:
        """``n`` prior draws and one simulated dataset for each (current design)."""
        s_prior, s_sim = _seed_sequence(random_seed).spawn(2)
        theta = self.sample_prior(n, s_prior)
        unc = self.to_unconstrained(theta)
        data = self.simulate(theta, s_sim)
        return Simulations(theta, unc, data, component_names(theta, self.parameter_names),
                           component_names(unc, self.value_names))


def simulator_for(model) -> ModelSimulator:
    """The (cached) :class:`ModelSimulator` of ``model``: compile once per model object."""
    sim = getattr(model, "_bayesid_simulator", None)
    if sim is None:
        sim = ModelSimulator(model)
        try:
            model._bayesid_simulator = sim
        except Exception:  # pragma: no cover - a model that refuses attributes
            pass
    return sim
