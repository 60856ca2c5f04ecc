"""What each trial asks Ray for, and a request no node can ever satisfy, refused in seconds.

A trial is one placement group with ``STRICT_PACK``: its own bundle (``cpus_per_trial``,
``gpus_per_trial``) and, for a trial whose model mines through a MiningActor (its family
reads a ``mining`` section whose solver is not ``none``: :func:`whaleflow.families.mining_settings`)
with ``mining_actor_cpus`` > 0, one for its MiningActor — on one node, so the N×N row blocks the
trial streams to the actor never cross the network. So the whole group must fit on one node.

Ray itself waits forever for a group no node can hold (Tune warns every 60 s). Before
the experiment starts, :func:`check_requests` compares each model's group with the
largest node there is, or that the autoscaler could add: the node types in the
cluster launcher's ``~/ray_bootstrap_config.yaml`` (the file Tune also takes as the
sign of an autoscaling cluster), unless a type's resources are unknown, in which
case it cannot tell and lets Ray wait.
"""
from __future__ import annotations

from pathlib import Path
from ray import tune

from whaleflow.config import Config
from whaleflow.errors import WhaleflowError
from whaleflow.families import mining_settings

#: the cluster launcher writes the autoscaler's config here on the head node
BOOTSTRAP_CONFIG = Path("~/ray_bootstrap_config.yaml")
STRATEGY = "STRICT_PACK"
_SHOWN = ("CPU", "GPU")


def mining_actor_memory(cfg: Config) -> int:
    """Bytes of Ray ``memory`` a trial's MiningActor requests (0: none).

    Only an actor with its own bundle (``mining_actor_cpus`` > 0) asks: Tune gives the
    trial's function its whole bundle, so memory put there could never go to the actor."""
    if cfg.ray.mining_actor_cpus <= 0:
        return 0
    return int(max(0.0, float(cfg.ray.mining_actor_memory_gb or 0.0)) * 2**30)


def trial_bundles(cfg: Config, mining_actor: bool, gpus: float) -> list[dict[str, float]]:
    """The bundles of one trial's placement group: the trial's, plus its mining actor's when
    the trial has one (``mining_actor``: :func:`~whaleflow.families.mining_settings` is not None).

    The actor's ``memory`` goes into its own bundle (``mining_actor_cpus`` > 0), so its
    request always fits there."""
    bundle = {"CPU": float(cfg.ray.cpus_per_trial)} | ({"GPU": gpus} if gpus > 0 else {})
    bundles = [bundle]
    memory = mining_actor_memory(cfg) if mining_actor else 0
    if mining_actor and cfg.ray.mining_actor_cpus > 0:
        bundles.append({"CPU": float(cfg.ray.mining_actor_cpus)} | ({"memory": float(memory)} if memory else {}))
    return bundles


def resources_for(cfg: Config, gpus: float):
    """Tune's per-trial resources: a ``STRICT_PACK`` placement group per variant, asked of
    the variant's own model config (its sampled params applied: a searched ``mining.solver``
    decides whether the trial has a mining actor)."""
    from .search_space import model_for_trial

    def resources(config: dict) -> tune.PlacementGroupFactory:
        mining_actor = mining_settings(model_for_trial(cfg, config["variant"])) is not None
        return tune.PlacementGroupFactory(trial_bundles(cfg, mining_actor, gpus), strategy=STRATEGY)

    return resources


def demand(bundles: list[dict[str, float]]) -> dict[str, float]:
    """What a STRICT_PACK group needs from its one node: the bundles summed."""
    total: dict[str, float] = {}
    for b in bundles:
        for k, v in b.items():
            total[k] = total.get(k, 0.0) + float(v)
    return {k: v for k, v in total.items() if v > 0}


def fits(need: dict[str, float], node: dict[str, float]) -> bool:
    """Whether a node holds ``need``; ``memory`` only counts where the node states it (a launcher
    node type usually lists CPUs and GPUs only; Ray measures memory when the node starts)."""
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in need.items() if k != "memory" or k in node)


