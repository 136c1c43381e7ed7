//! What the tests that load `infra/` with the whole registry share.

use std::fs;
use std::path::{Path, PathBuf};

/// Copies the repository's `infra/` into `dir/infra` and returns that path.
pub fn copy_infra(dir: &Path) -> PathBuf {
    let root = dir.join("infra");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra"),
        &root,
    );
    root
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}
