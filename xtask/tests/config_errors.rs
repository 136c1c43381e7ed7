//! Every kind of mistake in `infra/` is reported with file, line, column, field and help.
//!
//! Each test copies the real `infra/` into a temp dir, breaks one thing, and checks the error.

#[path = "support/infra_copy.rs"]
mod infra_copy;
mod support;

use std::fs;
use std::path::Path;

use infra_copy::{Infra, render};

const ENV: &str = "environment.yaml";

#[test]
fn unknown_key_suggests_the_closest() {
    let infra = Infra::copy();
    infra.edit(ENV, "hostPort: 80", "hostPrt: 80");
    let e = infra.expect(
        None,
        "unknown key `hostPrt`",
        ENV,
        infra.pos(ENV, "", "hostPrt"),
        "cluster.kind.hostPrt",
    );
    assert!(e.help.unwrap().contains("did you mean `hostPort`?"));
}

#[test]
fn wrong_type() {
    let infra = Infra::copy();
    infra.edit(ENV, "nodePort: 30080", "nodePort: thirty");
    infra.expect(
        None,
        "wrong type: expected u16",
        ENV,
        infra.pos(ENV, "nodePort:", "thirty"),
        "cluster.kind.nodePort",
    );
}

#[test]
fn unknown_enum_value() {
    let infra = Infra::copy();
    infra.edit(ENV, "provider: kind", "provider: kidn");
    let e = infra.expect(
        None,
        "unknown value `kidn`",
        ENV,
        infra.pos(ENV, "provider:", "kidn"),
        "cluster.provider",
    );
    assert!(e.help.unwrap().contains("did you mean `kind`?"));
}

#[test]
fn missing_key() {
    let infra = Infra::copy();
    infra.edit(ENV, "domain: example.com\n", "");
    let e = infra.expect(
        None,
        "missing key `domain`",
        ENV,
        infra.pos(ENV, "", "name: default"),
        "domain",
    );
    assert_eq!(e.help.as_deref(), Some("add `domain:` here"));
}

#[test]
fn invalid_host_name() {
    let infra = Infra::copy();
    infra.edit(ENV, "nginx: nginx", "nginx: Nginx_App");
    infra.expect(
        None,
        "invalid host name `Nginx_App`",
        ENV,
        infra.pos(ENV, "nginx: ", "Nginx_App"),
        "hosts.nginx",
    );
}

/// `hosts:` holds the keys the modules declare (`ModuleDef::hosts`): a misspelt one is
/// refused at its key, with the closest declared key.
#[test]
fn unknown_host_key_names_the_closest_declared_one() {
    let infra = Infra::copy();
    infra.edit(ENV, "  dex: dex\n", "  dex: dex\n  dexx: auth\n");
    let e = infra.expect(
        None,
        "unknown key `dexx`",
        ENV,
        infra.pos(ENV, "hosts:", "dexx"),
        "hosts.dexx",
    );
    assert!(
        e.help.unwrap().contains("did you mean `dex`?"),
        "the sso module declares dex"
    );
}

/// A host key a module declares (sso's `dex`) must be written.
#[test]
fn missing_declared_host_key() {
    let infra = Infra::copy();
    infra.edit(ENV, "  dex: dex\n", "");
    let e = infra.expect(
        None,
        "missing key `dex`",
        ENV,
        infra.pos(ENV, "hosts:", "nginx: nginx"),
        "hosts",
    );
    assert_eq!(e.help.as_deref(), Some("add `dex:` here"));
}

/// Two host keys with the same host name: refused at the second, naming the first.
#[test]
fn two_host_keys_with_one_host_name() {
    let infra = Infra::copy();
    infra.edit(ENV, "  dex: dex\n", "  dex: nginx\n");
    let e = infra.expect(
        None,
        "`nginx` is also the host of `nginx`",
        ENV,
        infra.pos(ENV, "  dex: nginx", "nginx"),
        "hosts.dex",
    );
    assert!(e.message.starts_with("hosts clash:"), "{e}");
}

