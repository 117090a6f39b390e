#!/bin/sh
# Counts NVIDIA GPUs on PCI, from sysfs: no pciutils needed, nothing changed. Run by the
# nvidia_driver role (detect.yml) and, over SSH, by `mcpctl preflight`, so both count the same.
# Prints key=value lines: pci_devices=N, nvidia_gpus=M, nvidia_gpu_ids=<device ids, space
# separated, one per GPU>, nvidia_gpu_ids_pre_turing=<those older than Turing>, nvswitches=K
# and turing_first_device_id (the bound below, so messages quote it rather than repeat it). A GPU is NVIDIA's vendor id (0x10de) on a display
# controller (class 0x03xxxx: VGA 0x0300, 3D 0x0302, which data-centre GPUs are); the HDMI
# audio function is not one. An NVSwitch is the same vendor on an "other bridge" (class
# 0x0680xx), which is what HGX boards show; its presence means Fabric Manager must run.
# The device ids let the role choose the kernel module flavor: NVIDIA's open kernel modules
# drive Turing and newer only. NVIDIA numbers its GPUs' PCI device ids by generation, and
# Turing's are the first from 0x1e00 up (TU102 0x1e02..., T4 0x1eb8); everything below is
# Volta (V100 0x1db1-0x1db6), Pascal (P100 0x15f8, 0x1bxx, 0x1cxx) or older, and everything
# above is Turing TU11x (0x2180-0x21ff), Ampere (A100 0x20b0, 0x20f1; GA10x 0x22xx-0x25xx),
# Hopper (H100 0x2330/0x2331, H200 0x2335, GH200 0x2342), Ada (L4 0x27b8) or Blackwell
# (B200 0x2901, GB200 0x2941, 0x2bxx). This bound is the one place that decides.
turing_first_device_id=0x1e00
# A host without PCI (some containers) reports 0 of 0 instead of failing.
# $1: the devices directory, /sys/bus/pci/devices unless given (tests pass a fake tree).
devices="${1:-/sys/bus/pci/devices}"
pci_devices=0
nvidia_gpus=0
nvidia_gpu_ids=""
nvidia_gpu_ids_pre_turing=""
nvswitches=0
for device in "$devices"/*; do
  [ -r "$device/vendor" ] && [ -r "$device/class" ] || continue
  pci_devices=$((pci_devices + 1))
  [ "$(cat "$device/vendor")" = 0x10de ] || continue
  case "$(cat "$device/class")" in
    0x03*)
      nvidia_gpus=$((nvidia_gpus + 1))
      [ -r "$device/device" ] || continue
      device_id="$(cat "$device/device")"
      nvidia_gpu_ids="${nvidia_gpu_ids:+$nvidia_gpu_ids }$device_id"
      [ $((device_id)) -lt $((turing_first_device_id)) ] &&
        nvidia_gpu_ids_pre_turing="${nvidia_gpu_ids_pre_turing:+$nvidia_gpu_ids_pre_turing }$device_id"
      ;;
    0x0680*) nvswitches=$((nvswitches + 1)) ;;
  esac
done
echo "pci_devices=$pci_devices"
echo "nvidia_gpus=$nvidia_gpus"
echo "nvidia_gpu_ids=$nvidia_gpu_ids"
echo "nvidia_gpu_ids_pre_turing=$nvidia_gpu_ids_pre_turing"
echo "nvswitches=$nvswitches"
echo "turing_first_device_id=$turing_first_device_id"
