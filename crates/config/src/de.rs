//! serde over [`Node`] trees: typed structs from YAML, with errors that know their node's
//! file, line, column and field path.

use std::fmt;

use serde::de::{
    self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor,
};

use crate::error::{ConfigError, Location};
use crate::suggest;
use crate::yaml::{Node, NodeValue, Pos, join_index, join_key};

/// Deserializes `T` from `node`; `path` is the node's field path (empty for a document root).
pub(crate) fn from_node<T: DeserializeOwned>(node: &Node, path: &str) -> Result<T, ConfigError> {
    T::deserialize(NodeDe {
        node,
        path: path.to_string(),
    })
    .map_err(|e| e.into_config_error(node, path))
}

#[derive(Debug)]
pub(crate) struct DeError {
    message: String,
    help: Option<String>,
    /// Appended to the path of the node the error is attached to (a missing key).
    suffix: Option<String>,
    at: Option<Box<(Location, String)>>,
}

impl DeError {
    fn new(message: String) -> DeError {
        DeError {
            message,
            help: None,
            suffix: None,
            at: None,
        }
    }

    fn attach(mut self, node: &Node, pos: Pos, path: &str) -> DeError {
        if self.at.is_none() {
            let path = match self.suffix.take() {
                Some(key) => join_key(path, &key),
                None => path.to_string(),
            };
            let location = Location {
                file: node.file.to_path_buf(),
                line: pos.line,
                column: pos.column,
            };
            self.at = Some(Box::new((location, path)));
        }
        self
    }

    fn into_config_error(self, node: &Node, path: &str) -> ConfigError {
        let this = self.attach(node, node.pos, path);
        let (location, field) = *this.at.expect("attached");
        let error = ConfigError::new(location, field, this.message);
        match this.help {
            Some(help) => error.with_help(help),
            None => error,
        }
    }
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError::new(msg.to_string())
    }

    fn invalid_type(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let mut error = DeError::new(format!("wrong type: expected {exp}, found {unexp}"));
        let expects_string = exp.to_string().contains("string");
        let found_scalar = matches!(
            unexp,
            de::Unexpected::Float(_)
                | de::Unexpected::Signed(_)
                | de::Unexpected::Unsigned(_)
                | de::Unexpected::Bool(_)
        );
        error.help = Some(if expects_string && found_scalar {
            "put the value in quotes: YAML reads 1.30 as a number and true as a boolean".into()
        } else if matches!(unexp, de::Unexpected::Str(_)) {
            "write the value without quotes".into()
        } else if matches!(unexp, de::Unexpected::Unit) {
            "write a value after the `:` (an empty value is null)".into()
        } else {
            format!("write {exp} here")
        });
        error
    }

    fn invalid_value(unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        let mut error = DeError::new(format!("invalid value: {unexp}, expected {exp}"));
        if let de::Unexpected::Signed(_) | de::Unexpected::Unsigned(_) = unexp {
            let range = match exp.to_string().as_str() {
                "u8" => "from 0 to 255".to_owned(),
                "u16" => "from 0 to 65535 (a port is 1-65535)".to_owned(),
                "u32" => "from 0 to 4294967295".to_owned(),
                "u64" | "usize" => "of 0 or more".to_owned(),
                other => format!("that fits {other}"),
            };
            error.message = format!("number out of range: {unexp} does not fit {exp}");
            error.help = Some(format!("write a whole number {range}"));
        }
        error
    }

    fn unknown_field(field: &str, expected: &'static [&'static str]) -> Self {
        let mut error = DeError::new(format!("unknown key `{field}`"));
        error.help = Some(suggest::help_for(
            field,
            expected.iter().copied(),
            "valid keys here",
        ));
        error
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        let mut error = DeError::new(format!(
            "unknown value `{variant}`, expected one of {}",
            suggest::list(expected.iter().copied())
        ));
        error.help = Some(suggest::help_for(
            variant,
            expected.iter().copied(),
            "valid values",
        ));
        error
    }

    fn missing_field(field: &'static str) -> Self {
        let mut error = DeError::new(format!("missing key `{field}`"));
        error.help = Some(format!("add `{field}:` here"));
        error.suffix = Some(field.to_string());
        error
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    path: String,
}

impl NodeDe<'_> {
    fn at<T>(&self, result: Result<T, DeError>) -> Result<T, DeError> {
        result.map_err(|e| e.attach(self.node, self.node.pos, &self.path))
    }
}

impl<'de> de::Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            NodeValue::Null => visitor.visit_unit(),
            NodeValue::Bool(b) => visitor.visit_bool(*b),
            NodeValue::Int(i) if *i >= 0 => visitor.visit_u64(*i as u64),
            NodeValue::Int(i) => visitor.visit_i64(*i),
            NodeValue::Float(f) => visitor.visit_f64(*f),
            NodeValue::Str(s) => visitor.visit_str(s),
            NodeValue::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter().enumerate(),
                path: &self.path,
            }),
            NodeValue::Map(entries) => visitor.visit_map(Map {
                entries: entries.iter(),
                current: None,
                path: &self.path,
            }),
        };
        self.at(result)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.is_null() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let result = match &self.node.value {
            NodeValue::Str(s) => {
                visitor.visit_enum(IntoDeserializer::<DeError>::into_deserializer(s.as_str()))
            }
            _ => Err(de::Error::invalid_type(
                de::Unexpected::Other(self.node.describe()),
                &"one of the listed words",
            )),
        };
        self.at(result)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct Seq<'a, I> {
    items: I,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = (usize, &'a Node)>> SeqAccess<'de> for Seq<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        match self.items.next() {
            None => Ok(None),
            Some((i, node)) => {
                let path = join_index(self.path, i);
                let de = NodeDe { node, path };
                seed.deserialize(de).map(Some)
            }
        }
    }
}

struct Map<'a, I> {
    entries: I,
    current: Option<&'a crate::yaml::Entry>,
    path: &'a str,
}

impl<'de, 'a, I: Iterator<Item = &'a crate::yaml::Entry>> MapAccess<'de> for Map<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.current = Some(entry);
        let key = IntoDeserializer::<DeError>::into_deserializer(entry.key.as_str());
        seed.deserialize(key).map(Some).map_err(|e| {
            e.attach(
                &entry.value,
                entry.key_pos,
                &join_key(self.path, &entry.key),
            )
        })
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let entry = self.current.take().expect("next_key before next_value");
        let path = join_key(self.path, &entry.key);
        seed.deserialize(NodeDe {
            node: &entry.value,
            path,
        })
    }
}
