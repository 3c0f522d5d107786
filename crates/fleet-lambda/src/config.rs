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

    /// A comma-separated list (`a, b,c`); unset or empty is an empty list.
    pub fn list(&self, name: &'static str) -> Vec<String> {
        self.optional(name)
            .map(|v| split_list(&v))
            .unwrap_or_default()
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
}

/// The items of a comma-separated list, trimmed, empty items dropped.
pub fn split_list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
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
    fn optional_and_list_treat_empty_as_unset() {
        let e = env(&[("T", "  "), ("L", " a, b,,c ")]);
        assert_eq!(e.optional("T"), None);
        assert_eq!(e.list("L"), vec!["a", "b", "c"]);
        assert!(e.list("MISSING").is_empty());
    }
}
