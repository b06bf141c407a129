"""Accuracy-aware quantisation: return the most sensitive nodes to float until the accuracy budget holds.

Sensitivity is measured, not guessed: each candidate node is quantised on its own, and the error of the
model's logits against the fp32 model on the validation split ranks it. Nodes then go back to float in
that order, one at a time, re-quantising and re-measuring after each, until the validation accuracy drop
is within the budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecv.core.errors import EdgecvError

Quantize = Callable[[Path, Sequence[str], Sequence[str] | None], None]  # (out, exclude, only)
Measure = Callable[[Path], np.ndarray]  # validation logits of a model file


class BudgetError(EdgecvError):
    """The accuracy budget cannot be met."""


@dataclass
class AwareResult:
    """What the accuracy-aware search did: nodes kept in float, in the order they were returned."""

    float_nodes: list[str] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)  # (node, relative logit error)
    steps: list[tuple[str, float]] = field(default_factory=list)  # (node returned, val drop after, pp)


def relative_error(reference: np.ndarray, logits: np.ndarray) -> float:
    """Mean squared logit error relative to the reference's mean squared logit (0 = identical)."""
    ref = reference.astype(np.float64)
    return float(np.mean((logits.astype(np.float64) - ref) ** 2) / max(np.mean(ref ** 2), 1e-12))


def rank_nodes(candidates: Sequence[str], quantize: Quantize, measure: Measure, reference: np.ndarray,
               work: Path, progress: Callable[[str], None]) -> list[tuple[str, float]]:
    """Candidates, most sensitive first: the logit error when only that node is quantised."""
    scores = []
    for i, node in enumerate(candidates, 1):
        progress(f"measuring node sensitivity {i}/{len(candidates)}: {node}")
        path = work / f"only-{i}.onnx"
        quantize(path, (), [node])
        scores.append((node, relative_error(reference, measure(path))))
        path.unlink(missing_ok=True)
    return sorted(scores, key=lambda item: -item[1])


def fit_budget(method: str, out: Path, candidates: Sequence[str], quantize: Quantize,
               drop_of: Callable[[Path], float], measure: Measure, reference: np.ndarray, budget_pp: float,
               max_float_nodes: int | None, work: Path, progress: Callable[[str], None]) -> AwareResult:
    """Leave ``out`` holding a model whose validation drop is at most ``budget_pp`` percentage points, with
    as few nodes in float as the greedy order allows; raise :class:`BudgetError` if none qualifies."""
    result = AwareResult()
    drop = drop_of(out)
    if drop <= budget_pp:
        return result
    if not candidates:
        raise BudgetError(f"{method} loses {drop:.2f} pp of validation accuracy, over the {budget_pp:g} pp "
                          "budget, and has no quantised nodes to return to float")
    result.ranking = rank_nodes(candidates, quantize, measure, reference, work, progress)
    limit = len(candidates) if max_float_nodes is None else min(max_float_nodes, len(candidates))
    for node, _ in result.ranking[:limit]:
        result.float_nodes.append(node)
        progress(f"{method}: {drop:.2f} pp over budget; returning {node} to float "
                 f"({len(result.float_nodes)}/{limit})")
        quantize(out, result.float_nodes, None)
        drop = drop_of(out)
        result.steps.append((node, drop))
        if drop <= budget_pp:
            break
    if drop > budget_pp:
        kept = f"{len(result.float_nodes)} of {len(candidates)} nodes in float"
        hint = " (raise --max-float-nodes)" if limit < len(candidates) else ""
        raise BudgetError(f"{method} cannot meet the {budget_pp:g} pp accuracy budget: with {kept}{hint} it "
                          f"still loses {drop:.2f} pp of validation accuracy; no {method} file was written")
    if len(result.float_nodes) == len(candidates):
        raise BudgetError(f"{method} meets the {budget_pp:g} pp budget only with every quantised node in float, "
                          f"which is the fp32 model; no {method} file was written")
    return result
