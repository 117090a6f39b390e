"""Stream sources: Kafka topics feeding agents through the ingress's routing and coalescing.

`spec` is the agents.yaml section, `kafka` turns it into client settings (secrets read from
files on the node), `offsets` decides what may be committed, `consumer` is the Ray actor that
moves messages from a topic into the agents' lanes and their results back out, and `pool`
is the supervisor's view of a deployment's consumers.
"""
