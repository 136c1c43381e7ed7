//! Loads an environment from `infra/` (YAML the user edits) into typed data, with errors that
//! name the file, line, column and field.
