"""The model contract: what every model family in :mod:`bayesid.models` provides.

A :class:`ModelSpec` bundles one data-generating process in two forms that must agree:

* ``build(data, design, priors)`` — the PyMC program (used for NUTS and for the Fisher diagnostics);
* ``simulate(theta, design, random_seed)`` — a fast numpy/numba simulator, vectorised over many
  parameter sets (used for neural training, design comparison and the agreement test).

It also carries named :class:`Design` s, default true values with units, default priors, and the
model's :class:`KnownAnswer` per design: which parameters and combinations the algebra or physics
says the data identify. The tests check the diagnostics against these known answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .priors import Prior

__all__ = ["Parameter", "Design", "KnownAnswer", "ModelSpec", "BadDataError", "UnknownDesignError"]


def as_seed_sequence(random_seed) -> np.random.SeedSequence:
    """Accept an int, None, a SeedSequence or a Generator as ``random_seed``."""
    if isinstance(random_seed, np.random.SeedSequence):
        return random_seed
    if isinstance(random_seed, np.random.Generator):
        return np.random.SeedSequence(int(random_seed.integers(2**63)))
    return np.random.SeedSequence(random_seed)


class BadDataError(ValueError):
    """Data handed to a model do not match what its design produces."""


class UnknownDesignError(KeyError):
    """No design of that name exists for the model."""

    def __str__(self):
        return str(self.args[0])


@dataclass(frozen=True)
class Parameter:
    """One named (possibly vector-valued) model parameter.

    Parameters
    ----------
    name : str
        Name of the PyMC random variable.
    prior : Prior
        Default prior (elementwise).
    true_value : float or array
        Default true value used by ``simulate`` and in the known-answer tests.
    unit : str
        Physical unit, for display.
    shape : tuple of int
        Shape of the parameter; ``()`` for a scalar.
    description : str
        One line for reports.
    """

    name: str
    prior: Prior
    true_value: Any
    unit: str = ""
    shape: tuple = ()
    description: str = ""


@dataclass(frozen=True)
class Design:
    """A named experimental design: what is measured and how (settings are free-form)."""

    name: str
    description: str
    settings: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.settings[key]


@dataclass(frozen=True)
class KnownAnswer:
    """What the equations say a design identifies.

    Parameters
    ----------
    identified : tuple of str
        Parameters identified individually (a negative control for every ridge verdict).
    weakly_identified : tuple of str
        Parameters the data inform, but whose posterior the prior still shapes.
    not_identified : tuple of str
        Parameters whose marginal stays prior-determined.
    in_combination : tuple of str
        Parameters identified only jointly with others.
    combinations : tuple of str
        Identified combinations, written as bayesid names them (``"a + b"``, ``"a·b"``, ``"k/m"``).
    ridges : tuple of dict
        Non-identified directions in *unconstrained* coordinates, as loadings on the unconstrained
        parameter names (``{"a": 1, "b": -1}``; for positive parameters the names are ``log``-ed).
    derivation : str
        How the answer follows from the model equations.
    """

    identified: tuple = ()
    weakly_identified: tuple = ()
    not_identified: tuple = ()
    in_combination: tuple = ()
    combinations: tuple = ()
    ridges: tuple = ()
    derivation: str = ""


class ModelSpec:
    """Base class of a model family. Subclasses set the class attributes and implement
    :meth:`_build` and :meth:`_simulate`.

    Attributes
    ----------
    name : str
        Registry name, ``family.model`` (e.g. ``"toy.additive"``).
    description : str
    parameters : tuple of Parameter
    designs : dict of str -> Design
    default_design : str
    known_answers : dict of str -> KnownAnswer
        Keyed by design name.
    """

    name: str = ""
    description: str = ""
    parameters: tuple = ()
    designs: dict = {}
    default_design: str = ""
    known_answers: dict = {}

    # ---------------------------------------------------------------- helpers
    @property
    def parameter_names(self) -> list[str]:
        return [p.name for p in self.parameters]

    def parameter(self, name) -> Parameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(f"{self.name} has no parameter {name!r}; parameters: {self.parameter_names}")

    def design(self, design=None) -> Design:
        """Return the :class:`Design` named ``design`` (default design if None)."""
        if isinstance(design, Design):
            return design
        design = design or self.default_design
        if design not in self.designs:
            raise UnknownDesignError(
                f"Unknown design {design!r} for model {self.name!r}. "
                f"Valid designs: {', '.join(sorted(self.designs))}."
            )
        return self.designs[design]

    def known_answer(self, design=None) -> KnownAnswer:
        return self.known_answers[self.design(design).name]

    def priors(self, priors=None) -> dict[str, Prior]:
        """Default priors, updated with ``priors`` (a dict name -> Prior)."""
        out = {p.name: p.prior for p in self.parameters}
        for k, v in (priors or {}).items():
            if k not in out:
                raise KeyError(f"Prior given for unknown parameter {k!r}; parameters: {list(out)}")
            if not isinstance(v, Prior):
                raise TypeError(f"Prior for {k!r} must be a bayesid.models.Prior, got {type(v).__name__}")
            out[k] = v
        return out

    def true_values(self) -> dict[str, np.ndarray]:
        """Default true parameter values."""
        return {p.name: np.broadcast_to(np.asarray(p.true_value, float), p.shape).copy()
                for p in self.parameters}

    def sample_prior(self, n, priors=None, random_seed=None) -> dict[str, np.ndarray]:
        """``n`` parameter sets from the prior, each array of shape ``(n, *param.shape)``."""
        pri = self.priors(priors)
        seeds = as_seed_sequence(random_seed).spawn(len(self.parameters))
        return {p.name: pri[p.name].sample((n, *p.shape), random_seed=s)
                for p, s in zip(self.parameters, seeds)}

    def flatten_theta(self, theta) -> tuple[np.ndarray, list[str]]:
        """Stack a batched parameter dict into an array ``(n, d)`` and its component names."""
        cols, names = [], []
        for p in self.parameters:
            v = np.asarray(theta[p.name], float)
            n = v.shape[0]
            v = v.reshape(n, -1)
            cols.append(v)
            if p.shape == ():
                names.append(p.name)
            else:
                names += [f"{p.name}[{','.join(map(str, ix))}]" for ix in np.ndindex(*p.shape)]
        return np.concatenate(cols, axis=1), names

    # ---------------------------------------------------------------- contract
    def data_shapes(self, design=None) -> dict[str, tuple]:
        """Shapes of the observed arrays for one dataset under ``design``."""
        raise NotImplementedError

    def validate_data(self, data, design=None) -> dict[str, np.ndarray]:
        """Check keys, shapes and finiteness of one dataset; return it as float arrays."""
        d = self.design(design)
        want = self.data_shapes(d)
        if not isinstance(data, dict):
            if hasattr(data, "data_vars"):  # xarray.Dataset
                data = {k: data[k].values for k in data.data_vars}
            else:
                raise BadDataError(f"data must be a dict of arrays with keys {list(want)}")
        missing = [k for k in want if k not in data]
        if missing:
            raise BadDataError(
                f"{self.name} / design {d.name!r}: data lack {missing}; expected keys {list(want)} "
                f"with shapes {want}. Use spec.simulate(...) to see the expected layout."
            )
        out = {}
        for k, shape in want.items():
            v = np.asarray(data[k], dtype=float)
            if v.shape != tuple(shape):
                raise BadDataError(
                    f"{self.name} / design {d.name!r}: data[{k!r}] has shape {v.shape}, but this design "
                    f"produces shape {tuple(shape)} ({self._shape_hint(d)}). Pick the design that matches "
                    "your data or reshape it."
                )
            bad = ~np.isfinite(v)
            if bad.any():
                raise BadDataError(
                    f"data[{k!r}] contains {int(bad.sum())} NaN/inf value(s) (first at index "
                    f"{tuple(int(i) for i in np.argwhere(bad)[0])}). Remove or impute them before fitting; "
                    "bayesid does not drop observations silently."
                )
            out[k] = v
        return out

    def _shape_hint(self, design) -> str:
        return ", ".join(f"{k}={v}" for k, v in design.settings.items() if np.isscalar(v))

    def build(self, data, design=None, priors=None):
        """The PyMC program for one dataset.

        Parameters
        ----------
        data : dict of str -> array
            One dataset, as returned by :meth:`simulate` for a single parameter set.
        design : str or Design, optional
        priors : dict of str -> Prior, optional
            Overrides of the default priors (a prior design).

        Returns
        -------
        pymc.Model
        """
        d = self.design(design)
        data = self.validate_data(data, d)
        model = self._build(data, d, self.priors(priors))
        return model

    def simulate(self, theta=None, design=None, random_seed=None):
        """Simulate datasets.

        Parameters
        ----------
        theta : dict of str -> array, optional
            Parameter values. Scalars (or arrays of the parameter's shape) give one dataset;
            a leading batch dimension ``(n, *shape)`` gives ``n`` datasets. Defaults to the true values.
        design : str or Design, optional
        random_seed : int or numpy Generator, optional

        Returns
        -------
        dict of str -> ndarray
            Observed arrays; with a leading batch dimension iff ``theta`` had one.
        """
        d = self.design(design)
        theta = self.true_values() if theta is None else theta
        batch, single = self._as_batch(theta)
        rng = np.random.default_rng(random_seed)
        out = self._simulate(batch, d, rng)
        if single:
            out = {k: v[0] for k, v in out.items()}
        return out

    def _as_batch(self, theta) -> tuple[dict, bool]:
        missing = [n for n in self.parameter_names if n not in theta]
        if missing:
            raise KeyError(f"theta lacks parameters {missing}; {self.name} needs {self.parameter_names}")
        single = None
        out = {}
        for p in self.parameters:
            v = np.asarray(theta[p.name], float)
            if v.shape == p.shape:
                is_single = True
                v = v[None]
            elif v.shape[1:] == p.shape:
                is_single = False
            else:
                raise BadDataError(
                    f"theta[{p.name!r}] has shape {v.shape}; expected {p.shape} or (n, *{p.shape})"
                )
            if single is None:
                single = is_single
            elif single != is_single:
                raise BadDataError("theta mixes single values and batches; give all parameters the same batch")
            out[p.name] = v
        sizes = {v.shape[0] for v in out.values()}
        if len(sizes) > 1:
            raise BadDataError(f"theta entries have different batch sizes {sizes}")
        return out, bool(single)

    def sampler_kwargs(self, model) -> dict:
        """Keyword arguments for :func:`bayesid.fit` that this model needs (start points, step size...).
        The default is none; :func:`bayesid.workflow.diagnose_model` and the CLI apply them."""
        return {}

    def _build(self, data, design, priors):
        raise NotImplementedError

    def _simulate(self, theta, design, rng):
        raise NotImplementedError

    def _prior_rvs(self, priors, coords=None):
        """Create the parameters' PyMC random variables (inside a model context)."""
        rvs = {}
        for p in self.parameters:
            kw = {}
            if p.shape != ():
                kw["shape"] = p.shape
            rvs[p.name] = priors[p.name].to_pymc(p.name, **kw)
        return rvs

    def __repr__(self):
        return f"<ModelSpec {self.name}: {len(self.parameters)} parameter(s), designs {list(self.designs)}>"

    def _repr_html_(self):
        from bayesid.report.misc import spec_html  # presentation layer, imported lazily

        return spec_html(self)
