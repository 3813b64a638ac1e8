"""Is the Plackett-Luce estimate identified? The comparison graph and who never wins or loses.

The maximum-likelihood estimate exists (and is unique up to a shift) exactly when the directed graph
"i beat j somewhere" is strongly connected (Hunter 2004). With alpha = 0 and no MLE we raise at once and
name the models; with alpha > 0 we fit and report which scores rest on the prior.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from aggregators.orderings import Orderings


class NotIdentifiedError(ValueError):
    """alpha = 0 and the data do not determine every model's strength; the message names the models."""


@dataclass(frozen=True)
class Diagnostics:
    """What the data say about identifiability; `prior_driven` lists models whose scores rest on the prior."""

    n_models: int
    n_orderings: int
    n_entries: int
    components: list[list[str]]
    never_win: list[str]
    never_lose: list[str]
    unmeasured: list[str]
    prior_driven: list[str] = field(default_factory=list)

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
            "never_win": self.never_win,
            "never_lose": self.never_lose,
            "unmeasured": self.unmeasured,
            "prior_driven": self.prior_driven,
        }


def diagnose(orderings: Orderings) -> Diagnostics:
    """Strongly connected components of the beat graph, and models that never win or never lose.

    The graph gets one helper node per tier, so its size is O(entries): each winner points to its tier's
    helper, the helper to every entry of the next tier and to the next tier's helper.
    """
    o = orderings
    n = o.n_models
    names = [str(m) for m in o.models]
    present = np.bincount(o.item, minlength=n) > 0
    won = np.bincount(o.item, o.winner.astype(float), minlength=n) > 0
    below_some_tier = o.tier > o.tier_first[o.tier]
    lost = np.bincount(o.item, below_some_tier.astype(float), minlength=n) > 0
    helper = n + o.tier  # helper node of each entry's tier
    src = np.r_[o.item[o.winner], n + o.tier[below_some_tier] - 1, n + o.tier[below_some_tier] - 1]
    dst = np.r_[helper[o.winner], o.item[below_some_tier], n + o.tier[below_some_tier]]
    keep = dst != src
    size = n + len(o.tier_last)
    graph = coo_matrix((np.ones(keep.sum()), (src[keep], dst[keep])), shape=(size, size)).tocsr()
    _, labels = connected_components(graph, directed=True, connection="strong")
    model_labels = labels[:n][present]
    groups: dict[int, list[str]] = {}
    for name, label in zip(np.asarray(names)[present], model_labels, strict=True):
        groups.setdefault(int(label), []).append(str(name))
    components = sorted(groups.values(), key=len, reverse=True)
    return Diagnostics(
        n_models=n,
        n_orderings=len(o.ordering_weight),
        n_entries=len(o.item),
        components=components if len(components) > 1 else [],
        never_win=[names[i] for i in np.flatnonzero(present & ~won)],
        never_lose=[names[i] for i in np.flatnonzero(present & ~lost)],
        unmeasured=[names[i] for i in np.flatnonzero(~present)],
    )


def check(diagnostics: Diagnostics, alpha: float) -> Diagnostics:
    """Raise NotIdentifiedError when alpha = 0 and no MLE exists; else return the diagnostics with the
    models whose scores rest on the prior filled in."""
    d = diagnostics
    if alpha <= 0 and (not d.identified or d.unmeasured):
        problems = []
        if d.unmeasured:
            problems.append(f"never measured: {', '.join(d.unmeasured)}")
        if d.never_win:
            problems.append(f"never win: {', '.join(d.never_win)}")
        if d.never_lose:
            problems.append(f"never lose: {', '.join(d.never_lose)}")
        if d.components:
            sizes = ", ".join(str(len(c)) for c in d.components)
            problems.append(f"the comparison graph splits into {len(d.components)} groups (sizes {sizes})")
        raise NotIdentifiedError(
            "no maximum-likelihood estimate (" + "; ".join(problems) + "); pass alpha > 0 for a prior"
        )
    driven = set(d.never_win) | set(d.never_lose) | set(d.unmeasured)
    if d.components:
        driven |= {m for group in d.components[1:] for m in group}
    return Diagnostics(**{**d.__dict__, "prior_driven": sorted(driven)})
