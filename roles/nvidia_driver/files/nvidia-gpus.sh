#!/bin/sh
# Counts NVIDIA GPUs on PCI, from sysfs: no pciutils needed, nothing changed. Run by the
# nvidia_driver role (detect.yml) and, over SSH, by `mcpctl preflight`, so both count the same.
# Prints two key=value lines: pci_devices=N and nvidia_gpus=M. A GPU is NVIDIA's vendor id
# (0x10de) on a display controller (class 0x03xxxx: VGA 0x0300, 3D 0x0302, which data-centre
# GPUs are); the HDMI audio function and NVSwitch bridges of the same vendor are not GPUs.
# A host without PCI (some containers) reports 0 of 0 instead of failing.
# $1: the devices directory, /sys/bus/pci/devices unless given (tests pass a fake tree).
devices="${1:-/sys/bus/pci/devices}"
pci_devices=0
nvidia_gpus=0
for device in "$devices"/*; do
  [ -r "$device/vendor" ] && [ -r "$device/class" ] || continue
  pci_devices=$((pci_devices + 1))
  [ "$(cat "$device/vendor")" = 0x10de ] || continue
  case "$(cat "$device/class")" in 0x03*) nvidia_gpus=$((nvidia_gpus + 1)) ;; esac
done
echo "pci_devices=$pci_devices"
echo "nvidia_gpus=$nvidia_gpus"
