"""The Ray cluster's nodes as the head's GCS sees them, as JSON; used by the ray_cluster role.

    ray_nodes.py GCS_ADDRESS [--expect JSON]

Talks to the GCS directly (no dashboard needed, no driver started). The token comes from
RAY_AUTH_MODE / RAY_AUTH_TOKEN_PATH in the environment, as for any Ray client. With
--expect '{"node2": {"CPU": 2, "GPU": 0}}' it exits 1 unless every named node is alive with
those CPU and GPU counts, and names the ones that are not.
"""

import argparse
import json
import sys

from ray._raylet import GcsClient
from ray.core.generated import gcs_pb2


def cluster_nodes(address: str) -> list[dict]:
    infos = GcsClient(address=address).get_all_node_info(timeout=10)
    return [
        {
            "name": info.node_name,
            "address": info.node_manager_address,
            "alive": info.state == gcs_pb2.GcsNodeInfo.ALIVE,
            "resources": {key: value for key, value in info.resources_total.items()},
        }
        for info in infos.values()
    ]


def problems(nodes: list[dict], expected: dict[str, dict[str, float]]) -> dict[str, str]:
    """Node name -> what is wrong with it, for each expected node that is not as expected."""
    alive = {node["name"]: node for node in nodes if node["alive"]}
    found = {}
    for name, wanted in sorted(expected.items()):
        if name not in alive:
            found[name] = "not alive in the cluster"
            continue
        wrong = [
            f"{resource} is {alive[name]['resources'].get(resource, 0):g}, expected {count:g}"
            for resource, count in wanted.items()
            if float(alive[name]["resources"].get(resource, 0)) != float(count)
        ]
        if wrong:
            found[name] = ", ".join(wrong)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("address")
    parser.add_argument("--expect", type=json.loads)
    args = parser.parse_args()
    nodes = cluster_nodes(args.address)
    missing = problems(nodes, args.expect) if args.expect else {}
    print(json.dumps({"nodes": nodes, "problems": missing}))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
