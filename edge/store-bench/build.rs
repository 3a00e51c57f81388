//! Records which media-store source the bench is built against (others may be editing it):
//! the workspace's commit and a digest of the uncommitted changes to `edge/media-store`.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=../media-store");
    let script = "cd ../.. && echo \"commit $(git rev-parse --short HEAD)\" && \
                  git diff HEAD --shortstat -- edge/media-store && \
                  echo \"uncommitted diff digest $(git diff HEAD -- edge/media-store | sha256sum | cut -c1-16)\"";
    let version = match Command::new("sh").args(["-c", script]).output() {
        Ok(o) => String::from_utf8_lossy(&o.stdout).trim().replace('\n', "; "),
        Err(e) => format!("unknown ({e})"),
    };
    println!("cargo:rustc-env=MEDIA_STORE_VERSION={version}");
}
