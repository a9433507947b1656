//! agtool's REPO-SPEC: `USER:PASSWORD@HOST:PORT/REPO` (credentials may also come from
//! `QUADMESH_USER` / `QUADMESH_PASSWORD`; the repository is optional where a command
//! acts on a server), optionally after `http://` or `https://` (TLS; `--ca` names the
//! CA to trust).

use anyhow::{bail, Context, Result};
use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct Spec {
    /// `http` or `https`.
    pub scheme: &'static str,
    pub user: String,
    pub password: String,
    pub host: String,
    pub port: u16,
    pub repository: Option<String>,
}

impl fmt::Debug for Spec {
    // Never print the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:***@{}:{}",
            self.scheme, self.user, self.host, self.port
        )?;
        if let Some(r) = &self.repository {
            write!(f, "/{r}")?;
        }
        Ok(())
    }
}

impl Spec {
    pub fn parse(text: &str) -> Result<Self> {
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("https://") {
            ("https", rest)
        } else {
            ("http", text.strip_prefix("http://").unwrap_or(text))
        };
        if rest.contains("://") {
            bail!("'{text}': only http:// and https:// are understood");
        }
        let (credentials, location) = match rest.rsplit_once('@') {
            Some((c, l)) => (Some(c), l),
            None => (None, rest),
        };
        let (user, password) = match credentials {
            Some(c) => {
                let (u, p) = c
                    .split_once(':')
                    .with_context(|| format!("'{text}': credentials must be USER:PASSWORD"))?;
                (u.to_owned(), p.to_owned())
            }
            None => (
                std::env::var("QUADMESH_USER").with_context(|| {
                    format!("'{text}' has no USER:PASSWORD@ and QUADMESH_USER is not set")
                })?,
                password_from_env().with_context(|| {
                    format!("'{text}' has no USER:PASSWORD@ and neither QUADMESH_PASSWORD nor QUADMESH_PASSWORD_FILE is set")
                })?,
            ),
        };
        let (address, repository) = match location.split_once('/') {
            Some((a, r)) if !r.is_empty() => (a, Some(r.trim_end_matches('/').to_owned())),
            Some((a, _)) => (a, None),
            None => (location, None),
        };
        let (host, port) = match address.rsplit_once(':') {
            Some((h, p)) => (
                h.to_owned(),
                p.parse()
                    .with_context(|| format!("'{text}': invalid port '{p}'"))?,
            ),
            None => (address.to_owned(), 10035),
        };
        if host.is_empty() {
            bail!("'{text}': no host; expected USER:PASSWORD@HOST:PORT/REPO");
        }
        Ok(Spec {
            scheme,
            user,
            password,
            host,
            port,
            repository,
        })
    }

    pub fn base_url(&self) -> String {
        format!("{}://{}:{}", self.scheme, self.host, self.port)
    }

    pub fn repository(&self) -> Result<&str> {
        self.repository.as_deref().with_context(|| {
            format!("{self:?} names no repository; expected USER:PASSWORD@HOST:PORT/REPO")
        })
    }

    pub fn repository_url(&self) -> Result<String> {
        Ok(format!(
            "{}/repositories/{}",
            self.base_url(),
            self.repository()?
        ))
    }
}

/// `QUADMESH_PASSWORD`, or the content of the file `QUADMESH_PASSWORD_FILE` names.
pub fn password_from_env() -> Result<String> {
    if let Ok(p) = std::env::var("QUADMESH_PASSWORD") {
        return Ok(p);
    }
    let path =
        std::env::var("QUADMESH_PASSWORD_FILE").context("QUADMESH_PASSWORD_FILE is not set")?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read QUADMESH_PASSWORD_FILE {path}"))?;
    Ok(text.trim_end_matches(['\n', '\r']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_spec_parses() {
        let s = Spec::parse("admin:p:w@db.example:10036/books").unwrap();
        assert_eq!((s.user.as_str(), s.password.as_str()), ("admin", "p:w"));
        assert_eq!((s.host.as_str(), s.port), ("db.example", 10036));
        assert_eq!(s.repository.as_deref(), Some("books"));
    }

    #[test]
    fn the_port_defaults_and_the_repository_is_optional() {
        let s = Spec::parse("a:b@localhost").unwrap();
        assert_eq!(s.port, 10035);
        assert!(s.repository.is_none());
        assert!(s.repository().is_err());
    }

    #[test]
    fn bad_specs_name_the_problem() {
        assert!(Spec::parse("a:b@host:notaport/r")
            .unwrap_err()
            .to_string()
            .contains("invalid port"));
        assert!(Spec::parse("ab@host/r")
            .unwrap_err()
            .to_string()
            .contains("USER:PASSWORD"));
    }

    #[test]
    fn the_scheme_is_http_unless_https_is_given() {
        let s = Spec::parse("a:b@h:1/r").unwrap();
        assert_eq!(s.base_url(), "http://h:1");
        let s = Spec::parse("http://a:b@h:1/r").unwrap();
        assert_eq!(s.base_url(), "http://h:1");
        let s = Spec::parse("https://a:b@db.example:10035/r").unwrap();
        assert_eq!(s.base_url(), "https://db.example:10035");
        assert_eq!(
            s.repository_url().unwrap(),
            "https://db.example:10035/repositories/r"
        );
        assert!(Spec::parse("ftp://a:b@h:1/r")
            .unwrap_err()
            .to_string()
            .contains("https://"));
    }

    #[test]
    fn debug_output_hides_the_password() {
        let s = Spec::parse("admin:secret@h:1/r").unwrap();
        assert!(!format!("{s:?}").contains("secret"));
    }
}