#[test]
fn invalid_cluster_name() {
    let infra = Infra::copy();
    infra.edit(
        "envs/staging.yaml",
        "name: istio-staging",
        "name: istio.staging",
    );
    infra.expect(
        Some("staging"),
        "invalid cluster name `istio.staging`",
        "envs/staging.yaml",
        infra.pos("envs/staging.yaml", "", "istio.staging"),
        "cluster.name",
    );
}

#[test]
fn host_port_zero() {
    let infra = Infra::copy();
    infra.edit(ENV, "hostPort: 80", "hostPort: 0");
    infra.expect(
        None,
        "hostPort must be between 1 and 65535",
        ENV,
        infra.pos(ENV, "hostPort:", "0"),
        "cluster.kind.hostPort",
    );
}

#[test]
fn host_port_too_large() {
    let infra = Infra::copy();
    infra.edit(ENV, "hostPort: 80", "hostPort: 70000");
    infra.expect(
        None,
        "number out of range: integer `70000`",
        ENV,
        infra.pos(ENV, "", "70000"),
        "cluster.kind.hostPort",
    );
}

#[test]
fn node_port_outside_the_nodeport_range() {
    let infra = Infra::copy();
    infra.edit(ENV, "nodePort: 30080", "nodePort: 8080");
    infra.expect(
        None,
        "nodePort must be in Kubernetes' NodePort range",
        ENV,
        infra.pos(ENV, "nodePort:", "8080"),
        "cluster.kind.nodePort",
    );
}

#[test]
fn host_ports_of_two_kind_environments_clash() {
    let infra = Infra::copy();
    infra.edit("envs/staging.yaml", "hostPort: 8080", "hostPort: 80");
    let e = infra.expect(
        Some("staging"),
        "hostPort 80 clashes with environment `default`",
        "envs/staging.yaml",
        infra.pos("envs/staging.yaml", "hostPort:", "80"),
        "cluster.kind.hostPort",
    );
    assert!(e.help.unwrap().contains("8080"));
}

#[test]
fn invalid_listen_address() {
    let infra = Infra::copy();
    infra.edit(ENV, "listenAddress: 127.0.0.1", "listenAddress: localhost");
    infra.expect(
        None,
        "invalid listenAddress",
        ENV,
        infra.pos(ENV, "listenAddress:", "localhost"),
        "cluster.kind.listenAddress",
    );
}

#[test]
fn missing_values_file_points_at_the_index() {
    let infra = Infra::copy();
    fs::remove_file(infra.path("sso/dex.values.yaml")).unwrap();
    infra.expect(
        None,
        "values file",
        "modules.yaml",
        infra.pos("modules.yaml", "values: sso/dex", "sso/dex"),
        "sso.releases[0].values",
    );
}

#[test]
fn local_chart_path_that_does_not_exist() {
    let infra = Infra::copy();
    infra.edit(
        "envs/kwok.yaml",
        "charts:\n",
        "charts:\n  dex:\n    path: charts/dexx\n",
    );
    let e = infra.expect(
        Some("kwok"),
        "charts/dexx` does not exist",
        "envs/kwok.yaml",
        infra.pos("envs/kwok.yaml", "", "charts/dexx"),
        "charts.dex.path",
    );
    assert!(e.help.unwrap().contains("relative to"));
}

#[test]
fn overlay_values_that_are_not_a_mapping() {
    let infra = Infra::copy();
    infra.edit(
        "envs/kwok.yaml",
        "charts:\n",
        "charts:\n  dex:\n    values: [a]\n",
    );
    infra.expect(
        Some("kwok"),
        "values must be a mapping, not a list",
        "envs/kwok.yaml",
        infra.pos("envs/kwok.yaml", "values: [a]", "[a]"),
        "charts.dex.values",
    );
}

