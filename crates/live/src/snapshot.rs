//! The live state one plan reads, listed once: one cluster-wide list per served type, shared by
//! every read of the plan.
//!
//! A plan reads envctl's own objects (their configuration hash and values), the objects of
//! each Helm release (whether they are still as the release's verified record says), the
//! environment's records (cluster, inventory), the objects outputs are read from and the
//! generated Secrets. All of them are managed by envctl or by Helm, and both say so in the
//! label `app.kubernetes.io/managed-by`: envctl on every object it owns and on its records,
//! Helm (3.2 and later) on every object it creates or updates (`setMetadataVisitor` of its
//! install, upgrade and rollback; the CRDs of a chart's `crds/` directory are the exception,
//! and are not part of a release's manifest either). So a [`Snapshot`] lists each type once,
//! cluster-wide, with [`SELECTOR`], lazily (the first read of a type lists it, concurrent
//! reads wait for that one list), and every read of the plan is served from it: envctl's
//! objects are told apart client-side by the environment label, Helm's by the record's
//! identities. Namespaces are listed whole (one list serves both "does the namespace exist"
//! and envctl's own Namespaces).
//!
//! An object a read expects that the selected list does not hold (a foreign object at a
//! desired name, an object whose label someone removed, a record written before it carried
//! the label, an object that does not exist) is read with a get ([`Snapshot::get`]): the
//! answer is exactly what a get would have given; in steady state no such read happens.
//!
//! Helm's storage Secrets carry Helm's own labels (`owner=helm`, `name`), not
//! `managed-by`, and a label selector cannot say "this label or that one": they are one list of
//! their own for all releases of the plan ([`Snapshot::helm_storage`]), so Secrets cost two
//! lists (the managed ones and Helm's storage).
//!
//! A snapshot is made fresh for each plan and dropped with it: an apply never reads from it
//! what it wrote after.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio::sync::OnceCell;

use crate::{Cluster, LiveError, TypeInfo};

/// The objects a snapshot lists of each type (Namespaces apart): those envctl or Helm manage.
pub const SELECTOR: &str = "app.kubernetes.io/managed-by in (envctl,Helm)";

/// The type of a Helm storage Secret (a field selector on Secrets).
pub const HELM_STORAGE_TYPE: &str = "helm.sh/release.v1";

/// Live objects by (namespace, name).
type ByIdentity = BTreeMap<(Option<String>, String), Value>;

/// The listed objects of one type.
pub struct Listed {
    /// Every object of the type (Namespaces), not only the selected ones: what it does not
    /// hold does not exist.
    complete: bool,
    objects: ByIdentity,
}

/// What a list knows of one object.
#[derive(Debug, PartialEq)]
pub enum Lookup<'a> {
    Found(&'a Value),
    /// The list is complete and does not hold it: it does not exist.
    Absent,
    /// The selected list does not hold it: it may exist without the label (read it).
    Unknown,
}

impl Listed {
    /// The items of one list; `complete` when it was not label-selected.
    pub fn new(items: Vec<Value>, complete: bool) -> Listed {
        let objects = items
            .into_iter()
            .map(|o| ((text(&o, "/metadata/namespace"), name_of(&o)), o))
            .collect();
        Listed { complete, objects }
    }

    /// The object `namespace`/`name` (`namespace` `None` for a cluster-wide type).
    pub fn lookup(&self, namespace: Option<&str>, name: &str) -> Lookup<'_> {
        match self
            .objects
            .get(&(namespace.map(str::to_owned), name.to_owned()))
        {
            Some(object) => Lookup::Found(object),
            None if self.complete => Lookup::Absent,
            None => Lookup::Unknown,
        }
    }

    /// Every listed object.
    pub fn objects(&self) -> impl Iterator<Item = &Value> {
        self.objects.values()
    }
}

type Cell = Arc<OnceCell<Arc<Listed>>>;

/// The live state of one plan (see the module docs). Holds Secrets' data: it has no `Debug`,
/// and nothing of it is printed.
pub struct Snapshot {
    cluster: Cluster,
    /// The Helm releases of the plan, for the one list of their storage Secrets.
    releases: BTreeSet<String>,
    lists: Mutex<BTreeMap<String, Cell>>,
    storage: OnceCell<Arc<Vec<Value>>>,
}

impl Snapshot {
    /// An empty snapshot of `cluster`; `releases` are the names of the plan's Helm releases.
    pub fn new(cluster: &Cluster, releases: impl IntoIterator<Item = String>) -> Snapshot {
        Snapshot {
            cluster: cluster.clone(),
            releases: releases.into_iter().collect(),
            lists: Mutex::default(),
            storage: OnceCell::new(),
        }
    }

    /// The listed objects of a type: one list the first time it is asked for (concurrent
    /// callers share it).
    pub async fn list(&self, ty: &TypeInfo) -> Result<Arc<Listed>, LiveError> {
        let key = format!("{}/{}", ty.resource.api_version, ty.resource.plural);
        let cell = self
            .lists
            .lock()
            .expect("snapshot lists")
            .entry(key)
            .or_default()
            .clone();
        let listed = cell
            .get_or_try_init(|| async {
                let complete = is_listed_whole(ty);
                let selector = if complete { "" } else { SELECTOR };
                let items = self.cluster.list(ty, selector).await?;
                Ok::<_, LiveError>(Arc::new(Listed::new(items, complete)))
            })
            .await?;
        Ok(listed.clone())
    }

    /// Lists `types` at once (each once, as [`Snapshot::list`]), and the storage Secrets of the
    /// plan's releases, so that the reads that come later find them listed instead of waiting
    /// for one list after another.
    pub async fn prefetch(&self, types: &[TypeInfo]) -> Result<(), LiveError> {
        let lists = futures::future::try_join_all(types.iter().map(|ty| self.list(ty)));
        let storage = async {
            match self.releases.is_empty() {
                true => Ok(()),
                false => self.storage().await.map(drop),
            }
        };
        tokio::try_join!(lists, storage)?;
        Ok(())
    }

    /// One object: from the list of its type, else (not selected) read with a get; `None`
    /// when it does not exist.
    pub async fn get(
        &self,
        ty: &TypeInfo,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, LiveError> {
        let namespace = namespace.filter(|_| ty.namespaced);
        let listed = self.list(ty).await?;
        match listed.lookup(namespace, name) {
            Lookup::Found(object) => Ok(Some(object.clone())),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => self.cluster.get(ty, namespace, name).await,
        }
    }

    /// The storage Secrets of Helm release `release` in `namespace` (every revision), from
    /// one list for all releases of the plan (`owner=helm,name in (...)`, cluster-wide).
    pub async fn helm_storage(
        &self,
        release: &str,
        namespace: &str,
    ) -> Result<Vec<Value>, LiveError> {
        if !self.releases.contains(release) {
            // Not a release of the plan: its own list.
            return self
                .cluster
                .list_where(
                    &self.cluster.resolve_served("v1", "Secret")?,
                    Some(namespace),
                    &storage_selector([release]),
                    &format!("type={HELM_STORAGE_TYPE}"),
                )
                .await;
        }
        Ok(storage_of(&self.storage().await?, release, namespace))
    }

    /// The storage Secrets of every release of the plan: one list, the first time.
    async fn storage(&self) -> Result<Arc<Vec<Value>>, LiveError> {
        let all = self
            .storage
            .get_or_try_init(|| async {
                let items = self
                    .cluster
                    .list_where(
                        &self.cluster.resolve_served("v1", "Secret")?,
                        None,
                        &storage_selector(&self.releases),
                        &format!("type={HELM_STORAGE_TYPE}"),
                    )
                    .await?;
                Ok::<_, LiveError>(Arc::new(items))
            })
            .await?;
        Ok(all.clone())
    }
}

/// Whether a type is listed whole rather than selected: Namespaces (few; "does it exist" is
/// asked of every namespace an object is in, envctl's or not).
fn is_listed_whole(ty: &TypeInfo) -> bool {
    ty.resource.group.is_empty() && ty.resource.kind == "Namespace"
}

/// The label selector of Helm's storage Secrets of `releases` (release names are DNS labels:
/// nothing to quote).
pub fn storage_selector<S: AsRef<str>>(releases: impl IntoIterator<Item = S>) -> String {
    let names: BTreeSet<String> = releases
        .into_iter()
        .map(|r| r.as_ref().to_owned())
        .collect();
    match names.len() {
        1 => format!("owner=helm,name={}", names.first().expect("one")),
        _ => format!(
            "owner=helm,name in ({})",
            names.into_iter().collect::<Vec<_>>().join(",")
        ),
    }
}

/// The storage Secrets of `release` in `namespace` among those of every release (pure).
pub fn storage_of(secrets: &[Value], release: &str, namespace: &str) -> Vec<Value> {
    secrets
        .iter()
        .filter(|s| {
            s.pointer("/metadata/labels/owner").and_then(Value::as_str) == Some("helm")
                && s.pointer("/metadata/labels/name").and_then(Value::as_str) == Some(release)
                && s.pointer("/metadata/namespace").and_then(Value::as_str) == Some(namespace)
        })
        .cloned()
        .collect()
}

fn text(object: &Value, pointer: &str) -> Option<String> {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn name_of(object: &Value) -> String {
    text(object, "/metadata/name").unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(namespace: Option<&str>, name: &str) -> Value {
        let mut o = json!({"metadata": {"name": name}});
        if let Some(ns) = namespace {
            o["metadata"]["namespace"] = json!(ns);
        }
        o
    }

    #[test]
    fn a_selected_list_cannot_tell_absent_from_unlabelled_a_whole_one_can() {
        let items = vec![object(Some("sso"), "dex"), object(None, "cluster-wide")];
        let selected = Listed::new(items.clone(), false);
        assert_eq!(
            selected.lookup(Some("sso"), "dex"),
            Lookup::Found(&items[0])
        );
        assert_eq!(
            selected.lookup(None, "cluster-wide"),
            Lookup::Found(&items[1])
        );
        // The same name in another namespace is another object.
        assert_eq!(selected.lookup(Some("default"), "dex"), Lookup::Unknown);
        assert_eq!(selected.lookup(Some("sso"), "other"), Lookup::Unknown);
        let whole = Listed::new(items, true);
        assert_eq!(whole.lookup(Some("sso"), "other"), Lookup::Absent);
        assert_eq!(whole.objects().count(), 2);
    }

    #[test]
    fn the_storage_selector_names_every_release_once() {
        assert_eq!(storage_selector(["dex"]), "owner=helm,name=dex");
        assert_eq!(
            storage_selector(["istiod", "dex", "istio-base", "dex"]),
            "owner=helm,name in (dex,istio-base,istiod)"
        );
    }

    #[test]
    fn each_release_gets_its_own_storage_secrets_from_the_shared_list() {
        let secret = |ns: &str, owner: &str, release: &str, version: u32| {
            json!({"metadata": {"namespace": ns,
                "name": format!("sh.helm.release.v1.{release}.v{version}"),
                "labels": {"owner": owner, "name": release, "version": version.to_string()}}})
        };
        let all = vec![
            secret("sso", "helm", "dex", 1),
            secret("sso", "helm", "dex", 2),
            secret("sso", "helm", "oauth2-proxy", 1),
            // A release of the same name in another namespace is another release.
            secret("other", "helm", "dex", 7),
            // Not Helm's storage.
            secret("sso", "someone", "dex", 9),
        ];
        let names = |v: Vec<Value>| -> Vec<String> { v.iter().map(name_of).collect() };
        assert_eq!(
            names(storage_of(&all, "dex", "sso")),
            ["sh.helm.release.v1.dex.v1", "sh.helm.release.v1.dex.v2"]
        );
        assert_eq!(
            names(storage_of(&all, "oauth2-proxy", "sso")),
            ["sh.helm.release.v1.oauth2-proxy.v1"]
        );
        assert!(storage_of(&all, "istiod", "istio-system").is_empty());
    }
}
