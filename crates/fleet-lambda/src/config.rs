//! Reading a function's configuration from its environment.
//!
//! Each function names every variable it reads in one config struct (`Config::ENV_VARS`), and
//! reads them through an [`Env`], so tests and the local stack can pass a map instead of the
//! process environment.

use std::str::FromStr;

use crate::error::ConfigError;

/// A source of environment variables: the process environment or any lookup function.
pub struct Env<F: Fn(&str) -> Option<String>> {
    lookup: F,
}

/// The process environment.
pub fn process_env() -> Env<fn(&str) -> Option<String>> {
    fn get(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    Env { lookup: get }
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Wraps a lookup function (`|name| map.get(name).cloned()`).
    pub fn from_lookup(lookup: F) -> Self {
        Self { lookup }
    }

    /// A required, non-empty variable.
    pub fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match (self.lookup)(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ConfigError::Missing { name }),
        }
    }

    /// An optional variable; empty counts as unset.
    pub fn optional(&self, name: &'static str) -> Option<String> {
        (self.lookup)(name).filter(|v| !v.trim().is_empty())
    }

    /// A required variable parsed into `T`.
    pub fn parse<T>(&self, name: &'static str) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let value = self.required(name)?;
        value
            .trim()
            .parse()
            .map_err(|e: T::Err| ConfigError::Invalid {
                name,
                value: value.clone(),
                problem: e.to_string(),
            })
    }

    /// An optional variable parsed into `T`, or `default` when unset.
    pub fn parse_or<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(name) {
            None => Ok(default),
            Some(_) => self.parse(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Env::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn missing_variable_is_named_in_the_error() {
        let err = env(&[]).required("MISSIONS_TABLE").unwrap_err();
        assert!(err.to_string().contains("MISSIONS_TABLE"), "{err}");
    }

    #[test]
    fn empty_counts_as_missing() {
        assert!(matches!(
            env(&[("X", "  ")]).required("X"),
            Err(ConfigError::Missing { name: "X" })
        ));
    }

    #[test]
    fn unparsable_number_names_variable_value_and_problem() {
        let err = env(&[("DAY_SHARDS", "ten")])
            .parse::<u32>("DAY_SHARDS")
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("DAY_SHARDS") && text.contains("ten"),
            "{text}"
        );
    }

    #[test]
    fn parse_or_uses_default_only_when_unset() {
        assert_eq!(env(&[]).parse_or("N", 7u32).unwrap(), 7);
        assert_eq!(env(&[("N", "3")]).parse_or("N", 7u32).unwrap(), 3);
        assert!(env(&[("N", "x")]).parse_or("N", 7u32).is_err());
    }
}
