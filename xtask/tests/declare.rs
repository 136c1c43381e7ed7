//! What each module declares from the real `infra/`, loaded with the whole registry: these
//! tests live here, at the composition root, because a module crate does not depend on xtask
//! (nor on another module).

use std::path::{Path, PathBuf};

fn infra() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra")
}

fn load(env: Option<&str>) -> config::Environment {
    config::load(&infra(), env, &xtask::REGISTRY).unwrap_or_else(|errors| panic!("{errors}"))
}

mod cluster_declares {
    use super::load;
    use ::cluster::{ClusterSettings, declare, kind_config, settings, spec};
    use engine::{ClusterProvider, ResourceSpec};
    use serde_json::{Value, json};

    #[test]
    fn kind_cluster_maps_the_gateway_node_port_to_the_host() {
        let env = load(None);
        let module = declare(&env).unwrap();
        assert_eq!(module.resources.len(), 1);
        let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        assert_eq!(spec.context, "kind-istio");
        let ClusterProvider::Kind { config, node_image } = &spec.provider else {
            panic!("kind")
        };
        assert_eq!(node_image, "kindest/node:v1.36.1");
        let mapping = &config["nodes"][0]["extraPortMappings"][0];
        assert_eq!(mapping["containerPort"], 30080);
        assert_eq!(mapping["hostPort"], 80);
    }

    /// The shipped kind config (moved here from `live::provider`, whose unused builder of the
    /// same document is gone): exactly one control-plane node of the pinned image with the
    /// gateway's nodePort on the host, written as YAML that reads back as the same document.
    #[test]
    fn kind_config_publishes_the_gateway_node_port_on_the_host() {
        let env = load(None);
        let config = kind_config(&settings(&env).unwrap());
        assert_eq!(
            config,
            json!({"kind": "Cluster", "apiVersion": "kind.x-k8s.io/v1alpha4", "name": "istio",
                "nodes": [{"role": "control-plane", "image": "kindest/node:v1.36.1",
                "extraPortMappings": [{"containerPort": 30080, "hostPort": 80,
                    "listenAddress": "127.0.0.1", "protocol": "TCP"}]}]})
        );
        let yaml = live::provider::kind_config_yaml(&config).unwrap();
        let back: Value = serde_saphyr::from_str(&yaml).unwrap();
        assert_eq!(
            back, config,
            "the YAML reads back as the same document:\n{yaml}"
        );
        assert!(
            yaml.contains("apiVersion: kind.x-k8s.io/v1alpha4"),
            "{yaml}"
        );
    }

    /// A recorded cluster built by this module is replaced for a change of its config, and a
    /// new node image (which the config repeats) is named once.
    #[test]
    fn shipped_config_changes_decide_a_replacement() {
        let env = load(None);
        let module = declare(&env).unwrap();
        let ResourceSpec::Cluster(declared) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        let cluster = settings(&env).unwrap();
        assert_eq!(
            declared,
            &spec(&cluster),
            "the module declares the section's cluster"
        );
        let document = |cluster: &ClusterSettings| live::provider::cluster_document(&spec(cluster));
        let recorded = document(&cluster);
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &recorded),
            None
        );
        let mut moved = cluster.clone();
        moved.kind.host_port = 8080;
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &document(&moved)).as_deref(),
            Some("provider.config.nodes[0].extraPortMappings[0].hostPort 80 -> 8080")
        );
        let mut newer = cluster.clone();
        newer.kind.node_image = "kindest/node:v1.37.0".into();
        assert_eq!(
            live::provider::replace_decision(Some(&recorded), &document(&newer)).as_deref(),
            Some("node image kindest/node:v1.36.1 -> kindest/node:v1.37.0")
        );
    }

    #[test]
    fn kwok_environment_uses_the_kwokctl_context() {
        let env = load(Some("kwok"));
        let module = declare(&env).unwrap();
        let ResourceSpec::Cluster(spec) = &module.resources[0].spec else {
            panic!("a cluster")
        };
        assert!(matches!(spec.provider, ClusterProvider::Kwok));
        assert_eq!(
            spec.context,
            format!("kwok-{}", settings(&env).unwrap().name)
        );
    }
}

mod gateway_declares {
    use super::load;
    use ::gateway::{declare, is_pinned};
    use engine::ResourceSpec;

    fn env() -> config::Environment {
        load(None)
    }

