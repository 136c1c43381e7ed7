//! Module `sso`: Dex (OIDC provider) and OAuth2 Proxy via Helm, their generated credentials,
//! and the HTTPRoutes that expose them through the gateway.
//!
//! OAuth2 Proxy resolves Dex's public host name inside the cluster through a host alias to
//! Dex's ClusterIP: an output known only after Dex is installed, so OAuth2 Proxy (which runs
//! OIDC discovery at start) always comes after Dex.

pub mod verify;

use config::{ConfigError, Environment, Section, VersionKey, validate};
use engine::{Address, LiveField, Module, Output, OutputRef, ResourceKind};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// This module's name: the first part of its addresses.
pub const NAME: &str = "sso";

/// The module, as xtask's registry lists it.
pub static MODULE: Sso = Sso;

/// Module `sso`: Dex and OAuth2 Proxy.
pub struct Sso;

/// `plan`, `apply` and `destroy` of this module's part (`--module sso`).
impl live::session::ModuleCommands for Sso {
    fn module_name(&self) -> &'static str {
        NAME
    }
}

/// The keys of `versions:` this module reads.
const VERSIONS: &[VersionKey] = &[
    VersionKey::required("dex"),
    VersionKey::required("oauth2Proxy"),
];

/// The key of `hosts:` of Dex (the OIDC issuer is `${env.url.dex}/dex`).
pub const DEX_HOST_KEY: &str = "dex";

/// The keys of `hosts:` this module reads: Dex's, and the protected application's (OAuth2
/// Proxy's `/oauth2` paths and its redirect URI live on that host).
const HOSTS: &[&str] = &[DEX_HOST_KEY, "nginx"];

/// Dex's FQDN (`dex.example.com`), `None` when `hosts:` lacks [`DEX_HOST_KEY`] (loading
/// refuses that while this module is registered).
pub fn dex_fqdn(settings: &config::Settings) -> Option<String> {
    settings.fqdn_of(DEX_HOST_KEY)
}

impl config::ModuleDef for Sso {
    fn name(&self) -> &'static str {
        NAME
    }

    fn outputs(&self) -> &'static [&'static str] {
        &["dex_cluster_ip", "ext_authz_service"]
    }

    fn declare(&self, env: &Environment) -> Result<Module, ConfigError> {
        declare(env)
    }

    fn has_settings(&self) -> bool {
        true
    }

    /// The chart versions of its releases (`versionFrom` in `modules.yaml`).
    fn versions(&self) -> &'static [VersionKey] {
        VERSIONS
    }

    fn hosts(&self) -> &'static [&'static str] {
        HOSTS
    }

    fn check_settings(&self, section: &Section) -> Result<Vec<ConfigError>, ConfigError> {
        Ok(section.parse::<SsoSettings>()?.check(section))
    }
}

/// The `sso:` section of the environment file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SsoSettings {
    /// OIDC client id of OAuth2 Proxy at Dex.
    pub client_id: String,
    pub static_user: StaticUser,
    pub ext_authz: ExtAuthz,
}

/// Dex's static password-DB user. Field names are Dex's own (`staticPasswords[]`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticUser {
    pub email: String,
    pub username: String,
    #[serde(rename = "userID")]
    pub user_id: String,
    /// bcrypt hash (`$2a$10$...`) of the password.
    pub hash: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtAuthz {
    /// Name of the Istio extension provider used by the CUSTOM AuthorizationPolicy.
    pub provider: String,
}

impl SsoSettings {
    /// The values' rules, each error at its field of `section`.
    fn check(&self, section: &Section) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut check = |field: &str, result: Result<(), String>, what: &str, help: &str| {
            if let Err(why) = result {
                errors.push(
                    section
                        .error(field, format!("{what}: {why}"))
                        .with_help(help.to_owned()),
                );
            }
        };
        check(
            "clientId",
            validate::dns_subdomain(&self.client_id),
            &format!("invalid client id `{}`", self.client_id),
            "use lowercase letters, digits and `-`, e.g. `oauth2-proxy`",
        );
        check(
            "staticUser.email",
            validate::email(&self.static_user.email),
            &format!("invalid email `{}`", self.static_user.email),
            "write an address like admin@example.com (it is the login name at Dex)",
        );
        check(
            "staticUser.hash",
            validate::bcrypt_hash(&self.static_user.hash),
            "invalid bcrypt hash",
            "write the bcrypt hash of the password, not the password: \
             htpasswd -bnBC 10 \"\" 'password' | tr -d ':\\n' | sed 's/$2y/$2a/' \
             (and quote it in YAML)",
        );
        for (field, value) in [
            ("staticUser.username", &self.static_user.username),
            ("staticUser.userID", &self.static_user.user_id),
            ("extAuthz.provider", &self.ext_authz.provider),
        ] {
            if value.trim().is_empty() {
                check(
                    field,
                    Err("it is empty".into()),
                    "missing value",
                    "write a value",
                );
            }
        }
        errors
    }
}

/// The `sso:` section of `env` (checked when `env` was loaded).
pub fn settings(env: &Environment) -> Result<SsoSettings, ConfigError> {
    let section = env.section(NAME).ok_or_else(|| {
        env.error_at(
            &env.infra_dir.join("environment.yaml"),
            NAME,
            "the environment has no `sso:` section",
        )
    })?;
    section.parse()
}

/// What the sso module wants.
pub fn declare(env: &Environment) -> Result<Module, ConfigError> {
    let release = |name: &str| {
        Address::new(NAME, ResourceKind::HelmRelease, name).expect("valid release name")
    };
    let mut module = Module::new(NAME);
    module.resources.extend(env.declared_resources(NAME)?);
    if let Some(dex) = env.release("dex") {
        // Read from Service `dex` (the chart names it after the release), once Dex is installed.
        let service = LiveField {
            api_version: "v1".into(),
            kind: "Service".into(),
            namespace: Some(dex.namespace.clone()),
            name: dex.name.clone(),
            pointer: "/spec/clusterIP".into(),
        };
        module = module.with_output(Output::after_apply(
            OutputRef::new(NAME, "dex_cluster_ip"),
            release("dex"),
            service,
        ));
    }
    if let Some(proxy) = env.release("oauth2-proxy") {
        // The service istiod's ext-authz provider calls (infra/mesh/istiod.values.yaml).
        let service = format!("{}.{}.svc.cluster.local", proxy.name, proxy.namespace);
        module = module.with_output(Output::known(
            OutputRef::new(NAME, "ext_authz_service"),
            release("oauth2-proxy"),
            Value::String(service),
        ));
    }
    Ok(module)
}
