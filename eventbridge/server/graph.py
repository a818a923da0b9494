"""Server-side layout of a workflow's node graph, drawn as SVG by the UI templates.

Nodes are placed in layers by their longest distance from a root (a node no other node lists as a
child: the workflow's root node and its exit handler), left to right in the order they are first
reached. Edges follow ``children`` (steps, DAG tasks and step groups all use it in Argo's status).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

NODE_WIDTH = 180
NODE_HEIGHT = 40
GROUP_SIZE = 16
GAP_X = 24
GAP_Y = 36
MARGIN = 16
LABEL_CHARS = 24


@dataclass(frozen=True, slots=True)
class Box:
    id: str
    label: str
    title: str
    phase: str
    type: str
    x: float
    y: float
    width: float
    height: float

    @property
    def small(self) -> bool:
        return self.width < NODE_WIDTH

    @property
    def cx(self) -> float:
        return self.x + self.width / 2


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    path: str


@dataclass(slots=True)
class Graph:
    width: float = 0
    height: float = 0
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _label(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def _is_group(node: dict[str, Any]) -> bool:
    return node.get("type") in ("StepGroup", "TaskGroup")


def layout(workflow: dict[str, Any]) -> Graph:
    """The graph of ``workflow``'s ``status.nodes`` (an empty graph when there are none)."""
    nodes: dict[str, dict[str, Any]] = dict((workflow.get("status") or {}).get("nodes") or {})
    if not nodes:
        return Graph()
    children = {nid: [c for c in (n.get("children") or []) if c in nodes] for nid, n in nodes.items()}
    indegree = dict.fromkeys(nodes, 0)
    for kids in children.values():
        for child in kids:
            indegree[child] += 1
    name = str((workflow.get("metadata") or {}).get("name", ""))
    roots = sorted(
        (nid for nid, count in indegree.items() if count == 0),
        key=lambda nid: (nid != name, str(nodes[nid].get("startedAt") or ""), nid),
    )
    # Kahn's algorithm: longest-path layers; nodes left in a cycle go below everything else.
    depth = dict.fromkeys(nodes, 0)
    order: list[str] = []
    remaining = dict(indegree)
    queue = deque(roots)
    while queue:
        nid = queue.popleft()
        order.append(nid)
        for child in children[nid]:
            depth[child] = max(depth[child], depth[nid] + 1)
            remaining[child] -= 1
            if remaining[child] == 0:
                queue.append(child)
    bottom = max(depth.values(), default=0) + 1
    for nid in nodes:
        if nid not in order:
            depth[nid] = bottom
            order.append(nid)
    layers: dict[int, list[str]] = {}
    for nid in order:
        layers.setdefault(depth[nid], []).append(nid)

    def width_of(nid: str) -> int:
        return GROUP_SIZE if _is_group(nodes[nid]) else NODE_WIDTH

    def layer_width(ids: list[str]) -> int:
        return sum(width_of(n) for n in ids) + GAP_X * (len(ids) - 1)

    widest = max(layer_width(ids) for ids in layers.values())
    graph = Graph(width=widest + 2 * MARGIN)
    positions: dict[str, Box] = {}
    y = float(MARGIN)
    for level in sorted(layers):
        ids = layers[level]
        x = MARGIN + (widest - layer_width(ids)) / 2
        for nid in ids:
            node = nodes[nid]
            w = width_of(nid)
            h = GROUP_SIZE if _is_group(node) else NODE_HEIGHT
            top = y + (NODE_HEIGHT - h) / 2
            display = str(node.get("displayName") or node.get("name") or nid)
            box = Box(
                id=nid,
                label="" if _is_group(node) else _label(display),
                title=f"{node.get('name') or display} ({node.get('type', '')}: {node.get('phase') or 'Pending'})",
                phase=str(node.get("phase") or "Pending"),
                type=str(node.get("type") or ""),
                x=x,
                y=top,
                width=w,
                height=h,
            )
            positions[nid] = box
            graph.boxes.append(box)
            x += w + GAP_X
        y += NODE_HEIGHT + GAP_Y
    graph.height = y - GAP_Y + MARGIN
    for nid, kids in children.items():
        a = positions[nid]
        for child in kids:
            b = positions[child]
            x1, y1, x2, y2 = a.cx, a.y + a.height, b.cx, b.y
            mid = (y1 + y2) / 2
            path = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{mid:.1f} {x2:.1f},{mid:.1f} {x2:.1f},{y2:.1f}"
            graph.edges.append(Edge(nid, child, path))
    return graph
