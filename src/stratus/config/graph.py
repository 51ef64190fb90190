"""The step graph implied by a pipeline's inputs: edges, order and cycles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["find_cycle", "parse_input", "step_dependencies", "topological_order"]


def parse_input(ref: str) -> tuple[str | None, str]:
    """``"dataset:raw"`` → ``(None, "raw")``; ``"train.model"`` → ``("train", "model")``."""
    if ref.startswith("dataset:"):
        return None, ref.split(":", 1)[1]
    step, output = ref.split(".", 1)
    return step, output


def step_dependencies(inputs: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """For each step, the distinct steps whose outputs it reads, in the order first read."""
    deps: dict[str, list[str]] = {}
    for step, refs in inputs.items():
        seen: list[str] = []
        for ref in refs:
            producer, _ = parse_input(ref)
            if producer is not None and producer not in seen:
                seen.append(producer)
        deps[step] = seen
    return deps


def find_cycle(deps: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as ``[a, b, ..., a]`` following data flow, or None; deterministic for a given file."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for producer in deps.get(node, ()):
            if state.get(producer) == 1:
                # The stack runs consumer → producer; reversed, it follows the data, and the cycle closes
                # on its own first element (not on ``producer``, which is its last).
                loop = list(reversed(stack[stack.index(producer) :]))
                return [*loop, loop[0]]
            if producer not in state:
                found = visit(producer)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in deps:
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def topological_order(deps: Mapping[str, Sequence[str]]) -> list[str]:
    """Producers before consumers, ties broken by file order so plans are stable across runs."""
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> None:
        if node in done:
            return
        done.add(node)
        for producer in deps.get(node, ()):
            visit(producer)
        order.append(node)

    for node in deps:
        visit(node)
    return order
