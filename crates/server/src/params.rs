//! Request parameters from the query string and from form bodies, in order, with
//! repeated keys kept (the SPARQL protocol repeats `default-graph-uri`, AllegroGraph
//! repeats `context`).

use axum::http::Uri;

#[derive(Clone, Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn from_uri(uri: &Uri) -> Self {
        let mut params = Params::default();
        if let Some(query) = uri.query() {
            params.extend_form(query.as_bytes());
        }
        params
    }

    pub fn extend_form(&mut self, body: &[u8]) {
        self.0
            .extend(form_urlencoded::parse(body).map(|(k, v)| (k.into_owned(), v.into_owned())));
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// A parameter parsed as a number, with an error naming it.
    pub fn number<T: std::str::FromStr>(&self, name: &str) -> crate::error::ApiResult<Option<T>> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse().map_err(|_| {
                    crate::error::ApiError::BadRequest(format!(
                        "parameter '{name}' must be a number, got '{v}'"
                    ))
                })
            })
            .transpose()
    }

    /// A boolean parameter (`true`/`false`, also `yes`/`no`, `1`/`0`).
    pub fn flag(&self, name: &str) -> crate::error::ApiResult<Option<bool>> {
        self.get(name)
            .map(|v| match v.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" | "on" => Ok(true),
                "false" | "no" | "0" | "off" => Ok(false),
                _ => Err(crate::error::ApiError::BadRequest(format!(
                    "parameter '{name}' must be true or false, got '{v}'"
                ))),
            })
            .transpose()
    }
}
