"""The node classes of the topology graph, by local name and as IRIs."""

from __future__ import annotations

from selfheal_kg.kg.namespaces import SHK

NODE_CLASSES = ("Service", "ServiceInstance", "Host", "Database", "Queue", "ExternalService")
NODE_CLASS_IRIS = frozenset(SHK[c] for c in (*NODE_CLASSES, "Node"))
