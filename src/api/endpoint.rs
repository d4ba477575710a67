//! The platform's URL, parsed once.
//!
//! Every decision about where a request goes is made on this parsed form:
//! the loopback rule for plain `http://`, the proxy choice, and the URL the
//! request is sent to, which is rebuilt from the parsed parts. A string that
//! two parsers could read differently (`http://evil.example?@127.0.0.1`,
//! `http://evil.example#@127.0.0.1`, a backslash or userinfo) is refused
//! outright, so there is no second reading to disagree with.

use std::fmt;
use std::net::IpAddr;

/// `http` or `https`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

/// A validated platform URL: scheme, host, optional port and base path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Endpoint {
    scheme: Scheme,
    /// Lower-case host; an IPv6 address without its brackets.
    host: String,
    port: Option<u16>,
    /// The base path without a trailing `/` (usually empty).
    path: String,
}

impl Endpoint {
    /// Parses an endpoint; the error says what is wrong, for a message that
    /// names the value and where it came from.
    pub(crate) fn parse(raw: &str) -> Result<Endpoint, String> {
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("it contains whitespace".into());
        }
        let lower = raw.to_ascii_lowercase();
        let (scheme, rest) = if let Some(rest) = lower.strip_prefix("https://") {
            (Scheme::Https, &raw[raw.len() - rest.len()..])
        } else if let Some(rest) = lower.strip_prefix("http://") {
            (Scheme::Http, &raw[raw.len() - rest.len()..])
        } else {
            return Err("it must start with https:// or http://".into());
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err("it has no host".into());
        }
        // Parsers disagree about these; an endpoint never needs them.
        for (c, what) in [
            ('?', "a query string (?…)"),
            ('#', "a fragment (#…)"),
            ('\\', "a backslash"),
            ('@', "user information (user@host)"),
        ] {
            if rest.contains(c) {
                return Err(format!("an endpoint must not contain {what}"));
            }
        }
        let uri: ureq::http::Uri = raw
            .parse()
            .map_err(|_| "it is not a valid URL".to_string())?;
        let authority = uri.authority().ok_or("it has no host")?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_ascii_lowercase();
        if host.is_empty() {
            return Err("it has no host".into());
        }
        let path = uri.path().trim_end_matches('/').to_string();
        Ok(Endpoint {
            scheme,
            host,
            port: authority.port_u16(),
            path,
        })
    }

    pub(crate) fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host the request connects to (IPv6 without brackets).
    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    /// The port connected to: the URL's, else the scheme's.
    pub(crate) fn port(&self) -> u16 {
        self.port.unwrap_or(match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        })
    }

    /// `localhost`, `127.0.0.0/8` or `::1`. Names under `.localhost` are not
    /// trusted: nothing guarantees the resolver keeps them on this machine.
    pub(crate) fn is_loopback(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The one rule for every request that carries a secret (a key, a
    /// token, a refresh token, a device code): https, or plain http only
    /// to this machine.
    pub(crate) fn may_carry_secrets(&self) -> bool {
        self.scheme == Scheme::Https || self.is_loopback()
    }

    /// `scheme://host[:port]`, the origin browsers and the platform compare.
    pub(crate) fn origin(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        }
    }
}

impl fmt::Display for Endpoint {
    /// The URL requests are built on: origin plus base path, no trailing `/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_endpoint_round_trips() {
        for (raw, shown) in [
            ("https://api.fluxloop.ai", "https://api.fluxloop.ai"),
            ("https://api.fluxloop.ai/", "https://api.fluxloop.ai"),
            (
                "HTTPS://API.Fluxloop.AI:8443/v1/",
                "https://api.fluxloop.ai:8443/v1",
            ),
            ("http://127.0.0.1:8787", "http://127.0.0.1:8787"),
            ("http://[::1]:9", "http://[::1]:9"),
        ] {
            assert_eq!(Endpoint::parse(raw).unwrap().to_string(), shown, "{raw}");
        }
    }

    #[test]
    fn strings_that_parsers_read_differently_are_refused() {
        for raw in [
            "http://evil.example?@127.0.0.1",
            "http://evil.example#@127.0.0.1",
            "http://evil.example\\@127.0.0.1",
            "http://user:pass@127.0.0.1",
            "http://127.0.0.1@evil.example",
            "https://api.fluxloop.ai/?x=1",
            "https://api.fluxloop.ai/#top",
        ] {
            let e = Endpoint::parse(raw).unwrap_err();
            assert!(e.starts_with("an endpoint must not contain"), "{raw}: {e}");
        }
        for raw in [
            "ftp://x",
            "api.fluxloop.ai",
            "https://",
            "https:///x",
            "https://a b",
        ] {
            assert!(Endpoint::parse(raw).is_err(), "{raw}");
        }
    }

    #[test]
    fn loopback_is_decided_on_the_parsed_host() {
        for raw in [
            "http://localhost:8787",
            "http://127.0.0.1",
            "http://127.1.2.3:9/x",
            "http://[::1]:80",
        ] {
            assert!(Endpoint::parse(raw).unwrap().is_loopback(), "{raw}");
        }
        for raw in [
            "http://10.0.0.1",
            "http://example.com",
            "http://localhost.example.com",
            "http://api.localhost",
            "http://127.0.0.1.evil.example",
            "http://[::2]",
        ] {
            let e = Endpoint::parse(raw).unwrap();
            assert!(!e.is_loopback(), "{raw}");
            assert!(!e.may_carry_secrets(), "{raw}");
        }
        assert!(Endpoint::parse("https://x.example")
            .unwrap()
            .may_carry_secrets());
    }
}
