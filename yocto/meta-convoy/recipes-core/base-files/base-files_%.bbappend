# The Convoy distro's root file system mounts the data partition (label convoy-data, made by
# wic/convoy-ab*.wks) at /var/lib/convoy from its own fstab, so an A/B update that installs a
# new root file system image keeps mounting it. Options:
#   lazytime          mtime updates stay in memory: on every group commit the store overwrites
#                     written blocks, and without lazytime each fdatasync would also write the
#                     log's inode for its new mtime (measured: write amplification 1.0137 → 1.0090
#                     on ext4 without a journal; see BENCHMARKS.md)
#   nofail            a missing or broken data partition does not stop the boot (the unit stays
#                     reachable for diagnosis); convoy-edge.service Requires= the mount instead
#   x-systemd.after   /var/lib is volatile-binds' RAM overlay over the read-only root: mount the
#                     data partition on top of that overlay, never under it
#   pass 2            systemd-fsck checks it before mounting
do_install:append:convoy() {
    printf '\n# Convoy data partition: the media store and the unit configuration\n%s\n' \
        "LABEL=convoy-data  ${localstatedir}/lib/convoy  ext4  noatime,lazytime,nodev,nosuid,noexec,nofail,x-systemd.after=var-volatile-lib.service  0  2" \
        >> ${D}${sysconfdir}/fstab
}
