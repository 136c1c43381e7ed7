//! The `sso:` section of the environment file is the sso module's: its typed form and rules
//! live here, and `config::load` reports their errors at file, line, column and field.

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use config::ConfigError;

const ENV: &str = "environment.yaml";

/// A copy of `infra/` with one edit of the environment file; the errors of loading it, and
/// the 1-based line and column of `needle` in the edited file.
fn load_with(
    from: &str,
    to: &str,
    needle: &str,
) -> (tempfile::TempDir, PathBuf, Vec<ConfigError>, (usize, usize)) {
    let dir = tempfile::tempdir().unwrap();
    let root = support::copy_infra(dir.path());
    let text = fs::read_to_string(root.join(ENV)).unwrap();
    assert_eq!(text.matches(from).count(), 1, "`{from}` once in {ENV}");
    let text = text.replacen(from, to, 1);
    fs::write(root.join(ENV), &text).unwrap();
    let at = text.find(needle).unwrap();
    let pos = (
        text[..at].matches('\n').count() + 1,
        text[..at].rsplit('\n').next().unwrap().chars().count() + 1,
    );
    let errors = match config::load(&root, None, &xtask::REGISTRY) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.into_iter().collect(),
    };
    let file = root.join(ENV);
    (dir, file, errors, pos)
}

#[test]
fn an_unknown_key_in_the_sso_section_has_its_position() {
    let (_dir, file, errors, pos) = load_with(
        "  clientId: oauth2-proxy",
        "  clientID: oauth2-proxy",
        "clientID",
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    let e = &errors[0];
    assert_eq!(e.message, "unknown key `clientID`");
    assert_eq!((&e.file, e.line, e.column), (&file, pos.0, pos.1));
    assert_eq!(e.field, "sso.clientID");
    assert!(
        e.help
            .as_deref()
            .unwrap()
            .contains("did you mean `clientId`?"),
        "{e}"
    );
}

#[test]
fn an_invalid_client_id_is_refused_at_its_value() {
    let (_dir, file, errors, pos) = load_with(
        "  clientId: oauth2-proxy",
        "  clientId: OAuth2_Proxy",
        "OAuth2_Proxy",
    );
    let e = errors
        .iter()
        .find(|e| e.message.starts_with("invalid client id `OAuth2_Proxy`"))
        .unwrap_or_else(|| panic!("{errors:?}"));
    assert_eq!((&e.file, e.line, e.column), (&file, pos.0, pos.1));
    assert_eq!(e.field, "sso.clientId");
}

/// The module reads its section; `${env.sso.*}` in other modules' files reads the same values
/// (mesh's provider name comes from istiod's values, which read it).
#[test]
fn the_section_is_read_by_the_module_and_by_placeholders() {
    let env = config::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra"),
        None,
        &xtask::REGISTRY,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let settings = sso::settings(&env).unwrap();
    assert_eq!(settings.client_id, "oauth2-proxy");
    assert_eq!(settings.static_user.email, "admin@example.com");
    assert_eq!(
        mesh_provider(&env),
        Some(settings.ext_authz.provider.clone())
    );
}

fn mesh_provider(env: &config::Environment) -> Option<String> {
    env.release("istiod")?
        .values
        .value
        .pointer("/meshConfig/extensionProviders/0/name")?
        .as_str()
        .map(str::to_owned)
}