#[test]
fn chart_for_an_unknown_release() {
    let infra = Infra::copy();
    infra.edit(ENV, "  istiod:\n", "  istiodd:\n");
    let errors = infra.errors(None);
    let e = errors
        .iter()
        .find(|e| e.message.contains("`istiodd` is not a release"))
        .expect("unknown chart key");
    assert_eq!((e.line, e.column), infra.pos(ENV, "", "istiodd"));
    assert_eq!(e.field, "charts.istiodd");
    assert!(e.help.as_ref().unwrap().contains("did you mean `istiod`?"));
    assert!(
        errors
            .iter()
            .any(|e| e.message == "no chart source for release `istiod`")
    );
}

#[test]
fn unknown_env_placeholder() {
    let infra = Infra::copy();
    let file = "sso/dex.values.yaml";
    infra.edit(
        file,
        "issuer: ${env.url.dex}/dex",
        "issuer: ${env.url.dexx}/dex",
    );
    let e = infra.expect(
        None,
        "unknown setting `${env.url.dexx}`",
        file,
        infra.pos(file, "issuer:", "${env"),
        "config.issuer",
    );
    assert!(e.help.unwrap().contains("did you mean `${env.url.dex}`?"));
}

#[test]
fn malformed_placeholder_in_a_block_scalar() {
    let infra = Infra::copy();
    let file = "sso/oauth2-proxy.values.yaml";
    infra.edit(
        file,
        "oidc_issuer_url = \"${env.url.dex}/dex\"",
        "oidc_issuer_url = \"${env url.dex}/dex\"",
    );
    infra.expect(
        None,
        "malformed placeholder `${env url.dex}`",
        file,
        infra.pos(file, "oidc_issuer_url", "${env"),
        "config.configFile",
    );
}

#[test]
fn unclosed_placeholder() {
    let infra = Infra::copy();
    let file = "gateway/gateway.yaml";
    infra.edit(
        file,
        "nodePort: ${env.cluster.kind.nodePort}",
        "nodePort: ${env.cluster.kind.nodePort",
    );
    infra.expect(
        None,
        "is not closed",
        file,
        infra.pos(file, "nodePort:", "${env"),
        "data.service",
    );
}

#[test]
fn unknown_output() {
    let infra = Infra::copy();
    let file = "gateway/gateway.yaml";
    infra.edit(
        file,
        "${output.mesh.gateway_class}",
        "${output.mesh.gateway_klass}",
    );
    let e = infra.expect(
        None,
        "no module produces output `mesh.gateway_klass`",
        file,
        infra.pos(file, "gatewayClassName:", "${output.mesh"),
        "spec.gatewayClassName",
    );
    assert!(
        e.help
            .unwrap()
            .contains("did you mean `mesh.gateway_class`?")
    );
}

#[test]
fn unknown_generated_secret() {
    let infra = Infra::copy();
    let file = "sso/dex.values.yaml";
    infra.edit(
        file,
        "${secret.sso.oauth2-proxy}",
        "${secret.sso.oauth2-proxi}",
    );
    infra.expect(
        None,
        "no such generated secret",
        file,
        infra.pos(file, "", "${secret"),
        "envVars[0].valueFrom.secretKeyRef.name",
    );
}

#[test]
fn unknown_env_name_lists_the_available_ones() {
    let infra = Infra::copy();
    let e = infra.expect(
        Some("stagin"),
        "unknown environment `stagin`",
        "envs",
        (0, 0),
        "--env",
    );
    let help = e.help.unwrap();
    assert!(help.contains("did you mean `staging`?"), "{help}");
    assert!(help.contains("`kwok`, `staging`"), "{help}");
}

#[test]
fn gateway_api_without_pins() {
    let infra = Infra::copy();
    infra.edit(ENV, "gatewayApi: v1.5.1", "gatewayApi: v1.4.0");
    infra.expect(
        None,
        "no pinned files for Gateway API `v1.4.0`",
        ENV,
        infra.pos(ENV, "gatewayApi:", "v1.4.0"),
        "versions.gatewayApi",
    );
}

