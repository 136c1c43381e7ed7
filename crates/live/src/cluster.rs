//! A connection to one cluster: the kube client and one discovery per run.
//!
//! The client bounds every request (connect and read timeouts) and retries what is safe to
//! repeat ([`crate::retry`]), so an API server that restarts or stalls costs a delay or a clear
//! error, never a hung run.

use std::path::Path;
use std::sync::{Arc, RwLock};

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::Resource as _;
use kube::discovery::{ApiCapabilities, ApiResource, Discovery, Scope};
use kube::{Client, Config};
use serde_json::Value;
use tower::ServiceBuilder;
use tower::buffer::BufferLayer;
use tower::retry::RetryLayer;

use crate::LiveError;
use crate::retry::{ApiTimeouts, CollectBodyLayer, RetryPolicy};

/// The field manager this project applies with.
pub const FIELD_MANAGER: &str = "envctl";

/// A resource type the server serves.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// A connected cluster. Cheap to clone.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    discovery: Arc<RwLock<Arc<Discovery>>>,
    /// The context name the client was built from (for messages).
    pub context: String,
    /// The client's timeouts (waits keep their watches below the read timeout).
    pub timeouts: ApiTimeouts,
}

impl Cluster {
    /// Connects with the given kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`)
    /// and context (default: the file's current context), and runs discovery once. Timeouts
    /// are the defaults of [`ApiTimeouts`] unless the environment overrides them
    /// ([`crate::retry::TIMEOUT_VARIABLES`]).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, LiveError> {
        Self::connect_with(kubeconfig, context, ApiTimeouts::from_env()?).await
    }

    /// [`Cluster::connect`] with the given timeouts.
    pub async fn connect_with(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
        timeouts: ApiTimeouts,
    ) -> Result<Self, LiveError> {
        let kubeconfig = match kubeconfig {
            Some(path) => Kubeconfig::read_from(path),
            None => Kubeconfig::read(),
        }
        .map_err(|e| LiveError::Connect(format!("cannot read kubeconfig: {e}")))?;
        let context_name = context
            .map(str::to_owned)
            .or_else(|| kubeconfig.current_context.clone())
            .unwrap_or_default();
        if !context_name.is_empty() && !kubeconfig.contexts.iter().any(|c| c.name == context_name) {
            let known: Vec<&str> = kubeconfig
                .contexts
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            return Err(LiveError::Connect(format!(
                "kubeconfig has no context `{context_name}` (it has: {})",
                known.join(", ")
            )));
        }
        let options = KubeConfigOptions {
            context: context.map(str::to_owned),
            ..KubeConfigOptions::default()
        };
        let config = Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .map_err(|e| LiveError::Connect(format!("kubeconfig context `{context_name}`: {e}")))?;
        let client = client(config, timeouts)?;
        let discovery = Discovery::new(client.clone())
            .run_aggregated()
            .await
            .map_err(|e| {
                LiveError::Connect(format!(
                    "cannot reach the API server of `{context_name}`: {e}"
                ))
            })?;
        Ok(Cluster {
            client,
            discovery: Arc::new(RwLock::new(Arc::new(discovery))),
            context: context_name,
            timeouts,
        })
    }

    /// The underlying client, for callers that need typed APIs (it has the same timeouts and
    /// retries).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The discovery of this run as it stands (no request).
    pub fn discovery(&self) -> Arc<Discovery> {
        self.discovery.read().expect("discovery lock").clone()
    }

    /// Runs discovery again (after CRDs were created, their kinds become resolvable).
    pub async fn refresh_discovery(&self) -> Result<(), LiveError> {
        let discovery = Discovery::new(self.client.clone()).run_aggregated().await?;
        *self.discovery.write().expect("discovery lock") = Arc::new(discovery);
        Ok(())
    }

    /// [`Cluster::resolve`] of a type every cluster serves (`v1` Secret, ConfigMap, `apps/v1`
    /// Deployment); that it is not served is an error naming the type.
    pub fn resolve_served(&self, api_version: &str, kind: &str) -> Result<TypeInfo, LiveError> {
        self.resolve(api_version, kind)
            .ok_or_else(|| LiveError::Unserved {
                address: None,
                api_version: api_version.into(),
                kind: kind.into(),
                hint: "",
            })
    }

    /// The served type for `apiVersion` + `kind`, if the server knows it.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<TypeInfo> {
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g, v),
            None => ("", api_version),
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        let discovery = self.discovery.read().expect("discovery lock").clone();
        discovery
            .resolve_gvk(&gvk)
            .map(
                |(resource, caps): (ApiResource, ApiCapabilities)| TypeInfo {
                    resource,
                    namespaced: caps.scope == Scope::Namespaced,
                },
            )
    }

    fn api(&self, ty: &TypeInfo, namespace: Option<&str>) -> Api<DynamicObject> {
        match (ty.namespaced, namespace) {
            (true, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &ty.resource),
            _ => Api::all_with(self.client.clone(), &ty.resource),
        }
    }

    /// Lists objects of a type (in every namespace) that match a label selector.
    pub async fn list(&self, ty: &TypeInfo, label_selector: &str) -> Result<Vec<Value>, LiveError> {
        self.list_where(ty, None, label_selector, "").await
    }

    /// Lists objects of a type that match a label and a field selector (each may be empty),
    /// in `namespace` or (`None`, or a cluster-wide type) in every namespace; pages of 500.
    pub async fn list_where(
        &self,
        ty: &TypeInfo,
        namespace: Option<&str>,
        label_selector: &str,
        field_selector: &str,
    ) -> Result<Vec<Value>, LiveError> {
        let namespace = namespace.filter(|_| ty.namespaced);
        let request = kube::core::Request::new(DynamicObject::url_path(&ty.resource, namespace));
        let mut out = Vec::new();
        let mut params = ListParams::default().labels(label_selector).limit(500);
        if !field_selector.is_empty() {
            params = params.fields(field_selector);
        }
        loop {
            let mut http = request.list(&params).map_err(kube::Error::BuildRequest)?;
            http.extensions_mut().insert("list");
            // Parsed as one `Value` (serde_json's own, optimised code even in a debug build),
            // not as typed objects converted back to JSON.
            let text = self.client.request_text(http).await?;
            let mut page: Value = serde_json::from_str(&text)?;
            let next = page
                .pointer("/metadata/continue")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_owned);
            let items = match page.get_mut("items").map(Value::take) {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            };
            for mut value in items {
                // Items of a list carry no type; put it back so they read like a GET.
                if let Some(obj) = value.as_object_mut() {
                    obj.insert("apiVersion".into(), ty.resource.api_version.clone().into());
                    obj.insert("kind".into(), ty.resource.kind.clone().into());
                }
                out.push(value);
            }
            match next {
                Some(token) => params = params.continue_token(&token),
                None => return Ok(out),
            }
        }
    }

    /// Reads one object; `None` when it does not exist.
    pub async fn get(
        &self,
        ty: &TypeInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, LiveError> {
        let found = self.api(ty, namespace).get_opt(name).await?;
        Ok(found.map(serde_json::to_value).transpose()?)
    }

    /// Server-side apply of `manifest` with this project's field manager.
    ///
    /// With `dry_run`, nothing is persisted and the result is what the object would become.
    /// A conflict with another field manager is returned as [`LiveError::Conflict`].
    pub async fn apply(
        &self,
        ty: &TypeInfo,
        manifest: &Value,
        dry_run: bool,
        force: bool,
    ) -> Result<Value, LiveError> {
        let mut params = PatchParams::apply(FIELD_MANAGER);
        if force {
            params = params.force();
        }
        if dry_run {
            params = params.dry_run();
        }
        self.apply_with(ty, manifest, &params).await
    }

    /// Server-side apply under another field manager (forced), for operational writes that
    /// must not become part of this project's configuration (e.g. a restart annotation).
    pub async fn apply_as(
        &self,
        ty: &TypeInfo,
        manifest: &Value,
        manager: &str,
    ) -> Result<Value, LiveError> {
        self.apply_with(ty, manifest, &PatchParams::apply(manager).force())
            .await
    }

    async fn apply_with(
        &self,
        ty: &TypeInfo,
        manifest: &Value,
        params: &PatchParams,
    ) -> Result<Value, LiveError> {
        let name = manifest
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let namespace = manifest
            .pointer("/metadata/namespace")
            .and_then(Value::as_str);
        let result = self
            .api(ty, namespace)
            .patch(name, params, &Patch::Apply(manifest))
            .await;
        match result {
            Ok(object) => Ok(serde_json::to_value(object)?),
            Err(kube::Error::Api(status)) if status.code == 409 => Err(LiveError::Conflict {
                address: None,
                conflict: conflict_from(&status),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object (foreground propagation: dependents go first). Absent is fine.
    pub async fn delete(
        &self,
        ty: &TypeInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), LiveError> {
        match self
            .api(ty, namespace)
            .delete(name, &DeleteParams::foreground())
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// kube's client stack with our timeouts, and our retry policy in place of kube's default one
/// (which retries 429/503/504 for every verb, and neither refused connections nor resets).
fn client(mut config: Config, timeouts: ApiTimeouts) -> Result<Client, LiveError> {
    config.connect_timeout = Some(timeouts.connect);
    config.read_timeout = Some(timeouts.read);
    config.write_timeout = Some(timeouts.read);
    config.default_retry = false;
    let builder = ClientBuilder::try_from(config).map_err(|e| LiveError::Connect(e.to_string()))?;
    // `Retry` repeats a request on a clone of the service below it; the buffer makes kube's
    // boxed stack cloneable. `CollectBody` reads a repeatable answer to its end within the
    // attempt, so that a body that breaks is retried too.
    let layers = ServiceBuilder::new()
        .layer(RetryLayer::new(RetryPolicy::new(timeouts.retry_for)))
        .layer(CollectBodyLayer)
        .layer(BufferLayer::new(1024))
        .into_inner();
    Ok(builder.with_layer(&layers).build())
}

/// The seconds a watch may stay open before the server ends it: below the read timeout, so that
/// a quiet watch is ended by the server, not broken by the client.
pub fn watch_timeout_secs(timeouts: &ApiTimeouts) -> u32 {
    let read = timeouts.read.as_secs();
    let secs = read.saturating_sub((read / 3).min(5)).clamp(1, 290);
    u32::try_from(secs).unwrap_or(290)
}

/// Another field manager owns fields that an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The managers named by the server, e.g. `kubectl-edit`.
    pub managers: Vec<String>,
    /// The conflicting fields, as the server names them (e.g. `.spec.replicas`).
    pub fields: Vec<String>,
    pub message: String,
}

fn conflict_from(status: &kube::core::Status) -> Conflict {
    let mut managers = Vec::new();
    let mut fields = Vec::new();
    if let Some(details) = &status.details {
        for cause in &details.causes {
            fields.push(cause.field.clone());
            if let Some(name) = manager_in(&cause.message) {
                managers.push(name);
            }
        }
    }
    if managers.is_empty()
        && let Some(name) = manager_in(&status.message)
    {
        managers.push(name);
    }
    managers.sort();
    managers.dedup();
    Conflict {
        managers,
        fields,
        message: status.message.clone(),
    }
}

/// Extracts the manager from a server message like `conflict with "kubectl-edit" using apps/v1`.
fn manager_in(message: &str) -> Option<String> {
    let rest = &message[message.find("conflict with \"")? + "conflict with \"".len()..];
    Some(rest[..rest.find('"')?].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_end_before_the_read_timeout_would_break_them() {
        let with_read = |secs| ApiTimeouts {
            read: std::time::Duration::from_secs(secs),
            ..ApiTimeouts::default()
        };
        assert_eq!(watch_timeout_secs(&with_read(30)), 25);
        assert_eq!(watch_timeout_secs(&with_read(3)), 2);
        assert_eq!(watch_timeout_secs(&with_read(1)), 1);
        assert_eq!(watch_timeout_secs(&with_read(3600)), 290);
    }

    #[test]
    fn manager_is_read_from_the_servers_conflict_message() {
        assert_eq!(
            manager_in("conflict with \"kubectl-edit\" using apps/v1").as_deref(),
            Some("kubectl-edit")
        );
        assert_eq!(manager_in("something else"), None);
    }
}
