//! Reading variables: [`Reader`]'s typed getters, and the network lists of
//! `TRUSTED_PROXIES`.

use std::{fmt, str::FromStr};

use super::ConfigError;

/// Reads variables through a lookup function, so tests can feed a map.
pub(super) struct Reader<F: Fn(&str) -> Option<String>> {
    pub(super) lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    pub(super) fn raw(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    pub(super) fn string(&self, var: &str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    pub(super) fn parse<T: FromStr>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T::Err: fmt::Display,
    {
        Ok(self.optional(var)?.unwrap_or(default))
    }

    pub(super) fn optional<T: FromStr>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T::Err: fmt::Display,
    {
        self.raw(var)
            .map(|v| {
                v.trim().parse::<T>().map_err(|e| ConfigError {
                    var: var.to_owned(),
                    reason: format!("cannot parse `{}`: {e}", v.trim()),
                })
            })
            .transpose()
    }

    pub(super) fn url(
        &self,
        var: &str,
        default: &str,
        schemes: &[&str],
    ) -> Result<String, ConfigError> {
        let value = self.string(var, default);
        let parsed = url::Url::parse(&value).map_err(|e| ConfigError {
            var: var.to_owned(),
            reason: format!("not a valid URL ({e})"),
        })?;
        if !schemes.contains(&parsed.scheme()) {
            return Err(ConfigError {
                var: var.to_owned(),
                reason: format!(
                    "scheme must be one of {schemes:?}, got `{}`",
                    parsed.scheme()
                ),
            });
        }
        Ok(value)
    }

    pub(super) fn positive<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default + Copy,
        T::Err: fmt::Display,
    {
        let v = self.parse(var, default)?;
        if v <= T::default() {
            return Err(ConfigError {
                var: var.to_owned(),
                reason: "must be greater than zero".to_owned(),
            });
        }
        Ok(v)
    }
}

/// `10.0.0.0/8, 192.168.1.7, fd00::/8` → networks (a bare address is a network of one).
pub(super) fn parse_networks(text: &str) -> Result<Vec<ipnet::IpNet>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.parse::<ipnet::IpNet>()
                .or_else(|_| t.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| format!("`{t}` is not an address or a CIDR"))
        })
        .collect()
}
