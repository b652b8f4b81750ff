#!/usr/bin/env bash
# image/build.sh - builds the Larder appliance disk image (build/image/larder.raw) from Debian bookworm.
#
#   image/build.sh [--deb build/deb/larder_<v>_amd64.deb] [--out build/image/larder.raw]
#
# debootstrap + our own assembly, not mkosi: mkosi 14 (bookworm's) partitions and fills the disk through loop
# devices and mounts, which containers and CI runners often refuse, and its bookworm version predates the options
# we would need to steer it. Here nothing is mounted and no loop device is used: the root is a plain directory (a
# chroot), the filesystems are written into the disk file at their offsets by `mkfs.ext4 -d` and mtools, the
# partition table by sfdisk, and GRUB's i386-pc core image is written into the gap after the MBR by dd. Needs root
# (the chroot, file ownership) and these host packages: debootstrap grub-pc-bin grub-efi-amd64-bin fdisk mtools
# dosfstools e2fsprogs zstd.
#
# Layout (MBR, so one disk boots from BIOS and from UEFI, and growpart can grow the last partition):
#   sectors 1..2047  GRUB i386-pc core.img (boot.img's code in the MBR)
#   p1  32 MiB FAT32, type ef   EFI system partition: EFI/BOOT/BOOTX64.EFI (GRUB x86_64-efi)
#   p2  rest, ext4, type 83     the root filesystem (label larder-root); grown to the disk at first boot
# Both GRUBs carry their modules and an early config that finds the root by its filesystem UUID and reads
# /boot/grub/grub.cfg there, which boots /vmlinuz and /initrd.img (Debian keeps those links current on kernel
# upgrades).
#
# The base root (debootstrap + kernel + systemd + the .deb's dependencies) is cached as a tarball under
# /var/tmp/larder-image-cache/, keyed by the package list, so a rebuild only unpacks it and installs the .deb.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SUITE=bookworm
MIRROR=${LARDER_IMAGE_MIRROR:-http://deb.debian.org/debian}
KERNEL=${LARDER_IMAGE_KERNEL:-linux-image-amd64}
CACHE=${LARDER_IMAGE_CACHE:-/var/tmp/larder-image-cache}
OUT=$REPO/build/image/larder.raw
DEB=""
BASE_ONLY=0
ROOT_EXTRA_MB=${LARDER_IMAGE_FREE_MB:-512} # free space in the root filesystem of the image as shipped

while [ $# -gt 0 ]; do
    case "$1" in
    --deb) DEB=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --base-only) BASE_ONLY=1; shift ;; # only build (and cache) the base root
    *) echo "usage: $0 [--deb FILE.deb] [--out FILE.raw]" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" = 0 ] || { echo "image/build.sh: needs root (debootstrap, chroot)" >&2; exit 1; }
if [ -z "$DEB" ]; then
    DEB=$(ls -t "$REPO"/build/deb/larder_*_amd64.deb 2>/dev/null | head -1 || true)
fi
if [ "$BASE_ONLY" = 0 ]; then
    [ -n "$DEB" ] && [ -f "$DEB" ] || { echo "image/build.sh: no larder .deb (run make deb, or pass --deb)" >&2; exit 1; }
    DEB=$(cd "$(dirname "$DEB")" && pwd)/$(basename "$DEB")
fi

for t in debootstrap sfdisk mkfs.ext4 mkfs.vfat mcopy grub-mkimage zstd; do
    command -v "$t" >/dev/null || { echo "image/build.sh: $t missing (scripts/install-deps)" >&2; exit 1; }
done

T0=$SECONDS
say() { printf '[image %4ds] %s\n' $((SECONDS - T0)) "$*" >&2; }

# What the base root holds. The larder .deb's own dependencies are here too (its libraries, git, gpgv,
# ca-certificates), so that installing the .deb needs no network once the base is cached.
PACKAGES="systemd systemd-sysv systemd-resolved udev dbus $KERNEL initramfs-tools zstd
  ca-certificates git gpgv fdisk e2fsprogs iproute2 kmod procps less
  libh2o-evloop0.13 libyaml-0-2 libcurl4 libjansson4 libyajl2 liblzma5 libsystemd0 libssl3 zlib1g librocksdb7.8"
