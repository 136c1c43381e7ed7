//! The fixture charts (`infra/testenv/charts/`), copied under the cache with the pinned Istio
//! CRDs placed into the `base` stand-in. The CRD file is never committed: it comes from the
//! offline mirror and is checked against its sha256 pin.

use std::path::Path;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use super::{Layout, pins::Pins};

/// Where the base stand-in reads the Istio CRDs from (as the upstream chart does).
const ISTIO_CRDS_IN_BASE: &str = "base/files/crd-all.gen.yaml";

pub fn prepare(layout: &Layout, pins: &Pins) -> Result<()> {
    let source = layout.testenv_infra().join("charts");
    let target = layout.charts_dir();
    if target.exists() {
        std::fs::remove_dir_all(&target)
            .with_context(|| format!("removing {}", target.display()))?;
    }
    copy_dir(&source, &target)?;

    let pin = &pins.mirror.istio_crds;
    let mirror = layout.mirror_dir();
    let file = mirror.join(&pin.path);
    let bytes = std::fs::read(&file).with_context(|| {
        format!(
            "reading the Istio CRDs from the mirror ({}); set ENVCTL_MIRROR to the mirror directory",
            file.display()
        )
    })?;
    let sum = hex(&Sha256::digest(&bytes));
    if sum != pin.sha256 {
        bail!(
            "{}: sha256 is {sum}, infra/testenv/versions.yaml pins {}",
            file.display(),
            pin.sha256
        );
    }
    // Into the copy, and into the in-repo chart too (gitignored), so that the `kwok`
    // environment (`infra/envs/kwok.yaml`, charts at `testenv/charts/<name>`) installs the base
    // stand-in with its CRDs.
    for dest in [
        target.join(ISTIO_CRDS_IN_BASE),
        source.join(ISTIO_CRDS_IN_BASE),
    ] {
        std::fs::create_dir_all(dest.parent().expect("has a parent"))?;
        std::fs::write(&dest, &bytes).with_context(|| format!("writing {}", dest.display()))?;
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
