"""From a nengo network to the pieces a `Simulator` runs.

`build_simulation` does the work of constructing a simulator, in the order of
the pipeline: nengo's own builder makes the model; `nengodl.simplify` removes
the copies, resets and products that change nothing; nengo's optimiser merges
the operators of small models (`nengodl.optimizer`); the planner puts them in
a fixed execution order, merges independent operators of one kind and packs
their signals (`nengodl.planner`); `nengodl.plan.make_plan` decides how each
one runs; the
`CompiledRunner` traces the simulation loop; the run state and the probe
recorder are made. The result, a `Simulation`, is what the `Simulator` holds;
nothing in it refers back to the simulator.
"""

import contextlib
import dataclasses
import logging
import os

import nengo
import numpy as np
import tensorflow as tf
from nengo.builder import Model
from nengo.cache import get_default_decoder_cache
from nengo.exceptions import BuildError
from nengo.utils.simulator import operator_dependency_graph

from nengodl import optimizer
from nengodl.config import (
    get_setting,
    keeps_history,
    network_chains,
    trainable_keys,
    trainable_signals,
    trainable_synapses,
)
from nengodl.io.checks import check_dtype
from nengodl.io.probes import ProbeRecorder
from nengodl.ops.synapses import make_synapses_trainable
from nengodl.plan import make_plan
from nengodl.planner import merge_groups, operator_order, pack_signals
from nengodl.progress import Stage
from nengodl.runtime.compiled import CompiledRunner
from nengodl.runtime.numpy_step import NumpyStepper
from nengodl.runtime.seeds import STATEFUL_RANDOM_OPS, graph_ops, graph_seed
from nengodl.runtime.state import RunState
from nengodl.simplify import simplify
from nengodl.tensor_node import TensorNode

logger = logging.getLogger(__name__)

MAXINT = np.iinfo(np.int32).max


def resolve_seed(seed, network):
    """The simulator's seed: ``seed``, else the network's seed + 1 (as nengo), else
    a random one (``seed`` already checked)."""
    if seed is not None:
        return seed
    if network is not None and network.seed is not None:
        return network.seed + 1
    return int(np.random.randint(MAXINT))


def resolve_dtype(dtype, network, model):
    """The simulator's dtype: ``dtype``, else ``configure_settings(dtype=...)``,
    else ``$NENGODL_DTYPE``, else float32."""
    if dtype is None:
        net = network if network is not None else getattr(model, "toplevel", None)
        dtype = get_setting(net, "dtype") or os.environ.get("NENGODL_DTYPE", "float32")
    return check_dtype(dtype)


def device_scope(device):
    """``tf.device(device)``, or nothing where no device is given."""
    return tf.device(device) if device is not None else contextlib.nullcontext()


def strategy_scope(strategy):
    """``strategy.scope()``, or nothing where there is no strategy."""
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def on_cpu(device):
    """Whether the simulation runs on a CPU (TensorFlow places it on a GPU if
    one is visible and no device is given)."""
    if device is not None:
        return "cpu" in device.lower()
    return not tf.config.list_logical_devices("GPU")


def input_nodes(model):
    """``{node: output signal}`` of the Nodes whose output run-time data can
    replace: those without input (a TensorNode's output is its function's,
    never data)."""
    return {
        obj: sigs["out"]
        for obj, sigs in model.sig.items()
        if isinstance(obj, nengo.Node)
        and obj.size_in == 0
        and not isinstance(obj, TensorNode)
        and sigs.get("out") is not None
    }


@dataclasses.dataclass(frozen=True)
class Simulation:
    """What a `Simulator` runs, as `build_simulation` made it.

    Attributes
    ----------
    model : nengo.builder.Model
        The built (and optimised) model.
    dg : dict
        Its operator dependency graph.
    step_order : list
        Its operators in execution order.
    plan : nengodl.plan.Plan
    runner : nengodl.runtime.compiled.CompiledRunner
    run_state : nengodl.runtime.state.RunState
        The run-time values, the probe recorder among them.
    stateful : bool
        ``configure_settings(stateful=...)``.
    check_finite : bool
        ``configure_settings(check_finite=...)``.
    """

    model: object
    dg: dict
    step_order: list
    plan: object
    runner: object
    run_state: object
    stateful: bool
    check_finite: bool


def fixed_bases(model):
    """The bases whose values change outside the operators: the clock and the
    fed inputs."""
    fixed = {model.time.base, model.step.base}
    fixed.update(sig.base for sig in input_nodes(model).values())
    return fixed


