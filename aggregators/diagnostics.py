"""Is the Plackett-Luce estimate identified? The comparison graph and who never wins or loses.

The maximum-likelihood estimate exists (and is unique up to a shift) exactly when the directed graph
"i beat j somewhere" is strongly connected (Hunter 2004). With alpha = 0 and no MLE we raise at once and
name the models; with alpha > 0 we fit and report which scores rest on the prior.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from aggregators.orderings import Orderings, ranges

#: Up to this many model pairs, direct edges are deduplicated in a dense boolean matrix (at most 64 MB).
DENSE_PAIRS = 1 << 26


class NotIdentifiedError(ValueError):
    """alpha = 0 and the data do not determine every model's strength; the message names the models."""


@dataclass(frozen=True)
class Diagnostics:
    """What the data say about identifiability; `prior_driven` lists models whose scores rest on the prior."""

    n_models: int
    n_orderings: int
    n_entries: int
    components: list[list[str]]  # strongly connected components of the beat graph, when more than one
    groups: list[list[str]]  # models no sample compares with the others' (weakly connected), when more than one
    never_win: list[str]
    never_lose: list[str]
    unmeasured: list[str]  # in no ordering: never measured, or tied with every model on each of its samples
    prior_driven: list[str] = field(default_factory=list)
    uninformative: int = 0  # pl-conditional: binary samples all or none of whose models got right,
    single_model: int = 0  # of them, those measured on one model only,
    binary_samples: int = 0  # and binary samples in all
    bootstrap_replicates: int = 0  # alpha = 0 with a bootstrap: the replicates,
    bootstrap_without_mle: int = 0  # those whose data determine no MLE,
    bootstrap_prior_driven: list[str] = field(default_factory=list)  # and the models they leave undetermined
    unscored: list[str] = field(default_factory=list)  # mean: compared models with no measurement (left out)

    @property
    def identified(self) -> bool:
        return len(self.components) <= 1 and not self.never_win and not self.never_lose

    def as_dict(self) -> dict[str, object]:
        return {
            "n_models": self.n_models,
            "n_orderings": self.n_orderings,
            "n_entries": self.n_entries,
            "strongly_connected": len(self.components) <= 1,
            "components": self.components,
            "groups": self.groups,
            "never_win": self.never_win,
            "never_lose": self.never_lose,
            "unmeasured": self.unmeasured,
            "prior_driven": self.prior_driven,
            "uninformative_samples": self.uninformative,
            "single_model_samples": self.single_model,
            "binary_samples": self.binary_samples,
            "bootstrap_replicates": self.bootstrap_replicates,
            "bootstrap_without_mle": self.bootstrap_without_mle,
            "bootstrap_prior_driven": self.bootstrap_prior_driven,
            "unscored": self.unscored,
        }


def uninformative_note(diagnostics: Mapping[str, Any]) -> str:
    """What a reader is told about the binary samples pl-conditional left out (`Diagnostics.as_dict` keys); when
    most samples were measured on one model only, when to rank with the mean instead."""
    count, single, total = (
        diagnostics[key] for key in ("uninformative_samples", "single_model_samples", "binary_samples")
    )
    note = (
        f"{count:,} of {total:,} binary samples ({single:,} measured on one model only), where every or no"
        " measured model was right, carry no information: left out"
    )
    if 2 * single > total:
        note += (
            ". If each model was measured on a uniformly random subset of the same samples, --method mean uses"
            " them all and ranks better (README: How robust is it?)"
        )
    return note


def prior_note(diagnostics: Mapping[str, Any], alpha: float | None) -> str | None:
    """What a reader is told about the models whose scores the data leave to a prior (`prior_driven`), or None:
    the PL prior `alpha`, or (alpha None) bt's regularisation. Where one group of models stands against
    another (`groups`) is `groups_note`'s to tell: of a group's models, named here are those outside its
    largest strongly connected component."""
    groups = diagnostics.get("groups") or []
    cores: set[str] = set()
    for group in groups:
        core = max((c for c in diagnostics["components"] if set(group).issuperset(c)), key=len)
        cores.update(core if len(core) > 1 else ())
    driven = [model for model in diagnostics.get("prior_driven", []) if model not in cores]
    if not driven:
        return None
    return f"scores resting on {_prior(alpha)}, not on the data: {', '.join(driven)}"


