//! A copy of the real `infra/` to break one thing in, and the checks of the errors it then
//! gets (shared by the tests of configuration errors).

use std::fs;
use std::path::PathBuf;

use config::ConfigError;

/// A copy of the real `infra/`, removed when dropped.
pub struct Infra {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Infra {
    /// A copy of the real infra/.
    pub fn copy() -> Infra {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::support::copy_infra(dir.path());
        Infra { _dir: dir, root }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap()
    }

    pub fn write(&self, rel: &str, text: &str) {
        fs::write(self.path(rel), text).unwrap();
    }

    /// Replaces the one occurrence of `from` in `rel`.
    pub fn edit(&self, rel: &str, from: &str, to: &str) -> &Infra {
        let text = self.read(rel);
        assert_eq!(
            text.matches(from).count(),
            1,
            "`{from}` must occur once in {rel}"
        );
        self.write(rel, &text.replacen(from, to, 1));
        self
    }

    /// 1-based line and column of the first `needle` in `rel` (after `after`, if given).
    pub fn pos(&self, rel: &str, after: &str, needle: &str) -> (usize, usize) {
        let text = self.read(rel);
        let start = text
            .find(after)
            .unwrap_or_else(|| panic!("`{after}` not in {rel}"));
        let at = start
            + text[start..]
                .find(needle)
                .unwrap_or_else(|| panic!("`{needle}` not in {rel}"));
        let line = text[..at].matches('\n').count() + 1;
        let column = text[..at].rsplit('\n').next().unwrap().chars().count() + 1;
        (line, column)
    }

    pub fn errors(&self, env: Option<&str>) -> Vec<ConfigError> {
        match config::load(&self.root, env, &xtask::REGISTRY) {
            Ok(_) => panic!("expected errors, the environment loaded"),
            Err(errors) => errors.into_iter().collect(),
        }
    }

    /// The one error whose message contains `message`; checks file, position and field.
    pub fn expect(
        &self,
        env: Option<&str>,
        message: &str,
        file: &str,
        (line, column): (usize, usize),
        field: &str,
    ) -> ConfigError {
        let errors = self.errors(env);
        let found: Vec<&ConfigError> = errors
            .iter()
            .filter(|e| e.message.contains(message))
            .collect();
        assert_eq!(
            found.len(),
            1,
            "one error with `{message}` expected, got:\n{}",
            render(&errors)
        );
        let e = found[0].clone();
        assert_eq!(e.file, self.path(file), "{e}");
        assert_eq!((e.line, e.column), (line, column), "{e}");
        assert_eq!(e.field, field, "{e}");
        assert!(e.help.is_some(), "every error says what to do: {e}");
        e
    }
}

/// Errors one a line, for assertion messages.
pub fn render(errors: &[ConfigError]) -> String {
    errors.iter().map(|e| format!("{e}\n")).collect()
}
