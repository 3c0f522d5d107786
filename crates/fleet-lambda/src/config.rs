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
}