/// `versions:` holds the keys the modules declare (`ModuleDef::versions`): a misspelt one is
/// refused at its key, with the closest declared key.
#[test]
fn unknown_version_key_names_the_closest_declared_one() {
    let infra = Infra::copy();
    infra.edit(ENV, "oauth2Proxy: 10.7.0", "oauth2proxy: 10.7.0");
    let e = infra.expect(
        None,
        "unknown key `oauth2proxy`",
        ENV,
        infra.pos(ENV, "versions:", "oauth2proxy"),
        "versions.oauth2proxy",
    );
    assert!(
        e.help.unwrap().contains("did you mean `oauth2Proxy`?"),
        "the sso module declares oauth2Proxy"
    );
}

/// A version a module requires (sso's `dex`) must be written; an optional one (mesh's
/// `istio`) may be left out.
#[test]
fn missing_required_version_key() {
    let infra = Infra::copy();
    infra.edit(ENV, "  dex: 0.24.0\n", "");
    let e = infra.expect(
        None,
        "missing key `dex`",
        ENV,
        infra.pos(ENV, "versions:", "gatewayApi"),
        "versions",
    );
    assert_eq!(e.help.as_deref(), Some("add `dex:` here"));
}

#[test]
fn invalid_bcrypt_hash() {
    let infra = Infra::copy();
    infra.edit(
        ENV,
        "\"$2a$10$2b2cU8CPhOTaGrs1HRQuAueS7JTT5ZHsHSzYiFPm1leZck7Mc8T4W\"",
        "password",
    );
    let e = infra.expect(
        None,
        "invalid bcrypt hash",
        ENV,
        infra.pos(ENV, "hash:", "password"),
        "sso.staticUser.hash",
    );
    assert!(e.help.unwrap().contains("htpasswd"));
}

#[test]
fn invalid_email() {
    let infra = Infra::copy();
    infra.edit(ENV, "email: admin@example.com", "email: admin");
    infra.expect(
        None,
        "invalid email `admin`",
        ENV,
        infra.pos(ENV, "email:", "admin"),
        "sso.staticUser.email",
    );
}

#[test]
fn duplicate_object_across_files() {
    let infra = Infra::copy();
    let file = "gateway/nginx.yaml";
    let mut text = infra.read(file);
    text.push_str(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: nginx\n  namespace: default\n",
    );
    infra.write(file, &text);
    // The copy's `name: nginx` is the second-to-last line.
    let line = text.lines().count() - 1;
    let e = infra.expect(
        None,
        "duplicate object: Service default/nginx",
        file,
        (line, 9),
        "metadata.name",
    );
    assert!(e.help.unwrap().contains("first declared at"));
}

#[test]
fn manifest_without_kind() {
    let infra = Infra::copy();
    let file = "policy/authorization-policy.yaml";
    infra.edit(file, "kind: AuthorizationPolicy\n", "");
    infra.expect(
        None,
        "the object has no `kind`",
        file,
        infra.pos(file, "", "apiVersion"),
        "kind",
    );
}

#[test]
fn manifest_without_name() {
    let infra = Infra::copy();
    let file = "sso/namespace.yaml";
    infra.edit(file, "  name: sso\n", "  labels: {}\n");
    infra.expect(
        None,
        "the object has no `metadata.name`",
        file,
        infra.pos(file, "", "labels"),
        "metadata.name",
    );
}

#[test]
fn namespaced_manifest_without_namespace() {
    let infra = Infra::copy();
    let file = "policy/authorization-policy.yaml";
    infra.edit(file, "  namespace: default\n", "");
    infra.expect(
        None,
        "AuthorizationPolicy is namespaced but has no `metadata.namespace`",
        file,
        infra.pos(file, "", "name: oauth2-policy"),
        "metadata.namespace",
    );
}

