"""The typed node inventory the provisioning components take (built by the stack program)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True, kw_only=True)
class Taint:
    key: str
    value: str
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"]


@dataclass(frozen=True, kw_only=True)
class Node:
    name: str
    address: str
    arch: Literal["amd64", "arm64"]
    board: Literal["generic", "rpi4", "rpi5"]
    role: Literal["control-plane", "worker"]
    host_key: str
    ssh_user: str
    ssh_port: int = 22
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[Taint, ...] = ()

    @property
    def is_pi(self) -> bool:
        return self.board in ("rpi4", "rpi5")

    def node_labels(self) -> dict[str, str]:
        """Labels applied to the Kubernetes node: board, role and the user's own."""
        return {
            "naomi.io/board": self.board,
            "naomi.io/role": self.role,
            **self.labels,
        }
