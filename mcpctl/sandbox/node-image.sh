#!/bin/sh
# mmdebstrap customize hook: turns a minbase Debian rootfs ($1) into a test host that boots
# systemd and accepts SSH as `ansible` with passwordless sudo, like a freshly provisioned VM.
set -eu
root="$1"

chroot "$root" useradd --create-home --shell /bin/bash --groups sudo ansible
install -d -m 0700 -o 1000 -g 1000 "$root/home/ansible/.ssh"
printf 'ansible ALL=(ALL) NOPASSWD:ALL\n' > "$root/etc/sudoers.d/ansible"
chmod 0440 "$root/etc/sudoers.d/ansible"

# Each host must get its own host keys at first boot, not share the ones made at build time.
rm -f "$root"/etc/ssh/ssh_host_*
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat > "$root/etc/systemd/system/ssh.service.d/host-keys.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/usr/bin/ssh-keygen -A
ExecStartPre=/usr/sbin/sshd -t
UNIT
# The sandbox bind-mounts the public key here; sshd also reads the usual per-user file.
cat > "$root/etc/ssh/sshd_config.d/mcp-sandbox.conf" <<'SSHD'
AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized/%u
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
SSHD

# systemd creates a fresh machine id per container at boot.
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
# Units that only slow a container's boot or fail in one.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_reap.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin
