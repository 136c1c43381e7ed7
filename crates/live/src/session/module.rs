//! `plan`, `apply` and `destroy` of one module's part of the environment: what `--module M`
//! runs. Each module crate implements [`ModuleCommands`] (its name; the commands are these
//! defaults) and, where its domain has one, its readiness rule, so the CLI reaches a module's commands through the registry of modules, while
//! the session below stays ignorant of any particular module.

use futures::future::LocalBoxFuture;

use super::{Outcome, Planned, SavedPlan, Session, SessionError};

/// A module's own commands: the session restricted to the module's resources.
pub trait ModuleCommands: Sync {
    /// The module's name: the first part of its addresses.
    fn module_name(&self) -> &'static str;

    /// The readiness rule of the module's domain, if it has one: when apply waits for an
    /// object of its kinds, and what ready means for it (see [`crate::readiness`]).
    fn readiness(&self) -> Option<&'static dyn crate::ReadinessRule> {
        None
    }

    /// This module's part of the plan.
    fn plan<'s>(
        &self,
        session: &'s Session<'_>,
    ) -> LocalBoxFuture<'s, Result<Planned, SessionError>> {
        let session = session.restricted_to(self.module_name());
        Box::pin(async move { session.plan().await })
    }

    /// Applies this module's part (the saved plan, when given, must be of the same part).
    fn apply<'s>(
        &self,
        session: &'s Session<'_>,
        saved: Option<&'s SavedPlan>,
    ) -> LocalBoxFuture<'s, Result<Outcome, SessionError>> {
        let session = session.restricted_to(self.module_name());
        Box::pin(async move { session.apply(saved).await })
    }

    /// Destroys what this module owns (the cluster only when the module declares it).
    fn destroy<'s>(
        &self,
        session: &'s Session<'_>,
    ) -> LocalBoxFuture<'s, Result<Outcome, SessionError>> {
        let session = session.restricted_to(self.module_name());
        Box::pin(async move { session.destroy().await })
    }
}

#[cfg(test)]
mod tests {
    use engine::{Graph, Module, Ownership, Resource};
    use serde_json::json;

    use super::*;
    use crate::session::{Callbacks, Interrupt, SessionOptions};

    struct Toy;

    impl ModuleCommands for Toy {
        fn module_name(&self) -> &'static str {
            "b"
        }
    }

    fn config_map(module: &str, name: &str) -> Resource {
        let manifest = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": "default"}});
        Resource::object(module, manifest, Ownership::Owned).unwrap()
    }

    /// A module's commands see only its resources: the plan made when the cluster is absent
    /// (the one a session makes without contacting it) is restricted to the module.
    #[test]
    fn a_modules_commands_touch_only_its_resources() {
        let mut a = Module::new("a");
        a.resources.push(config_map("a", "one"));
        let mut b = Module::new("b");
        b.resources.push(config_map("b", "two"));
        b.resources.push(config_map("b", "three"));
        let graph = Graph::build(vec![a, b]).unwrap();
        let ui = Callbacks {
            progress: &|_: &crate::Progress| {},
            show_plan: &|_: &engine::Plan| {},
            confirm: &|_: &str, _: &Interrupt| Ok(false),
        };
        let whole = Session::new(&graph, "test", SessionOptions::default(), ui);
        let modules = |s: &Session<'_>| -> Vec<String> {
            s.plan_from_nothing("absent")
                .unwrap()
                .changes
                .iter()
                .map(|c| c.address.module.clone())
                .collect()
        };
        assert_eq!(modules(&whole), ["a", "b", "b"]);
        let part = whole.restricted_to(Toy.module_name());
        assert_eq!(part.options.module.as_deref(), Some("b"));
        assert_eq!(modules(&part), ["b", "b"]);
    }
}