#[test]
fn yaml_syntax_error_has_the_parsers_position() {
    let infra = Infra::copy();
    infra.edit(ENV, "domain: example.com", "domain: example.com: x");
    let e = infra.expect(
        None,
        "YAML syntax error",
        ENV,
        infra.pos(ENV, "domain: example.com", ": x"),
        "domain",
    );
    assert!(e.message.contains("mapping values are not allowed"), "{e}");
}

#[test]
fn duplicate_key() {
    let infra = Infra::copy();
    infra.edit(ENV, "  dex: dex\n", "  dex: dex\n  dex: login\n");
    infra.expect(
        None,
        "duplicate key `dex`",
        ENV,
        infra.pos(ENV, "  dex: dex\n", "dex: login"),
        "hosts.dex",
    );
}

#[test]
fn file_not_listed_in_the_module_index() {
    let infra = Infra::copy();
    infra.write(
        "gateway/extra.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: extra\n",
    );
    infra.expect(
        None,
        "`gateway/extra.yaml` is not listed in modules.yaml",
        "gateway/extra.yaml",
        (1, 1),
        "",
    );
}

#[test]
fn overlay_named_unlike_its_file() {
    let infra = Infra::copy();
    let mut text = infra.read("envs/staging.yaml");
    text.push_str("name: prod\n");
    infra.write("envs/staging.yaml", &text);
    infra.expect(
        Some("staging"),
        "names its environment `prod`",
        "envs/staging.yaml",
        infra.pos("envs/staging.yaml", "name: prod", "prod"),
        "name",
    );
}

#[test]
fn context_required_for_an_existing_cluster() {
    let infra = Infra::copy();
    infra.edit(ENV, "provider: kind", "provider: existing");
    infra.expect(
        None,
        "missing kube context",
        ENV,
        infra.pos(ENV, "provider:", "existing"),
        "cluster.provider",
    );
}

#[test]
fn context_refused_for_a_cluster_envctl_creates() {
    let infra = Infra::copy();
    infra.edit(
        ENV,
        "provider: kind\n",
        "provider: kind\n  context: kind-istio\n",
    );
    infra.expect(
        None,
        "`context` is only for provider `existing`: provider `kind` picks its own context",
        ENV,
        infra.pos(ENV, "context:", "kind-istio"),
        "cluster.context",
    );
}

/// The cluster module owns `cluster:`: a file without it is refused (at its first key), and an
/// overlay's value is reported in the overlay.
#[test]
fn the_cluster_section_is_the_cluster_modules() {
    let infra = Infra::copy();
    let text = infra.read(ENV);
    let start = text.find("\ncluster:\n").unwrap() + 1;
    let end = start + text[start..].find("\n\n").unwrap() + 1;
    infra.write(ENV, &format!("{}{}", &text[..start], &text[end..]));
    let at = infra.pos(ENV, "", "name: default");
    let e = infra.expect(None, "missing key `cluster`", ENV, at, "cluster");
    assert!(e.help.unwrap().contains("module `cluster`"));

    let infra = Infra::copy();
    infra.edit(
        "envs/staging.yaml",
        "hostPort: 8080",
        "hostPort: 8080\n    nodePort: 99",
    );
    infra.expect(
        Some("staging"),
        "nodePort must be in Kubernetes' NodePort range: 99 is outside 30000-32767",
        "envs/staging.yaml",
        infra.pos("envs/staging.yaml", "nodePort:", "99"),
        "cluster.kind.nodePort",
    );
}

#[test]
fn errors_display_like_rustc() {
    let infra = Infra::copy();
    infra.edit(ENV, "hostPort: 80", "hostPort: 0");
    let errors = config::load(&infra.root, None, &xtask::REGISTRY).unwrap_err();
    let (line, column) = infra.pos(ENV, "hostPort:", "0");
    let expected = format!(
        "error: hostPort must be between 1 and 65535: 0 is not a port\n  --> {}:{line}:{column} (field cluster.kind.hostPort)\n  = help: pick a free port on this machine, e.g. 80 or 8080",
        infra.path(ENV).display()
    );
    assert_eq!(errors.to_string(), expected);
}

