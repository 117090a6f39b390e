"""Spec texts shared by the tests (imported by name: tests/unit is on sys.path)."""

# Line numbers matter: tests below edit this text and expect errors on specific lines.
VALID_SPEC = """\
name: lab
ssh:
  user: ansible
nodes:
  - name: node1
    address: 10.0.0.1
    role: head
    labels: {rack: a}
  - name: node2
    address: 10.0.0.2
  - name: node3
    address: 10.0.0.3
    gpu: true
"""