    #[test]
    fn gateway_api_files_are_declared_by_name_before_they_are_fetched() {
        let module = declare(&env()).unwrap();
        let names: Vec<String> = module
            .resources
            .iter()
            .map(|r| r.address.to_string())
            .collect();
        assert!(
            names.contains(
                &"gateway.object.customresourcedefinition/httproutes.gateway.networking.k8s.io"
                    .to_owned()
            )
        );
        assert!(
            names.contains(
                &"gateway.object.validatingadmissionpolicy/safe-upgrades.gateway.networking.k8s.io"
                    .to_owned()
            )
        );
        let crd = module
            .resources
            .iter()
            .find(|r| {
                r.address
                    .name
                    .starts_with("customresourcedefinition/httproutes")
            })
            .unwrap();
        let ResourceSpec::Object(o) = &crd.spec else {
            panic!()
        };
        assert_eq!(o.manifest["spec"]["names"]["kind"], "HTTPRoute");
        assert_eq!(o.manifest["spec"]["group"], "gateway.networking.k8s.io");
        assert!(is_pinned(&o.manifest));
    }

    #[test]
    fn gateway_outputs_name_the_gateway_object() {
        let module = declare(&env()).unwrap();
        let out: Vec<(String, String)> = module
            .outputs
            .iter()
            .map(|o| (o.r#ref.to_string(), o.producer.to_string()))
            .collect();
        assert!(out.contains(&(
            "gateway.gateway_name".into(),
            "gateway.object.gateway/gateway/istio-gateway".into()
        )));
        assert!(out.contains(&(
            "gateway.gateway_api_crds".into(),
            "gateway.object.customresourcedefinition/gateways.gateway.networking.k8s.io".into()
        )));
    }
}

mod mesh_declares {
    use super::load;
    use ::mesh::declare;
    use engine::Dependency;
    use serde_json::Value;

    #[test]
    fn istiod_comes_after_base_cni_and_the_gateway_api_crds() {
        let env = load(None);
        let module = declare(&env).unwrap();
        let istiod = module
            .resources
            .iter()
            .find(|r| r.address.name == "istiod")
            .unwrap();
        let deps: Vec<String> = istiod
            .depends_on
            .iter()
            .map(|d| match d {
                Dependency::Resource(a) => a.to_string(),
                Dependency::Output(o) => o.to_string(),
            })
            .collect();
        assert_eq!(
            deps,
            [
                "mesh.helm_release.istio-base",
                "mesh.helm_release.istio-cni",
                "gateway.gateway_api_crds"
            ]
        );
        assert_eq!(
            module
                .outputs
                .iter()
                .find(|o| o.r#ref.name == "ext_authz_provider")
                .unwrap()
                .value,
            Some(Value::String("oauth2-proxy".into()))
        );
    }
}

mod sso_declares {
    use super::load;
    use ::sso::declare;
    use serde_json::Value;

    #[test]
    fn dex_cluster_ip_is_known_only_after_apply() {
        let env = load(None);
        let module = declare(&env).unwrap();
        let ip = module
            .outputs
            .iter()
            .find(|o| o.r#ref.name == "dex_cluster_ip")
            .unwrap();
        assert_eq!(ip.value, None);
        assert_eq!(ip.producer.to_string(), "sso.helm_release.dex");
        let svc = module
            .outputs
            .iter()
            .find(|o| o.r#ref.name == "ext_authz_service")
            .unwrap();
        assert_eq!(
            svc.value,
            Some(Value::String("oauth2-proxy.sso.svc.cluster.local".into()))
        );
        assert!(
            module
                .resources
                .iter()
                .any(|r| r.address.to_string() == "sso.generated_secret.oauth2-proxy")
        );
    }
}

mod policy_declares {
    use super::load;
    use ::policy::declare;
    use engine::{Dependency, OutputRef, ResourceSpec};

    #[test]
    fn the_policy_protects_every_path_and_waits_for_the_authorizer() {
        let env = load(None);
        let module = declare(&env).unwrap();
        let policy = &module.resources[0];
        assert_eq!(
            policy.address.to_string(),
            "policy.object.authorizationpolicy/default/oauth2-policy"
        );
        let ResourceSpec::Object(o) = &policy.spec else {
            panic!("an object")
        };
        assert_eq!(o.manifest["spec"]["action"], "CUSTOM");
        let paths = &o.manifest["spec"]["rules"][0]["to"][0]["operation"]["paths"];
        assert_eq!(
            paths,
            &serde_json::json!(["/*"]),
            "NOTES.md 1: `/` alone matches only the root"
        );
        assert!(
            policy
                .depends_on
                .contains(&Dependency::Output(OutputRef::new(
                    "sso",
                    "ext_authz_service"
                )))
        );
    }
}