#[test]
fn several_errors_are_reported_together() {
    let infra = Infra::copy();
    infra.edit(ENV, "nginx: nginx", "nginx: NGINX");
    infra.edit(ENV, "email: admin@example.com", "email: admin");
    let errors = infra.errors(None);
    assert_eq!(errors.len(), 2, "{}", render(&errors));
}

/// The walkthrough hard-codes a client secret and a cookie secret; none may land in infra/.
/// They are read from the walkthrough itself (CI lays `shared/` beside the clone), so that
/// this repository holds them nowhere.
#[test]
fn walkthrough_secrets_are_not_in_infra() {
    let walkthrough = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/seed/gateway-api-istio-oauth2-proxy.md");
    let text = fs::read_to_string(&walkthrough).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the seed lies beside the clone)",
            walkthrough.display()
        )
    });
    let literals: Vec<String> = ["secret: ", "clientSecret: ", "cookieSecret: "]
        .iter()
        .flat_map(|key| text.lines().filter_map(move |l| l.trim().strip_prefix(key)))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .filter(|v| v.len() >= 16)
        .collect();
    assert_eq!(
        literals.len(),
        3,
        "the walkthrough's client secret (twice) and cookie secret"
    );
    fn walk(dir: &Path, literals: &[String], found: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, literals, found);
            } else if let Ok(text) = fs::read_to_string(&path) {
                for literal in literals {
                    if text.contains(literal) {
                        found.push(format!("{} holds {literal}", path.display()));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra"),
        &literals,
        &mut found,
    );
    assert!(found.is_empty(), "{found:#?}");
}

/// Each level a list of 9 aliases of the previous one: 9^9 nodes if expanded. Once took
/// `plan --offline` past 60 seconds; now refused at a bound, well under a second.
#[test]
fn alias_bomb_is_refused_quickly() {
    let infra = Infra::copy();
    let mut text = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  namespace: sso\ndata:\n  a0: &a0 [\"lol\"]\n",
    );
    for level in 1..=9 {
        let prev = level - 1;
        let items = vec![format!("*a{prev}"); 9].join(", ");
        text.push_str(&format!("  a{level}: &a{level} [{items}]\n"));
    }
    infra.write("sso/routes.yaml", &text);
    let started = std::time::Instant::now();
    let errors = infra.errors(None);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let e = errors
        .iter()
        .find(|e| e.message.contains("alias bomb"))
        .unwrap_or_else(|| panic!("{}", render(&errors)));
    assert_eq!(e.file, infra.path("sso/routes.yaml"));
    assert!(e.line >= 8 && e.column > 0, "{e}");
}

#[test]
fn deep_nesting_is_refused() {
    let infra = Infra::copy();
    let text = format!("deep: {}1{}\n", "[".repeat(150), "]".repeat(150));
    infra.write("sso/dex.values.yaml", &text);
    let errors = infra.errors(None);
    let e = errors
        .iter()
        .find(|e| e.message.contains("nested more than"))
        .unwrap_or_else(|| panic!("{}", render(&errors)));
    // The mapping and 99 lists are open when the 100th list starts.
    assert_eq!((e.line, e.column), (1, 106), "{e}");
}

#[test]
fn non_utf8_names_the_byte_and_its_place() {
    let infra = Infra::copy();
    fs::write(
        infra.path("sso/dex.values.yaml"),
        b"service:\n  name: caf\xe9\n",
    )
    .unwrap();
    infra.expect(None, "not UTF-8", "sso/dex.values.yaml", (2, 12), "");
}

#[test]
fn file_over_10_mib_is_refused_unread() {
    let infra = Infra::copy();
    let line = "# padding padding padding padding padding padding padding padding\n";
    infra.write(
        "sso/dex.values.yaml",
        &line.repeat(11 * 1024 * 1024 / line.len()),
    );
    infra.expect(
        None,
        "over the 10 MiB limit",
        "sso/dex.values.yaml",
        (1, 1),
        "",
    );
}

#[test]
fn tab_indentation_is_a_syntax_error_with_its_place() {
    let infra = Infra::copy();
    infra.edit(ENV, "  nginx: nginx\n", "\tnginx: nginx\n");
    let errors = infra.errors(None);
    let e = errors
        .iter()
        .find(|e| e.message.contains("YAML syntax error"))
        .unwrap_or_else(|| panic!("{}", render(&errors)));
    assert_eq!(e.line, infra.pos(ENV, "", "\tnginx").0, "{e}");
}

/// helm and kubectl read YAML 1.1: `yes` is a boolean there and a string here.
#[test]
fn yaml_1_1_booleans_are_refused() {
    let infra = Infra::copy();
    infra.edit(
        "sso/dex.values.yaml",
        "  enablePasswordDB: true",
        "  enablePasswordDB: yes",
    );
    let e = infra.expect(
        None,
        "`yes` is a string to envctl (YAML 1.2) but the boolean true to helm",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "", "yes"),
        "config.enablePasswordDB",
    );
    assert!(e.help.unwrap().contains("or write true/false"));
}