def groups_note(diagnostics: Mapping[str, Any], alpha: float | None, fitted: bool) -> str | None:
    """What a reader is told when no sample compares some of the ranked models with the others (`groups`, less
    the `unscored`), or None; `fitted`: the method fits with a prior (`alpha`, or None: bt's regularisation),
    which then places the groups against each other."""
    unscored = set(diagnostics.get("unscored", []))
    groups = [kept for group in diagnostics.get("groups", []) if (kept := [m for m in group if m not in unscored])]
    if len(groups) < 2:
        return None
    listed = ", ".join(f"{len(g)} ({', '.join(g[:3])}{', ...' if len(g) > 3 else ''})" for g in groups)
    across = f"; across groups they rest on {_prior(alpha)}" if fitted else ""
    alike = ", ".join(f"{a!r} and {b!r}" for a, b in _named_alike(groups)[:ALIKE_SHOWN])
    return (
        f"no sample compares these groups of models with one another: {listed}. Scores and ranks compare"
        f" within a group only{across}. Rank a group alone (--source), or give a model named two ways one name"
        f" (pool rename-model{'; named alike in different groups: ' + alike if alike else ''})"
    )


#: At most this many pairs of models named alike are shown in the groups note.
ALIKE_SHOWN = 5


def _named_alike(groups: list[list[str]]) -> list[tuple[str, str]]:
    """Pairs of models of different groups whose names hold the same words and numbers, in any order and case
    ("GPT 4" and "GPT-4"; "LLaMA-2-Chat (70B)" and "Llama-2-70B Chat"): likely one model named two ways."""
    first: dict[frozenset[str], tuple[int, str]] = {}
    pairs = []
    for index, group in enumerate(groups):
        for model in group:
            words = frozenset(re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", model.lower()))
            seen = first.setdefault(words, (index, model))
            if words and seen[0] != index:
                pairs.append((seen[1], model))
    return pairs


def _prior(alpha: float | None) -> str:
    """The prior a fit rests on: PL's `alpha`, or (None) bt's regularisation."""
    from aggregators.baselines import BT_REGULARISATION

    return f"the prior (alpha = {alpha:g})" if alpha is not None else f"bt's regularisation ({BT_REGULARISATION:g})"


def unscored_note(diagnostics: Mapping[str, Any], method: str) -> str:
    """What a reader is told about the models `method` (mean) left off its board (`unscored`)."""
    return (
        f"left out: {', '.join(diagnostics['unscored'])} (only compared, never measured on the selected samples:"
        f" {method} ranks measurements; the other methods rank comparisons too)"
    )


def bootstrap_prior_note(diagnostics: Mapping[str, Any], prior: float) -> str:
    """What a reader is told when, with alpha = 0, bootstrap replicates had no maximum-likelihood estimate
    (`Diagnostics.as_dict` keys; `prior`: the one those replicates were fitted with)."""
    return (
        f"{diagnostics['bootstrap_without_mle']:,} of {diagnostics['bootstrap_replicates']:,} bootstrap replicates"
        " determine no maximum-likelihood estimate:"
        f" fitted with alpha = {prior:g} instead, they leave the intervals of"
        f" {', '.join(diagnostics['bootstrap_prior_driven'])} resting partly on that prior"
    )


def diagnose(orderings: Orderings, direct_limit: float = 4.0) -> Diagnostics:
    """Strongly connected components of the beat graph, and models that never win or never lose.

    `direct_limit`: see `_beat_graph`.
    """
    o = orderings
    n = o.n_models
    names = [str(m) for m in o.models]
    present = np.bincount(o.item, minlength=n) > 0
    won = np.bincount(o.item, o.winner.astype(float), minlength=n) > 0
    lost = np.bincount(o.item, o.loser.astype(float), minlength=n) > 0
    graph = _beat_graph(o, direct_limit)
    present_names = np.asarray(names)[present]
    components, groups = (
        _partition(present_names, connected_components(graph, directed=True, connection=kind)[1][:n][present])
        for kind in ("strong", "weak")
    )
    return Diagnostics(
        n_models=n,
        n_orderings=len(o.ordering_weight),
        n_entries=len(o.item),
        components=components,
        groups=groups,
        never_win=[names[i] for i in np.flatnonzero(present & ~won)],
        never_lose=[names[i] for i in np.flatnonzero(present & ~lost)],
        unmeasured=[names[i] for i in np.flatnonzero(~present)],
    )


def _partition(names: np.ndarray, labels: np.ndarray) -> list[list[str]]:
    """The names grouped by label, largest group first; [] when there is one group."""
    groups: dict[int, list[str]] = {}
    for name, label in zip(names, labels, strict=True):
        groups.setdefault(int(label), []).append(str(name))
    return sorted(groups.values(), key=len, reverse=True) if len(groups) > 1 else []


def _beat_graph(o: Orderings, direct_limit: float) -> csr_matrix:
    """A directed graph whose reachability among the first n nodes (the models) is "i beat j somewhere".

    Consecutive tiers suffice (beating is transitive within an ordering). When that gives at most
    `direct_limit` model pairs per entry, the edges join models directly (n nodes; with few models, each
    pair once); otherwise one helper node per tier keeps the graph O(entries): each winner points to its
    tier's helper, the helper to every entry of the next tier and to the next helper.
    """
    n = o.n_models
    pairs = _consecutive_pairs(o, direct_limit)
    if pairs is not None:
        src, dst = pairs
        if n * n <= DENSE_PAIRS:  # each pair once: far fewer edges to sort into the sparse graph
            seen = np.zeros(n * n, dtype=bool)
            src *= n
            src += dst
            seen[src] = True
            src, dst = np.divmod(np.flatnonzero(seen), n)
        size = n
    else:
        below = o.loser
        helper = n + o.tier
        previous_helper = n + o.tier[below] - 1
        src = np.r_[o.item[o.winner], previous_helper, previous_helper]
        dst = np.r_[helper[o.winner], o.item[below], n + o.tier[below]]
        size = n + len(o.tier_last)
    keep = src != dst
    return coo_matrix((np.ones(keep.sum()), (src[keep], dst[keep])), shape=(size, size)).tocsr()


def _consecutive_pairs(o: Orderings, direct_limit: float) -> tuple[np.ndarray, np.ndarray] | None:
    """(upper, lower) model pairs of entries in consecutive tiers of an ordering; None when there are more
    than `direct_limit` per entry."""
    below = o.loser
    if len(o.item) == len(o.tier_last):  # one entry per tier: an entry's pair is the entry before it
        at = np.flatnonzero(below)
        lower = o.item[at]
        at -= 1
        return o.item[at], lower
    tier_size = np.bincount(o.tier, minlength=len(o.tier_last))
    upper_tier = o.tier[below] - 1
    count = tier_size[upper_tier]
    n_pairs = int(count.sum())
    if n_pairs > direct_limit * len(o.item):
        return None
    upper_start = (np.cumsum(tier_size) - tier_size)[upper_tier]  # the first entry of each upper tier
    lower = np.repeat(o.item[below], count)  # one pair with each entry of the tier above
    upper = ranges(upper_start, count)
    return o.item[upper], lower


def check(diagnostics: Diagnostics, alpha: float) -> Diagnostics:
    """Raise NotIdentifiedError when alpha = 0 and no MLE exists; else return the diagnostics with the
    models whose scores rest on the prior filled in."""
    d = diagnostics
    if alpha <= 0 and (not d.identified or d.unmeasured):
        problems = []
        if d.unmeasured:
            problems.append(
                f"compared with no one, never measured or tied on each of its samples: {', '.join(d.unmeasured)}"
            )
        if d.never_win:
            problems.append(f"never win: {', '.join(d.never_win)}")
        if d.never_lose:
            problems.append(f"never lose: {', '.join(d.never_lose)}")
        if d.groups:
            sizes = ", ".join(str(len(g)) for g in d.groups)
            problems.append(f"no sample compares {len(d.groups)} groups of models with one another (sizes {sizes})")
        elif d.components:
            sizes = ", ".join(str(len(c)) for c in d.components)
            problems.append(f"the comparison graph splits into {len(d.components)} groups (sizes {sizes})")
        raise NotIdentifiedError(
            "no maximum-likelihood estimate (" + "; ".join(problems) + "); pass alpha > 0 for a prior"
        )
    return replace(d, prior_driven=undetermined(d))


def undetermined(diagnostics: Diagnostics) -> list[str]:
    """The models whose strengths the data leave to a prior: never won, never lost, compared with no one, or
    outside the largest strongly connected component."""
    d = diagnostics
    driven = set(d.never_win) | set(d.never_lose) | set(d.unmeasured)
    if d.components:
        driven |= {m for group in d.components[1:] for m in group}
    return sorted(driven)


def undetermined_mask(orderings: Orderings, sample_weight: np.ndarray) -> np.ndarray:
    """Per model: whether the orderings under these sample weights (a bootstrap replicate's) leave its strength
    undetermined (`undetermined`); all False exactly when they determine a maximum-likelihood estimate."""
    names = undetermined(diagnose(orderings.reweighted(sample_weight)))
    return np.isin(orderings.models.astype(str), names)
