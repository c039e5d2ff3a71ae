"""A pytensor Op around the BSLIP simulator, with exact gradients and a numba implementation.

:class:`WalkOp` maps core parameters ``q`` (one row per trial: ``κ = k/m, L0, α0 [rad], y0, v0``)
to the predicted signals of each trial, their sensitivities and a viability flag:

* ``pred`` (n_trials, n_t, n_ch): the selected channels (a contiguous range of
  ``x, y, vx, vy, sfx, sfy``) at the sampling times;
* ``jac`` (n_trials, n_t, n_ch, 5): ``∂ pred / ∂ q`` from the simulator's forward sensitivities
  (event times included);
* ``status`` (n_trials,): 0 for a complete walk, otherwise the failure code of
  :data:`bayesid.models.gait.simulator.STATUS_MESSAGES` (as float64).

The gradient (``pullback``) is the vector–Jacobian product ``Σ_{t,c} ḡ[i,t,c] · jac[i,t,c,:]``, built from
the ``jac`` output with ordinary pytensor ops, so it is exact and needs no second Op. ``jac`` and
``status`` are declared disconnected from the input (no second derivatives).

The Op is registered with pytensor's numba dispatcher (``register_funcify_default_op_cache_key``),
so that nutpie's numba-compiled logp/gradient calls the compiled simulator directly, without
object mode.

Forward-only where nothing needs the Jacobian: the graph rewrite :func:`local_walkop_forward_only`
replaces a ``WalkOp(sensitivities=True)`` node — bare, or wrapped in ``Blockwise`` by
``vectorize_graph`` — whose ``jac`` output no other node uses by the forward-only Op. It is registered
in pytensor's ``specialize`` database and tagged ``fast_compile``, so it runs when a function is
compiled in any mode, but not in PyMC's pre-gradient ``canonicalize``/``stabilize`` rewrites (which
would drop the sensitivities before ``pytensor.grad`` needs them). The log-likelihood and
prior-predictive functions of :func:`bayesid.fit` and PyMC then skip the sensitivities (about 1.5 of
2 ms per walk); gradient graphs keep them. Both variants run the same arithmetic (the simulator's
value-only RK4 sums in the tangent RK4's order), so ``pred`` and ``status`` are bit-identical.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from numba import njit
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import node_rewriter
from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.rewriting.basic import register_specialize

from . import simulator as sim

__all__ = ["WalkOp", "op_eval", "local_walkop_forward_only"]


@njit(cache=True)
def op_eval(Q, dt, n_sub, n_t, ch0, ch1, t_stall, sens=True):
    """Numba kernel of :class:`WalkOp`: simulate every row of ``Q`` (with sensitivities if ``sens``,
    else ``jac`` is returned as zeros)."""
    n = Q.shape[0]
    nch = ch1 - ch0
    pred = np.empty((n, n_t, nch))
    jacout = np.zeros((n, n_t, nch, sim.N_Q))
    status = np.empty(n)
    out = np.empty((n_t, sim.N_CH))
    jac = np.zeros((n_t, sim.N_TAN_CH, sim.N_Q))
    events = np.empty((8, 5))
    q = np.empty(sim.N_Q)
    for s in range(n):
        for p in range(sim.N_Q):
            q[p] = Q[s, p]
        st, _, _ = sim.walk_core(q, dt, n_sub, n_t, 0, t_stall, sens, out, jac, events)
        status[s] = st
        for i in range(n_t):
            for c in range(nch):
                pred[s, i, c] = out[i, ch0 + c]
                if sens:
                    for p in range(sim.N_Q):
                        jacout[s, i, c, p] = jac[i, ch0 + c, p]
    return pred, jacout, status


class WalkOp(Op):
    """Predicted BSLIP signals, their exact Jacobian and a viability flag (see module docstring).

    Parameters
    ----------
    n_t : int
        Samples per trial.
    dt : float
        Sampling interval [s].
    n_sub : int
        RK4 steps per sampling interval.
    ch0, ch1 : int
        Channel range ``[ch0, ch1)`` of ``x, y, vx, vy, sfx, sfy`` to return
        (``(0, 2)`` positions, ``(4, 6)`` specific force).
    t_stall : float
        Seconds without touchdown after which a walk counts as stalled.
    sensitivities : bool
        Compute ``jac`` (needed for gradients). ``False`` gives a forward-only Op (``jac`` is zeros and
        asking for a gradient raises), for gradient-free samplers.
    """

    __props__ = ("n_t", "dt", "n_sub", "ch0", "ch1", "t_stall", "sensitivities")

    def __init__(self, n_t, dt, n_sub=2, ch0=4, ch1=6, t_stall=2.0, sensitivities=True):
        self.sensitivities = bool(sensitivities)
        if not (0 <= ch0 < ch1 <= sim.N_TAN_CH):
            raise ValueError(f"channel range must lie in [0, {sim.N_TAN_CH}], got [{ch0}, {ch1})")
        self.n_t = int(n_t)
        self.dt = float(dt)
        self.n_sub = int(n_sub)
        self.ch0 = int(ch0)
        self.ch1 = int(ch1)
        self.t_stall = float(t_stall)

    def make_node(self, q):
        q = pt.as_tensor_variable(q).astype("float64")
        if q.ndim != 2:
            raise ValueError(f"WalkOp takes a matrix (n_trials, {sim.N_Q}), got ndim={q.ndim}")
        nch = self.ch1 - self.ch0
        n = q.type.shape[0]
        outs = [
            pt.tensor(dtype="float64", shape=(n, self.n_t, nch)),
            pt.tensor(dtype="float64", shape=(n, self.n_t, nch, sim.N_Q)),
            pt.tensor(dtype="float64", shape=(n,)),
        ]
        return Apply(self, [q], outs)

    def perform(self, node, inputs, output_storage):
        (Q,) = inputs
        pred, jac, status = op_eval(np.ascontiguousarray(Q, dtype=np.float64), self.dt, self.n_sub,
                                    self.n_t, self.ch0, self.ch1, self.t_stall, self.sensitivities)
        output_storage[0][0] = pred
        output_storage[1][0] = jac
        output_storage[2][0] = status

    def infer_shape(self, fgraph, node, input_shapes):
        n = input_shapes[0][0]
        nch = self.ch1 - self.ch0
        return [(n, self.n_t, nch), (n, self.n_t, nch, sim.N_Q), (n,)]

    def connection_pattern(self, node):
        return [[True, False, False]]

    def pullback(self, inputs, outputs, output_grads):
        from pytensor.gradient import DisconnectedType

        from pytensor.gradient import grad_not_implemented

        gbar = output_grads[0]
        if isinstance(gbar.type, DisconnectedType):
            return [pt.zeros_like(inputs[0])]
        if not self.sensitivities:
            return [grad_not_implemented(self, 0, inputs[0],
                                         "WalkOp(sensitivities=False) is forward-only; use sensitivities=True")]
        jac = outputs[1]
        return [(gbar[..., None] * jac).sum(axis=(1, 2))]


@register_funcify_default_op_cache_key(WalkOp)
def _numba_funcify_walkop(op, node=None, **kwargs):
    dt, n_sub, n_t, ch0, ch1, t_stall = op.dt, op.n_sub, op.n_t, op.ch0, op.ch1, op.t_stall
    sens = op.sensitivities

    @numba_njit
    def walk_op(Q):
        return op_eval(np.ascontiguousarray(Q), dt, n_sub, n_t, ch0, ch1, t_stall, sens)

    return walk_op


@register_specialize("fast_compile")  # not canonicalize: see the module docstring
@node_rewriter([WalkOp, Blockwise])
def local_walkop_forward_only(fgraph, node):
    """``WalkOp(sensitivities=True)`` whose ``jac`` output is unused -> the forward-only ``WalkOp``.

    Also for a ``Blockwise(WalkOp)`` (the batched form ``vectorize_graph`` builds). ``pred`` and ``status``
    are replaced; nodes that use ``jac`` (gradients) keep the sensitivities.
    """
    op = node.op
    core = op.core_op if isinstance(op, Blockwise) else op
    if not isinstance(core, WalkOp) or not core.sensitivities:
        return None
    if fgraph.clients.get(node.outputs[1]):
        return None
    fwd = WalkOp(core.n_t, core.dt, core.n_sub, core.ch0, core.ch1, core.t_stall, sensitivities=False)
    if isinstance(op, Blockwise):
        fwd = Blockwise(fwd, signature=op.signature)
    new = fwd.make_node(*node.inputs).outputs
    return {node.outputs[0]: new[0], node.outputs[2]: new[2]}