#[test]
fn yaml_1_1_octal_and_keys_are_refused() {
    let infra = Infra::copy();
    infra.edit(
        "sso/dex.values.yaml",
        "      port: ${env.cluster.kind.hostPort}\n",
        "      port: ${env.cluster.kind.hostPort}\n      defaultMode: 0644\n      on: push\n",
    );
    infra.expect(
        None,
        "`0644` is the integer 644 to envctl (YAML 1.2) but the integer 420",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "", "0644"),
        "service.ports.http.defaultMode",
    );
    infra.expect(
        None,
        "`on` is a string to envctl (YAML 1.2) but the boolean true",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "defaultMode", "on: push"),
        "service.ports.http.on",
    );
}

#[test]
fn sexagesimal_and_merge_keys_are_refused() {
    let infra = Infra::copy();
    infra.edit(
        "sso/dex.values.yaml",
        "      port: ${env.cluster.kind.hostPort}\n",
        "      port: ${env.cluster.kind.hostPort}\n      at: 1:30\nbase: &b {x: 1}\nother:\n  <<: *b\n",
    );
    infra.expect(
        None,
        "`1:30` is a string to envctl (YAML 1.2) but a base-60 number",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "", "1:30"),
        "service.ports.http.at",
    );
    infra.expect(
        None,
        "merge key",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "other:", "<<"),
        "other.<<",
    );
}

#[test]
fn literal_secret_in_a_values_file_is_refused_unprinted() {
    let infra = Infra::copy();
    let secret = "s3cr3t-value-that-must-not-be-printed";
    infra.edit(
        "sso/oauth2-proxy.values.yaml",
        "    reverse_proxy = true",
        &format!("    reverse_proxy = true\n    cookie_secret = \"{secret}\""),
    );
    infra.edit(
        "sso/dex.values.yaml",
        "  issuer:",
        &format!("  clientSecret: {secret}\n  issuer:"),
    );
    let errors = infra.errors(None);
    let text = render(&errors);
    assert!(!text.contains(secret), "{text}");
    let e = infra.expect(
        None,
        "literal secret under `cookie_secret`",
        "sso/oauth2-proxy.values.yaml",
        infra.pos("sso/oauth2-proxy.values.yaml", "", "cookie_secret"),
        "config.configFile",
    );
    assert!(e.help.unwrap().contains("GeneratedSecret"));
    infra.expect(
        None,
        "literal secret under `clientSecret`",
        "sso/dex.values.yaml",
        infra.pos("sso/dex.values.yaml", "clientSecret", secret),
        "config.clientSecret",
    );
}