PACKAGES=$(echo $PACKAGES)
KEY=$(printf '%s|%s|%s|v1' "$SUITE" "$MIRROR" "$PACKAGES" | sha256sum | cut -c1-16)
BASE_TAR=$CACHE/base-$SUITE-$KEY.tar.zst

WORK=$(mktemp -d "${TMPDIR:-/var/tmp}/larder-image.XXXXXX")
ROOT=$WORK/root
MOUNTS=()
cleanup() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

chroot_mounts() {
    mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc")
    mount -t sysfs sysfs "$ROOT/sys" && MOUNTS+=("$ROOT/sys")
    mount --bind /dev "$ROOT/dev" && MOUNTS+=("$ROOT/dev")
    mount -t devpts devpts "$ROOT/dev/pts" -o newinstance && MOUNTS+=("$ROOT/dev/pts") || true
}
chroot_umounts() {
    local i
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
    MOUNTS=()
}
in_root() { LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive chroot "$ROOT" "$@"; }

# ---- the base root (cached) -------------------------------------------------------------------------------------
mkdir -p "$CACHE" "$ROOT"
if [ ! -f "$BASE_TAR" ]; then
    say "debootstrap $SUITE (minbase) from $MIRROR; cached afterwards as $BASE_TAR"
    debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -30 "$WORK/debootstrap.log" >&2; exit 1; }
    cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb http://security.debian.org/debian-security $SUITE-security main
EOF
    # no docs, man pages or locales beyond the copyright files: the image stays small
    cat >"$ROOT/etc/dpkg/dpkg.cfg.d/01-larder-image-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-include /usr/share/doc/larder/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
