SUMMARY = "Convoy edge unit image"
DESCRIPTION = "A headless image for a Convoy edge unit: systemd, a read-only root file \
               system in one of two A/B slots, and the edge recording to its own data partition."
HOMEPAGE = "https://convoy.invalid/"
BUGTRACKER = "https://convoy.invalid/issues"
SECTION = "images"
LICENSE = "MIT"
# An image has no upstream product of its own: cve-check looks at the packages in it.
CVE_PRODUCT = ""

inherit core-image

IMAGE_FEATURES += "read-only-rootfs"

# The kernel and device trees also go into the root file system, so that each A/B slot carries
# the kernel that matches its modules (a slot-aware boot script would load them from there).
IMAGE_INSTALL = "\
    packagegroup-core-boot \
    convoy-edge \
    e2fsprogs-e2fsck \
    kernel-image \
    kernel-devicetree \
    ${CORE_IMAGE_EXTRA_INSTALL} \
"
IMAGE_LINGUAS = ""

# ext4: the root file system alone, what an A/B updater writes into the inactive slot.
# wic: the whole disk for the first flashing (boot, rootfsA, rootfsB, data); wic.bmap for bmaptool.
IMAGE_FSTYPES = "ext4 wic.bz2 wic.bmap"
WKS_FILE = "convoy-ab.wks"
WKS_FILE:mx8mp = "convoy-ab-imx8mp.wks.in"

# A root file system must fit its slot (1024 MiB in the wks files), this one and every later one.
IMAGE_ROOTFS_MAXSIZE = "1048576"