#[test]
fn release_and_chart_names_that_look_like_flags_are_refused() {
    let infra = Infra::copy();
    infra.edit(
        "modules.yaml",
        "    - name: dex\n",
        "    - name: --dry-run\n",
    );
    infra.edit(
        ENV,
        "    chart: oauth2-proxy",
        "    chart: --post-renderer=/bin/sh",
    );
    infra.expect(
        None,
        "invalid release name `--dry-run`",
        "modules.yaml",
        infra.pos("modules.yaml", "", "--dry-run"),
        "sso.releases[0].name",
    );
    infra.expect(
        None,
        "invalid chart name `--post-renderer=/bin/sh`",
        ENV,
        infra.pos(ENV, "", "--post-renderer"),
        "charts.oauth2-proxy.chart",
    );
}

#[test]
fn port_out_of_range_in_a_manifest() {
    let infra = Infra::copy();
    let text = infra.read("gateway/nginx.yaml");
    let port_line = text
        .lines()
        .find(|l| {
            l.trim_start().starts_with("- containerPort:")
                || l.trim_start().starts_with("containerPort:")
        })
        .expect("nginx has a containerPort")
        .to_owned();
    let value = port_line.rsplit(':').next().unwrap().trim().to_owned();
    infra.edit(
        "gateway/nginx.yaml",
        &port_line,
        &port_line.replace(&value, "70000"),
    );
    let errors = infra.errors(None);
    let e = errors
        .iter()
        .find(|e| e.message.contains("`containerPort: 70000` is not a port"))
        .unwrap_or_else(|| panic!("{}", render(&errors)));
    assert_eq!(e.file, infra.path("gateway/nginx.yaml"));
    assert_eq!(
        (e.line, e.column),
        infra.pos("gateway/nginx.yaml", "", "70000")
    );
    assert!(e.field.ends_with("containerPort"), "{e}");
}

#[test]
fn literal_secret_in_an_overlays_chart_values_is_refused_unprinted() {
    let infra = Infra::copy();
    let secret = "overlay-secret-that-must-not-be-printed";
    let mut text = infra.read("envs/staging.yaml");
    text.push_str(&format!(
        "charts:\n  dex:\n    values:\n      config:\n        clientSecret: {secret}\n"
    ));
    infra.write("envs/staging.yaml", &text);
    let errors = infra.errors(Some("staging"));
    assert!(!render(&errors).contains(secret), "{}", render(&errors));
    infra.expect(
        Some("staging"),
        "literal secret under `clientSecret`",
        "envs/staging.yaml",
        infra.pos("envs/staging.yaml", "clientSecret", secret),
        "config.clientSecret",
    );
}

/// Config errors name their field in the one path syntax of `engine::FieldPath` (the syntax of
/// drift reports and sensitive paths): a Kubernetes label key is one bracketed key, and the
/// printed field parses back to the path of the offending value.
#[test]
fn fields_with_dots_and_slashes_are_named_in_the_engine_path_syntax() {
    let infra = Infra::copy();
    infra.edit(
        "gateway/nginx.yaml",
        "    app: nginx\nspec:\n  replicas: 1\n",
        "    app: nginx\n    app.kubernetes.io/part-of: yes\nspec:\n  replicas: 1\n",
    );
    let field = "metadata.labels[\"app.kubernetes.io/part-of\"]";
    infra.expect(
        None,
        "`yes` is a string to envctl (YAML 1.2) but the boolean true",
        "gateway/nginx.yaml",
        infra.pos("gateway/nginx.yaml", "part-of", "yes"),
        field,
    );
    let parsed: engine::FieldPath = field.parse().unwrap();
    assert_eq!(
        parsed,
        engine::FieldPath::root()
            .key("metadata")
            .key("labels")
            .key("app.kubernetes.io/part-of")
    );
}