def build_model(network, model, dt, optimize, options, progress_bar):
    """nengo's build of ``network`` into ``model`` (a new one if None), then,
    with ``optimize``, the simplifications (`nengodl.simplify`) and the
    merges: nengo's merger on models of at most ``options.nengo_merge_ops``
    operators, and the planner's (`nengodl.planner`), which also packs the
    signals.

    Returns
    -------
    model : nengo.builder.Model
    dg : dict
        The operator dependency graph.
    step_order : list
        The operators in a topological order.
    ordered : list
        The operators in execution order (by dependency level, where merged).
    merged : dict
        Map from each merged operator to its group.
    trainable : list or None
        `trainable_keys` of the model (None without ``optimize``), looked up
        before the merges and still valid after them.
    """
    if model is None:
        model = Model(
            dt=float(dt), label=f"{network}, dt={dt:f}", decoder_cache=get_default_decoder_cache()
        )
    with Stage("Build", progress_bar):
        if network is not None:
            model.build(network)
            make_synapses_trainable(model, trainable_synapses(network))
    if not optimize:
        dg = operator_dependency_graph(model.operators)
        step_order = operator_order(model.operators, dg)
        return model, dg, step_order, step_order, {}, None
    with Stage("Optimization", progress_bar):
        toplevel = network if network is not None else model.toplevel
        trainable = trainable_keys(model, toplevel)
        keep = set(trainable_signals(model, toplevel, trainable))
        removed = simplify(model, fixed_bases(model) | keep)
        logger.info("simplification removed %d operators", removed)
        dg = operator_dependency_graph(model.operators)
        if len(model.operators) <= options.nengo_merge_ops:
            optimizer.optimize(model, dg, options)
        step_order = operator_order(model.operators, dg)
        ordered, merged = merge_groups(step_order, dg, model.dt)
        pack_signals(model, ordered, merged, fixed_bases(model))
    return model, dg, step_order, ordered, merged, trainable


def build_simulation(
    network,
    model,
    *,
    dt,
    seed,
    dtype,
    minibatch_size,
    optimize,
    options,
    jit,
    unroll,
    device,
    strategy,
    progress_bar,
):
    """Build, optimise, plan and trace a simulation (see the module's docstring).

    Parameters are the `Simulator`'s, checked; ``minibatch_size`` may be None
    (no minibatch axis), ``dtype`` is a numpy dtype. Returns a `Simulation`.
    """
    model, dg, step_order, ordered, merged, trainable = build_model(
        network, model, dt, optimize, options, progress_bar
    )
    toplevel = network if network is not None else model.toplevel
    if get_setting(toplevel, "learning_phase") and get_setting(toplevel, "inference_only"):
        raise BuildError(
            "this network is configured with inference_only=True and "
            "learning_phase=True: an inference-only model has no training behaviour "
            "to run with (drop one of the two settings)"
        )
    batch = 1 if minibatch_size is None else minibatch_size
    with (
        Stage("Construction", progress_bar),
        device_scope(device),
        strategy_scope(strategy),
        graph_seed(seed),
    ):
        plan = make_plan(
            model,
            ordered,
            input_nodes(model),
            dtype,
            batch,
            trainable_signals(model, toplevel, trainable),
            merged=merged,
            trainable_chains=network_chains(toplevel) if toplevel is not None else {},
        )
        runner = CompiledRunner(
            plan,
            options,
            jit=jit,
            lif_smoothing=get_setting(toplevel, "lif_smoothing"),
            learning_phase=get_setting(toplevel, "learning_phase", False),
            unroll=unroll,
            sharding=strategy is None and on_cpu(device),
        )
        runner.trace()
        if runner.jit and any(isinstance(n, TensorNode) for n in model.sig):
            traced = runner.loop.trace().graph.as_graph_def()
            if graph_ops(traced) & STATEFUL_RANDOM_OPS:
                logger.info("stateful random ops in a TensorNode: running without XLA")
                runner.disable_xla()
                runner.loop.make_serial()  # draws in step order
                runner.loop.trace()  # (traced here, with the seed)
    # probes configured with keep_history=False: one row (the last step) per run
    last_only = [p for p in model.probes if not keeps_history(toplevel, p)]
    recorder = ProbeRecorder(model.probes, plan.probe_sigs, model.dt, minibatch_size, last_only)
    stepper = None
    if strategy is None and NumpyStepper.usable(runner.loop, step_order):
        stepper = NumpyStepper(runner.loop, step_order)
    return Simulation(
        model=model,
        dg=dg,
        step_order=step_order,
        plan=plan,
        runner=runner,
        run_state=RunState(runner.loop, recorder, stepper),
        stateful=bool(get_setting(toplevel, "stateful", True)),
        check_finite=bool(get_setting(toplevel, "check_finite", True)),
    )