EOF
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"$ROOT/etc/apt/apt.conf.d/01-larder-image"
    # a small initramfs: only the drivers a VM's or a server's root disk needs (MODULES=dep cannot see the
    # target's disk from a chroot)
    mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
    printf 'MODULES=list\nCOMPRESS=zstd\n' >"$ROOT/etc/initramfs-tools/conf.d/larder-image.conf"
    mkdir -p "$ROOT/etc/initramfs-tools"
    printf '%s\n' virtio_pci virtio_blk virtio_scsi sd_mod ahci ata_piix nvme xen-blkfront hv_storvsc vmw_pvscsi \
        ext4 >"$ROOT/etc/initramfs-tools/modules"
    chroot_mounts
    say "installing the base packages"
    in_root apt-get update -qq >"$WORK/apt.log" 2>&1 || { tail -30 "$WORK/apt.log" >&2; exit 1; }
    # shellcheck disable=SC2086
    in_root apt-get install -y -qq $PACKAGES >>"$WORK/apt.log" 2>&1 || { tail -40 "$WORK/apt.log" >&2; exit 1; }
    in_root apt-get clean
    chroot_umounts
    rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/log/*.log
    say "caching the base root"
    tar -C "$ROOT" --numeric-owner --xattrs -cf - . | zstd -q -T0 -o "$BASE_TAR.tmp"
    mv "$BASE_TAR.tmp" "$BASE_TAR"
    # bases of other package lists are stale
    find "$CACHE" -maxdepth 1 -name "base-$SUITE-*.tar.zst" ! -name "$(basename "$BASE_TAR")" -delete
else
    say "base root from $BASE_TAR"
    zstd -dc "$BASE_TAR" | tar -C "$ROOT" --numeric-owner --xattrs -xf -
fi
[ "$BASE_ONLY" = 1 ] && { say "base root ready"; exit 0; }

# ---- larder and the appliance's own files -----------------------------------------------------------------------
say "installing $(basename "$DEB")"
cp "$DEB" "$ROOT/tmp/larder.deb"
chroot_mounts
# no service starts inside the build (there is no systemd running here anyway)
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
if ! in_root dpkg -i /tmp/larder.deb >"$WORK/deb.log" 2>&1; then
    # a dependency the base lacks: apt resolves it (needs the mirror)
    in_root apt-get update -qq >>"$WORK/deb.log" 2>&1 && in_root apt-get install -y -qq -f >>"$WORK/deb.log" 2>&1 ||
        { tail -30 "$WORK/deb.log" >&2; exit 1; }
fi
if [ -n "${LARDER_IMAGE_SSH_KEY:-}" ]; then
    # SSH on request: key logins for root only; host keys are made at first boot (larder-firstboot)
    say "adding openssh-server and root's authorized key $LARDER_IMAGE_SSH_KEY"
    in_root apt-get update -qq >>"$WORK/deb.log" 2>&1 && in_root apt-get install -y -qq openssh-server >>"$WORK/deb.log" 2>&1 ||
        { tail -30 "$WORK/deb.log" >&2; exit 1; }
    install -d -m 0700 "$ROOT/root/.ssh"
    install -m 0600 "$LARDER_IMAGE_SSH_KEY" "$ROOT/root/.ssh/authorized_keys"
    printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n' \
        >"$ROOT/etc/ssh/sshd_config.d/larder-image.conf"
    in_root apt-get clean
fi
rm -f "$ROOT/tmp/larder.deb" "$ROOT/usr/sbin/policy-rc.d"
cp -a "$HERE/rootfs/." "$ROOT/"
mkdir -p "$ROOT/usr/share/doc/larder/image"
cp "$HERE/README.md" "$ROOT/usr/share/doc/larder/image/README.md"
# the image carries no admin token: the .deb's postinst made one for this build root (/etc/larder/admin.token);
# each machine gets its own at first boot (larder-firstboot)
tokfile=$(in_root /usr/lib/larder-image/admin-token path /etc/larder/larder.yaml || echo /etc/larder/admin.token)
rm -f "$ROOT$tokfile"
if in_root /usr/lib/larder-image/admin-token get /etc/larder/larder.yaml >/dev/null; then
    echo "image/build.sh: /etc/larder/larder.yaml sets an admin token: the image would share it" >&2; exit 1
fi
in_root systemctl enable larder.service larder-firstboot.service larder-console.service systemd-networkd.service \
    systemd-resolved.service >/dev/null 2>&1
# what an appliance does not need at boot, or ever
in_root systemctl set-default multi-user.target >/dev/null 2>&1
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
    systemd-timesyncd.service >/dev/null 2>&1 || true
ln -sf /run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
echo larder >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tlarder\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# no passwords: root is locked (see image/README.md for giving it a key or a password)
in_root passwd -l root >/dev/null
# every machine made from the image gets its own identity at first boot
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_* "$ROOT/var/lib/systemd/random-seed"
in_root update-initramfs -u >"$WORK/initramfs.log" 2>&1 || { tail -20 "$WORK/initramfs.log" >&2; exit 1; }
chroot_umounts
# smaller: what debootstrap installed before the no-docs rule (documentation, man pages, translations), and the
# kernel modules no appliance loads (sound, graphics, cameras and TV, wireless, Bluetooth, InfiniBand, sensors of
# industrial I/O, staging); a kernel upgrade brings them back, harmlessly
find "$ROOT/usr/share/doc" -mindepth 1 -not -name copyright -not -path '*/doc/larder*' \( -type f -o -type l \) -delete
find "$ROOT/usr/share/doc" -mindepth 1 -type d -empty -delete
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* "$ROOT"/usr/share/lintian
for kdir in "$ROOT"/lib/modules/*/kernel; do
    (cd "$kdir" && rm -rf sound drivers/gpu drivers/media drivers/net/wireless net/wireless net/mac80211 \
        drivers/bluetooth net/bluetooth drivers/infiniband drivers/iio drivers/staging drivers/comedi drivers/isdn \
        drivers/nfc net/nfc lib/test_bpf.ko)
    in_root depmod -a "$(basename "$(dirname "$kdir")")"
done
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/debconf/*-old \
    "$ROOT"/var/log/apt/* "$ROOT"/var/log/dpkg.log "$ROOT"/tmp/* "$ROOT"/var/tmp/*
KVER=$(basename "$(readlink -f "$ROOT/vmlinuz")" | sed 's/^vmlinuz-//')
[ -f "$ROOT/boot/vmlinuz-$KVER" ] && [ -f "$ROOT/boot/initrd.img-$KVER" ] ||
    { echo "image/build.sh: no kernel or initrd in the root" >&2; exit 1; }

# ---- the disk ---------------------------------------------------------------------------------------------------
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
CMDLINE="root=UUID=$ROOT_UUID ro quiet console=tty0 console=ttyS0,115200n8"
cat >"$ROOT/etc/fstab" <<EOF2
# the root filesystem; larder-firstboot grows it (and its partition) to the disk on the first boot
UUID=$ROOT_UUID / ext4 errors=remount-ro 0 1
EOF2
mkdir -p "$ROOT/boot/grub"
cat >"$ROOT/boot/grub/grub.cfg" <<EOF2
# Larder appliance. /vmlinuz and /initrd.img are the links Debian keeps on the newest kernel.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
menuentry 'Larder appliance (Debian $SUITE)' {
    linux /vmlinuz $CMDLINE
    initrd /initrd.img
}
EOF2
cat >"$WORK/early.cfg" <<EOF2
search --no-floppy --fs-uuid --set=root $ROOT_UUID
set prefix=(\$root)/boot/grub
configfile (\$root)/boot/grub/grub.cfg
EOF2
GRUB_MODS="part_msdos ext2 fat search search_fs_uuid normal configfile linux echo serial terminal test boot sleep"
grub-mkimage -O i386-pc -d /usr/lib/grub/i386-pc -o "$WORK/core.img" -c "$WORK/early.cfg" -p /boot/grub \
    biosdisk $GRUB_MODS
grub-mkimage -O x86_64-efi -d /usr/lib/grub/x86_64-efi -o "$WORK/BOOTX64.EFI" -c "$WORK/early.cfg" -p /boot/grub \
    $GRUB_MODS efi_gop all_video
CORE_SECTORS=$((($(stat -c %s "$WORK/core.img") + 511) / 512))
[ "$CORE_SECTORS" -lt 2047 ] || { echo "image/build.sh: GRUB core.img too big for the MBR gap" >&2; exit 1; }

ESP_MB=32
USED_MB=$(du -sxm "$ROOT" | cut -f1)
ROOT_MB=$((USED_MB * 115 / 100 + ROOT_EXTRA_MB))
DISK_MB=$((1 + ESP_MB + ROOT_MB))
P1_START=2048
P1_SECTORS=$((ESP_MB * 2048))
P2_START=$((P1_START + P1_SECTORS))
say "assembling the disk: ${DISK_MB} MiB (root: ${USED_MB} MiB used, ${ROOT_MB} MiB filesystem), kernel $KVER"
mkdir -p "$(dirname "$OUT")"
TMP_OUT=$OUT.tmp
rm -f "$TMP_OUT"
truncate -s "${DISK_MB}M" "$TMP_OUT"
sfdisk -q "$TMP_OUT" <<EOF2
label: dos
$P1_START,$P1_SECTORS,ef
$P2_START,,83,*
EOF2
# the EFI system partition: GRUB for UEFI at the removable-media path, so no NVRAM entry is needed
mkfs.vfat -C -n LARDER-ESP "$WORK/esp.img" $((ESP_MB * 1024)) >/dev/null
mmd -i "$WORK/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$WORK/esp.img" "$WORK/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
dd if="$WORK/esp.img" of="$TMP_OUT" bs=512 seek=$P1_START conv=notrunc,sparse status=none
# the root filesystem, written straight into its partition (nothing mounted)
mkfs.ext4 -q -F -L larder-root -U "$ROOT_UUID" -d "$ROOT" -E "offset=$((P2_START * 512)),nodiscard" \
    "$TMP_OUT" "$((ROOT_MB * 1024))k"
# BIOS: boot.img's code in the MBR (the partition table after byte 440 stays), core.img in sectors 1..
dd if=/usr/lib/grub/i386-pc/boot.img of="$TMP_OUT" bs=440 count=1 conv=notrunc status=none
# as grub-install does for a hard disk: ignore the BIOS's boot-drive number check (buggy BIOSes pass 0 or 1)
printf '\x90\x90' | dd of="$TMP_OUT" bs=1 seek=$((0x66)) conv=notrunc status=none
dd if="$WORK/core.img" of="$TMP_OUT" bs=512 seek=1 conv=notrunc status=none
sfdisk -q --verify "$TMP_OUT" >/dev/null 2>&1 || { echo "image/build.sh: the partition table does not verify" >&2; exit 1; }
mv "$TMP_OUT" "$OUT"
say "built $OUT: $(du -h --apparent-size "$OUT" | cut -f1) ($(du -h "$OUT" | cut -f1) allocated), in $((SECONDS - T0)) s"
