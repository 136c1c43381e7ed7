//! Tidy test: every pinned Gateway API file in `infra/pins/gateway-api.yaml` matches the
//! upstream file byte for byte (its sha256) and names exactly the objects the file holds, so that
//! plans made before fetching (render, graph, plan --offline) name the right objects. Reads the
//! offline mirror of the upstream files, which CI lays beside the clone (`../shared/mirror`).

use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn pins_match_the_upstream_files_and_name_their_objects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mirror = root.join("../shared/mirror");
    assert!(
        mirror.is_dir(),
        "{} is missing: the shared mirror lies beside the clone",
        mirror.display()
    );
    let pins: Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("infra/pins/gateway-api.yaml")).unwrap(),
    )
    .unwrap();
    let base = pins["baseUrl"].as_str().unwrap();
    let mut checked = 0;
    for (version, release) in pins["releases"].as_object().unwrap() {
        for file in release["files"].as_array().unwrap() {
            let name = file["name"].as_str().unwrap();
            let url = base.replace("{version}", version).replace("{file}", name);
            let path = mirror.join(url.strip_prefix("https://").unwrap());
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(
                hex(&Sha256::digest(&bytes)),
                file["sha256"].as_str().unwrap(),
                "sha256 of {url}"
            );
            let docs: Vec<Value> =
                serde_saphyr::from_multiple(std::str::from_utf8(&bytes).unwrap()).unwrap();
            let actual: Vec<Value> = docs
                .iter()
                .filter(|d| !d.is_null())
                .map(|d| {
                    let mut o = serde_json::json!({"apiVersion": d["apiVersion"], "kind": d["kind"], "name": d["metadata"]["name"]});
                    if d["kind"] == "CustomResourceDefinition" {
                        o["defines"] = d["spec"]["names"]["kind"].clone();
                    }
                    o
                })
                .collect();
            assert_eq!(
                file["objects"].as_array().unwrap(),
                &actual,
                "objects of {url}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 14, "v1.3.0 has 5 files, v1.5.1 has 9");
}
