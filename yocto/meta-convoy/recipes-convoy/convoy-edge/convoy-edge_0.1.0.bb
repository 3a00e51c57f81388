SUMMARY = "Convoy edge unit: records a vehicle's IP cameras and syncs with central"
DESCRIPTION = "The edge binary of Convoy, built with cargo from the Convoy workspace: RTSP \
               camera ingest, the media store, the QUIC uplink to central and the local web \
               page, started by systemd with its store on the data partition."
HOMEPAGE = "https://convoy.invalid/"
BUGTRACKER = "https://convoy.invalid/issues"
SECTION = "multimedia"
CVE_PRODUCT = "convoy-edge"

# Convoy itself; the ~300 crates linked in have their own (mostly MIT/Apache-2.0) licenses.
LICENSE = "MIT | Apache-2.0"
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/MIT;md5=0835ade698e0bcf8506ecda2f7b4f302 \
                    file://${COMMON_LICENSE_DIR}/Apache-2.0;md5=89aea4e17d99a7cacdbeed46a0096b10"

# Every crates.io crate of the workspace's Cargo.lock, with its checksum (cargo builds with
# --frozen from what bitbake fetched). Regenerate with yocto/scripts/gen-crates-inc.py.
require ${BPN}-crates.inc

SRC_URI += "\
    file://convoy-edge.service \
    file://no-sd-notify.conf \
    file://edge.toml \
    file://90-convoy-camera-receive-buffers.conf \
"

# The source: the Convoy workspace this layer sits in (this file is
# yocto/meta-convoy/recipes-convoy/convoy-edge/ in it), so the crates .inc above and Cargo.lock
# come from one commit. The workspace's path crates (protocol, link, media-store, mp4-export,
# live-view, web-sessions)
# are in that tree. For a release image, build from a clean checkout of the release tag.
CONVOY_SRCDIR := "${@os.path.normpath('${THISDIR}/../../../..')}"
inherit externalsrc
EXTERNALSRC ?= "${CONVOY_SRCDIR}"
# Do not add oe-workdir/oe-logs symlinks to the Convoy checkout.
EXTERNALSRC_SYMLINKS = ""

inherit cargo systemd useradd

# Build only the edge package of the workspace (still resolved against the root Cargo.lock).
CARGO_SRC_DIR = "edge"
# The unit's build: release with fat link-time optimisation and one codegen unit, the settings
# of the workspace's [profile.unit] (less resident code and CPU per camera; BENCHMARKS.md).
export CARGO_PROFILE_RELEASE_LTO = "fat"
export CARGO_PROFILE_RELEASE_CODEGEN_UNITS = "1"
CARGO_LOCK_PATH = "${S}/Cargo.lock"

# "1" (the default): convoy-edge.service runs as Type=notify with its watchdog; the edge sends
# READY=1 once it records and serves, WATCHDOG=1 while its recorder thread works and STOPPING=1.
# "0": a drop-in makes it Type=exec without a watchdog (e.g. to run an older edge).
CONVOY_EDGE_SD_NOTIFY ??= "1"

USERADD_PACKAGES = "${PN}"
USERADD_PARAM:${PN} = "--system --user-group --no-create-home --home-dir ${localstatedir}/lib/convoy \
                       --shell ${base_sbindir}/nologin convoy"

SYSTEMD_SERVICE:${PN} = "convoy-edge.service"

do_install:append() {
    install -d ${D}${sysconfdir}/convoy
    install -m 0644 ${WORKDIR}/edge.toml ${D}${sysconfdir}/convoy/edge.toml

    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${WORKDIR}/convoy-edge.service ${D}${systemd_system_unitdir}/
    if [ "${CONVOY_EDGE_SD_NOTIFY}" != "1" ]; then
        install -d ${D}${systemd_system_unitdir}/convoy-edge.service.d
        install -m 0644 ${WORKDIR}/no-sd-notify.conf ${D}${systemd_system_unitdir}/convoy-edge.service.d/
    fi

    # Room in UDP receive buffers for a camera's key frame (systemd-sysctl applies it at boot).
    install -d ${D}${sysconfdir}/sysctl.d
    install -m 0644 ${WORKDIR}/90-convoy-camera-receive-buffers.conf ${D}${sysconfdir}/sysctl.d/

    # The data partition's mount point: the root file system is read-only at run time.
    install -d ${D}${localstatedir}/lib/convoy
}

FILES:${PN} += "${systemd_system_unitdir}/convoy-edge.service.d"
CONFFILES:${PN} = "${sysconfdir}/convoy/edge.toml"