def live_nodes() -> list[dict[str, float]]:
    """Total resources of each alive node of the connected Ray cluster."""
    import ray

    return [dict(n.get("Resources") or {}) for n in ray.nodes() if n.get("Alive")]


def autoscaler_node_types(path: Path = BOOTSTRAP_CONFIG) -> list[dict[str, float]] | None:
    """Resources of the node types the autoscaler may add; [] without an autoscaler; None when a
    type's resources are unknown (then no request can be called impossible)."""
    path = path.expanduser()
    if not path.is_file():
        return []
    import yaml

    try:
        launcher = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    types = launcher.get("available_node_types") or {}
    out = []
    for name, spec in types.items():
        if int(spec.get("max_workers", 0) or 0) <= 0 and name != launcher.get("head_node_type"):
            continue  # a type the autoscaler never adds
        if not spec.get("resources"):
            return None
        out.append({k: float(v) for k, v in spec["resources"].items()})
    return out


def _show(res: dict[str, float], keys) -> str:
    keys = list(dict.fromkeys([*_SHOWN, *keys]))
    fmt = lambda k, v: f"{k}: {v / 2**30:.1f} GiB" if k == "memory" else f"{k}: {v:g}"  # noqa: E731
    return "{" + ", ".join(fmt(k, res.get(k, 0.0)) for k in keys) + "}"


def _asks(cfg: Config, mining_actor: bool, gpus: float) -> str:
    parts = [f"ray.cpus_per_trial={cfg.ray.cpus_per_trial:g}"]
    if gpus > 0:
        parts.append(f"ray.gpus_per_trial={gpus:g}")
    if mining_actor and cfg.ray.mining_actor_cpus > 0:
        parts.append(f"ray.mining_actor_cpus={cfg.ray.mining_actor_cpus:g}")
    if mining_actor and mining_actor_memory(cfg):
        parts.append(f"ray.mining_actor_memory_gb={cfg.ray.mining_actor_memory_gb:g}")
    return " + ".join(parts)


def check_requests(cfg: Config, gpus: float, nodes: list[dict[str, float]] | None = None,
                   node_types: list[dict[str, float]] | None | str = "read") -> None:
    """Raise a one-line WhaleflowError for the first model whose trial fits no node, now or later.

    ``nodes`` (default: the live cluster's) and ``node_types`` (default ``"read"``: from the
    launcher's bootstrap config; None: an autoscaler of unknown sizes) are there for tests.
    """
    nodes = live_nodes() if nodes is None else nodes
    node_types = autoscaler_node_types() if node_types == "read" else node_types
    if node_types is None:
        return  # an autoscaler whose node sizes we cannot read: Ray may still add a big enough node
    candidates = [*nodes, *node_types]
    for model in cfg.models:
        mining_actor = mining_settings(model) is not None
        need = demand(trial_bundles(cfg, mining_actor, gpus))
        if any(fits(need, node) for node in candidates):
            continue
        largest = max(candidates, key=lambda n: (sum(n.get(k, 0.0) >= v for k, v in need.items()),
                                                 n.get("GPU", 0.0), n.get("CPU", 0.0)), default={})
        where = "the largest node the autoscaler can add" if largest in node_types and node_types else "the largest node"
        if "memory" not in largest:  # memory only counted (and shown) where the node states it
            need = {k: v for k, v in need.items() if k != "memory"}
        raise WhaleflowError(
            f"models[{model.name}]: each trial asks for {_show(need, need)} on one node ({_asks(cfg, mining_actor, gpus)}), "
            f"but {where} has {_show(largest, need)}{'' if node_types else ' and no autoscaler can add one'}. "
            "Fix: ask for less (--set ray.cpus_per_trial=… ray.gpus_per_trial=… ray.mining_actor_cpus=…) or add a "
            "node that large.")
