"""Helpers for reading the synthesized state machines: render the definition JSON, walk it."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

FAIL = "<execution fails>"
PSEUDO = {
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::AccountId": "123456789012",
    "AWS::URLSuffix": "amazonaws.com",
}


def placeholder(node: dict[str, Any]) -> str:
    """Stand-in text for a CloudFormation reference inside a definition."""
    if "Ref" in node:
        return PSEUDO.get(node["Ref"], f"<{node['Ref']}>")
    if "Fn::GetAtt" in node:
        logical_id, attribute = node["Fn::GetAtt"]
        return f"<{logical_id}.{attribute}>"
    raise ValueError(f"unexpected intrinsic in a definition: {node}")


def render(node: Any, resolve: Callable[[dict[str, Any]], str] = placeholder) -> str:
    if isinstance(node, str):
        return node
    if "Fn::Join" in node:
        separator, parts = node["Fn::Join"]
        return separator.join(render(part, resolve) for part in parts)
    return resolve(node)


def machines(template: dict[str, Any]) -> dict[str, str]:
    """Logical ids of the state machines, keyed by workflow name (backup, verify, ...)."""
    found = {}
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::StepFunctions::StateMachine":
            found[logical_id.split("StateMachine")[0].lower()] = logical_id
    return found


def definition(
    template: dict[str, Any],
    logical_id: str,
    resolve: Callable[[dict[str, Any]], str] = placeholder,
) -> dict[str, Any]:
    props = template["Resources"][logical_id]["Properties"]
    return json.loads(render(props["DefinitionString"], resolve))


def _catches_all(state: dict[str, Any]) -> bool:
    return any("States.ALL" in c["ErrorEquals"] for c in state.get("Catch", []))


def edges(state: dict[str, Any]) -> Iterator[str]:
    """Where a state can go next, with FAIL for 'the execution ends here'."""
    kind = state["Type"]
    if kind in ("Succeed", "Fail") or state.get("End"):
        yield FAIL if kind == "Fail" else "<execution ends>"
    if "Next" in state:
        yield state["Next"]
    for rule in state.get("Choices", []):
        yield rule["Next"]
    if "Default" in state:
        yield state["Default"]
    for catch in state.get("Catch", []):
        yield catch["Next"]
    # A task, map or parallel state without a catch-all can end the execution on an error.
    if kind in ("Task", "Map", "Parallel") and not _catches_all(state):
        yield FAIL


def reachable(states: dict[str, Any], start: str) -> set[str]:
    seen, queue = set(), deque([start])
    while queue:
        name = queue.popleft()
        if name in seen or name not in states:
            continue
        seen.add(name)
        queue.extend(edges(states[name]))
    return seen


def paths_skipping(states: dict[str, Any], start: str, guards: set[str]) -> list[list[str]]:
    """Paths from `start` to the end of the execution that pass through none of `guards`."""
    bad: list[list[str]] = []
    queue: deque[list[str]] = deque([[start]])
    seen: set[str] = set()
    while queue:
        path = queue.popleft()
        name = path[-1]
        if name in guards:
            continue
        if name not in states:  # an end marker
            bad.append(path)
            continue
        if name in seen:
            continue
        seen.add(name)
        queue.extend([*path, nxt] for nxt in edges(states[name]))
    return bad


def cycles(states: dict[str, Any]) -> list[list[str]]:
    """Elementary cycles through each state (enough for the small loops used here)."""
    found = []
    for start in states:
        stack = [(start, [start])]
        while stack:
            name, path = stack.pop()
            for nxt in edges(states.get(name, {"Type": "Succeed"})) if name in states else []:
                if nxt == start:
                    found.append(path)
                elif nxt in states and nxt not in path:
                    stack.append((nxt, [*path, nxt]))
    return found
