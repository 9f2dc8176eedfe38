"""A two-node Ray cluster on this machine, for tests: a head node and a second raylet, one CPU
each, started with ``ray.cluster_utils.Cluster``. Run as ``python tests/ray_cluster.py``: it prints
the cluster's address once both nodes are up, and shuts the cluster down when its stdin closes
(so it goes with the test that started it, however that test ends)."""

from __future__ import annotations

import sys

from operators.core.env import apply_offline_defaults

NODE = {"num_cpus": 1, "object_store_memory": 256 << 20}


def main() -> None:
    apply_offline_defaults()
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    print(cluster.address, flush=True)
    try:
        sys.stdin.read()
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
