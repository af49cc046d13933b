//! Optional bearer-token authentication (`--token-auth-file`).
//!
//! The file is Kubernetes' static token CSV: `token,user,uid[,"group1,group2"]`,
//! one per line. With it, every request but the health checks needs
//! `Authorization: Bearer <token>`; without it, the API is open (and
//! unauthorized: see [`crate::authz`]). Groups are kept, and every
//! authenticated user is also in `system:authenticated`, as in Kubernetes.
//!
//! With `--client-ca-file`, a TLS client certificate signed by that CA
//! authenticates too ([`user_from_certificate`]): its common name is the
//! user, each organization a group, as Kubernetes' x509 authenticator reads
//! it. A certificate wins over a token, as Kubernetes tries x509 first.

use std::collections::HashMap;
use std::path::Path;

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user name.
    pub name: String,
    /// The user's uid.
    pub uid: String,
    /// The groups from the file, then `system:authenticated`.
    pub groups: Vec<String>,
}

/// The group every authenticated user is in.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";

/// The group whose members may do anything, whatever the authorizer says.
pub const MASTERS_GROUP: &str = "system:masters";

/// A token file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read token file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A line is not `token,user,uid[,groups]`.
    #[error("token file {path} line {line}: expected token,user,uid[,groups]")]
    Malformed {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
    },
}

/// The tokens the server accepts.
#[derive(Clone, Debug, Default)]
pub struct TokenAuth {
    tokens: HashMap<String, User>,
}

impl TokenAuth {
    /// Reads a token file.
    pub fn from_file(path: &Path) -> Result<Self, TokenFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokenFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text).map_err(|line| TokenFileError::Malformed {
            path: path.display().to_string(),
            line,
        })
    }

    /// Parses the CSV text; the error is the 1-based number of the bad line.
    pub fn parse(text: &str) -> Result<Self, usize> {
        let mut tokens = HashMap::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.splitn(4, ',').map(str::trim).collect();
            match fields.as_slice() {
                [token, user, uid, rest @ ..] if !token.is_empty() && !user.is_empty() => {
                    // The fourth column is one CSV field, quoted when it
                    // lists several groups: `"g1,g2"`.
                    let mut groups: Vec<String> = rest
                        .first()
                        .map(|g| g.trim_matches('"'))
                        .into_iter()
                        .flat_map(|g| g.split(','))
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(str::to_string)
                        .collect();
                    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
                        groups.push(AUTHENTICATED_GROUP.to_string());
                    }
                    tokens.insert(
                        (*token).to_string(),
                        User {
                            name: (*user).to_string(),
                            uid: (*uid).to_string(),
                            groups,
                        },
                    );
                }
                _ => return Err(index + 1),
            }
        }
        Ok(Self { tokens })
    }

    /// The user of an `Authorization` header value, if it carries a known token.
    pub fn authenticate(&self, authorization: Option<&str>) -> Option<&User> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        self.tokens.get(token)
    }
}

/// The user a verified client certificate (DER) names: CN → user, every
/// O → a group, then `system:authenticated`. `None` without a common name
/// (Kubernetes refuses those too) or when the DER does not parse.
pub fn user_from_certificate(der: &[u8]) -> Option<User> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .filter(|cn| !cn.is_empty())?
        .to_string();
    let mut groups: Vec<String> = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok())
        .map(str::to_string)
        .collect();
    if !groups.iter().any(|g| g == AUTHENTICATED_GROUP) {
        groups.push(AUTHENTICATED_GROUP.to_string());
    }
    Some(User {
        name,
        uid: String::new(),
        groups,
    })
}

/// The user of a request's TLS client certificate, put into the request by
/// the connection it came on (never by anything the client sends).
#[derive(Clone, Debug)]
pub struct CertificateUser(pub User);

/// Paths that need no token: health checks, as in Kubernetes.
pub fn is_public(path: &str) -> bool {
    matches!(path, "/healthz" | "/livez" | "/readyz")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_their_users() {
        let auth = TokenAuth::parse("# admins\nsecret,admin,1,\"system:masters\"\n\nother,bob,2\n")
            .unwrap();
        assert_eq!(
            auth.authenticate(Some("Bearer secret")).unwrap().name,
            "admin"
        );
        assert_eq!(auth.authenticate(Some("Bearer other")).unwrap().uid, "2");
        assert_eq!(
            auth.authenticate(Some("Bearer secret")).unwrap().groups,
            ["system:masters", "system:authenticated"]
        );
        assert_eq!(
            auth.authenticate(Some("Bearer other")).unwrap().groups,
            ["system:authenticated"]
        );
        let two = TokenAuth::parse("t,u,3,\"a, b\"\n").unwrap();
        assert_eq!(
            two.authenticate(Some("Bearer t")).unwrap().groups,
            ["a", "b", "system:authenticated"]
        );
        assert!(auth.authenticate(Some("Bearer nope")).is_none());
        assert!(auth.authenticate(Some("Basic secret")).is_none());
        assert!(auth.authenticate(None).is_none());
        assert_eq!(TokenAuth::parse("ok,u,1\nbroken\n").unwrap_err(), 2);
    }

    #[test]
    fn a_certificate_names_its_user_and_groups() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "system:nodes");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "system:node:minion-1");
        let cert = params.self_signed(&key).unwrap();
        let user = user_from_certificate(cert.der()).unwrap();
        assert_eq!(user.name, "system:node:minion-1");
        assert_eq!(user.groups, ["system:nodes", "system:authenticated"]);

        let mut nameless = rcgen::CertificateParams::default();
        nameless.distinguished_name = rcgen::DistinguishedName::new();
        let cert = nameless.self_signed(&key).unwrap();
        assert!(user_from_certificate(cert.der()).is_none());
        assert!(user_from_certificate(b"not a certificate").is_none());
    }
}
