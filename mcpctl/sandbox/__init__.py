"""`mcpctl sandbox`: real test hosts (systemd-booted Debian containers under rootful Podman)."""
